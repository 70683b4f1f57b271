// The service stage on synthetic bursts, with the real NodeController building the service table
// and a real (single-threaded) connection table.
#include "dataplane/service_stage.h"

#include <gtest/gtest.h>
#include <rte_icmp.h>

#include <set>

#include "dataplane/flow_log.h"
#include "tests/unit/support/pod_pair_fixture.h"

namespace nodeplane::testing {
namespace {

using nodeplane::Action;
using nodeplane::DropReason;

class ServiceStageTest : public PodPairFixture {
 protected:
  void SetUp() override {
    startNode(nodeSettings());
    attachPair("ns", "c1", "ns", "w1");  // client 10.244.1.2, backend 10.244.1.3
  }

  void service(const char* name, const char* vip, std::vector<const char*> backends,
               uint8_t proto = 6, bool localPolicy = false) {
    control::ServiceSpec s;
    s.namespaceName = "ns";
    s.name = name;
    s.clusterIps = {ip(vip)};
    s.ports = {control::ServicePortSpec{"p", proto, 80, 8080, "", 0}};
    s.internalTrafficLocal = localPolicy;
    for (const char* b : backends) {
      control::EndpointSpec e;
      e.ip = ip(b);
      s.endpoints.push_back(e);
    }
    auto st = node->setService(s);
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  // The frame's own packet; any the stages made are left alone.
  PacketMeta run(const Bytes& frame, uint16_t port, rte_mbuf** out) {
    auto all = runAll(frame, port);
    *out = all.front().second;
    return all.front().first;
  }

  static PacketBuilder fromClient() { return fromFirstPod(); }
  static PacketBuilder fromBackend() { return fromSecondPod(); }
};

TEST_F(ServiceStageTest, TranslatesToTheBackendAndBack) {
  service("web", "10.96.0.30", {"10.244.1.3"});
  rte_mbuf* m;
  auto meta =
      run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 80, 0x02).build(), 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 1);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(get32(out, 30), ip("10.244.1.3").value);  // DNAT to the backend
  EXPECT_EQ(get16(out, 36), 8080);
  EXPECT_EQ(get32(out, 26), ip("10.244.1.2").value);  // client address kept
  rte_pktmbuf_free(m);
  EXPECT_EQ(tracker->live(), 1u);

  meta = run(fromBackend().ipv4("10.244.1.3", "10.244.1.2").tcp(8080, 40000, 0x12).build(), 1, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);
  out = mbufBytes(m);
  EXPECT_EQ(get32(out, 26), ip("10.96.0.30").value);  // the reply comes from the VIP
  EXPECT_EQ(get16(out, 34), 80);
  rte_pktmbuf_free(m);
  const lb::ConnEntry& e = tracker->shard(0).entry(0);
  EXPECT_EQ(e.state(), lb::ConnState::kTcpSynRecv);
  EXPECT_EQ(counters.serviceFlows.read(), 1u);
}

TEST_F(ServiceStageTest, ANewServiceFlowIsRecordedInTheFlowLogWithItsBackendOnce) {
  auto log = dataplane::FlowLog::create(1, 64, 0);
  ASSERT_TRUE(log.ok());
  ctx.flowLog = log->get();
  service("web", "10.96.0.30", {"10.244.1.3"});
  rte_mbuf* m;
  auto meta =
      run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 80, 0x02).build(), 0, &m);
  rte_pktmbuf_free(m);
  EXPECT_EQ(meta.aux, kAuxFlowLogged) << "dispatch must not record it again";
  meta = run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 80, 0x10).build(), 0, &m);
  rte_pktmbuf_free(m);
  EXPECT_EQ(meta.aux, 0u) << "a packet of an established flow is not recorded";
  std::vector<dataplane::FlowRecord> out;
  ASSERT_EQ((*log)->drain(out, 10), 1u);
  const dataplane::FlowRecord& r = out[0];
  EXPECT_EQ(r.event, dataplane::FlowEvent::kForwarded);
  EXPECT_EQ(rte_be_to_cpu_32(r.dst), ip("10.96.0.30").value);
  EXPECT_EQ(rte_be_to_cpu_16(r.dport), 80);
  EXPECT_EQ(rte_be_to_cpu_32(r.xdst), ip("10.244.1.3").value);
  EXPECT_EQ(rte_be_to_cpu_16(r.xdport), 8080);
  EXPECT_EQ(rte_be_to_cpu_32(r.xsrc), ip("10.244.1.2").value);
  EXPECT_EQ(r.translation, dataplane::kFlowDnat);
  EXPECT_NE(r.servicePort, 0u);
  EXPECT_EQ(node->serviceRegistry().portName(r.servicePort).rfind("ns/web", 0), 0u);
  ctx.flowLog = nullptr;
}

TEST_F(ServiceStageTest, NoEndpointsRefusesTcpWithAReset) {
  service("empty", "10.96.0.34", {});
  rte_mbuf* m;
  auto meta =
      run(fromClient().ipv4("10.244.1.2", "10.96.0.34").tcp(40001, 80, 0x02).build(), 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);
  Bytes out = mbufBytes(m);
  ASSERT_EQ(out.size(), 54u);
  EXPECT_EQ(get32(out, 26), ip("10.96.0.34").value) << "from the VIP";
  EXPECT_EQ(get32(out, 30), ip("10.244.1.2").value);
  EXPECT_EQ(get16(out, 34), 80);
  EXPECT_EQ(get16(out, 36), 40001);
  EXPECT_EQ(out[47], 0x14) << "RST|ACK";
  EXPECT_EQ(get32(out, 42), 1000u + 1) << "acknowledges the SYN";
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
  rte_pktmbuf_free(m);
  EXPECT_EQ(counters.resetsSent.read(), 1u);
  EXPECT_EQ(counters.drops[static_cast<size_t>(DropReason::kServiceNoEndpoints)].read(), 1u);
  EXPECT_EQ(tracker->live(), 0u) << "nothing tracked for a refused flow";
}

TEST_F(ServiceStageTest, NoEndpointsRefusesUdpWithPortUnreachableFromTheVip) {
  service("empty", "10.96.0.34", {}, 17);
  rte_mbuf* m;
  auto meta =
      run(fromClient().ipv4("10.244.1.2", "10.96.0.34").udp(5000, 80).payload(8).build(), 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(get32(out, 26), ip("10.96.0.34").value);
  EXPECT_EQ(out[34], 3);
  EXPECT_EQ(out[35], 3);
  rte_pktmbuf_free(m);
}

TEST_F(ServiceStageTest, InternalTrafficPolicyLocalWithoutLocalEndpointDrops) {
  service("remote-only", "10.96.0.40", {"10.244.2.9"}, 6, /*localPolicy=*/true);
  rte_mbuf* m;
  auto meta = run(fromClient().ipv4("10.244.1.2", "10.96.0.40").tcp(1, 80, 0x02).build(), 0, &m);
  EXPECT_EQ(meta.drop, DropReason::kServiceNoLocalEndpoint);
  rte_pktmbuf_free(m);
}

TEST_F(ServiceStageTest, InternalTrafficPolicyLocalSendsEveryFlowToTheLocalEndpoint) {
  // The port's local-only Maglev table exists because its policy is Local.
  service("mixed", "10.96.0.41", {"10.244.1.3", "10.244.2.9"}, 6, /*localPolicy=*/true);
  for (uint16_t sport = 1000; sport < 1064; ++sport) {
    rte_mbuf* m;
    auto meta =
        run(fromClient().ipv4("10.244.1.2", "10.96.0.41").tcp(sport, 80, 0x02).build(), 0, &m);
    ASSERT_EQ(meta.action, Action::kTransmit) << sport;
    EXPECT_EQ(get32(mbufBytes(m), 30), ip("10.244.1.3").value) << sport;
    rte_pktmbuf_free(m);
  }
}

TEST_F(ServiceStageTest, HairpinIsSourceNatedToTheOverlayAddress) {
  service("self", "10.96.0.33", {"10.244.1.3"});
  rte_mbuf* m;
  auto meta =
      run(fromBackend().ipv4("10.244.1.3", "10.96.0.33").tcp(40000, 80, 0x02).build(), 1, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(get32(out, 26), ip("10.244.1.0").value) << "source: the node's overlay address";
  EXPECT_EQ(get32(out, 30), ip("10.244.1.3").value);
  const uint16_t snatPort = get16(out, 34);
  EXPECT_GE(snatPort, 32768);
  rte_pktmbuf_free(m);
  // The pod answers the overlay address; the reply is translated back to the pod itself.
  meta =
      run(fromBackend().ipv4("10.244.1.3", "10.244.1.0").tcp(8080, snatPort, 0x12).build(), 1, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  out = mbufBytes(m);
  EXPECT_EQ(get32(out, 26), ip("10.96.0.33").value);
  EXPECT_EQ(get32(out, 30), ip("10.244.1.3").value);
  EXPECT_EQ(get16(out, 36), 40000);
  rte_pktmbuf_free(m);
}

// A new UDP flow's first packets arrive together: one entry and one SNAT port for all of them,
// not one each (whose expiry would later take the live flow's keys with them).
TEST_F(ServiceStageTest, PacketsOfANewFlowInOneBurstShareOneEntryAndOneSnatPort) {
  service("self-udp", "10.96.0.34", {"10.244.1.3"}, 17);
  const Bytes frame = fromBackend().ipv4("10.244.1.3", "10.96.0.34").udp(40000, 80).build();
  auto out = runBurst(std::vector<Bytes>(8, frame), 1);
  ASSERT_EQ(out.size(), 8u);
  std::set<uint16_t> snatPorts;
  for (auto& [meta, m] : out) {
    EXPECT_EQ(meta.action, Action::kTransmit);
    snatPorts.insert(get16(mbufBytes(m), 34));
    rte_pktmbuf_free(m);
  }
  EXPECT_EQ(snatPorts.size(), 1u) << "every packet of the flow leaves from one SNAT port";
  EXPECT_EQ(tracker->live(), 1u);
  EXPECT_EQ(counters.serviceFlows.read(), 1u);
}

// Past the SNAT pool, a new flow is refused at once (no probing per packet), and the refusals are
// counted against the service's backend.
TEST_F(ServiceStageTest, AnExhaustedSnatPoolRefusesCheaplyAndIsCountedPerBackend) {
  stopNode();
  startNode(nodeSettings(), 32768);
  attachPair("ns", "c1", "ns", "w1");
  service("self-udp", "10.96.0.36", {"10.244.1.3"}, 17);
  // Every port of the pool towards the backend 10.244.1.3:8080/UDP from the overlay address is
  // taken (as by 28,232 earlier hairpin flows).
  lb::ConnShard& shard = tracker->shard(0);
  for (uint32_t port = lb::SnatPorts::kFirst; port <= lb::SnatPorts::kLast; ++port) {
    lb::ConnEntry e{};
    e.orig.src = rte_cpu_to_be_32(0x0b000000u + port);  // some client
    e.orig.dst = rte_cpu_to_be_32(ip("10.96.0.36").value);
    e.orig.sport = rte_cpu_to_be_16(1000);
    e.orig.dport = rte_cpu_to_be_16(80);
    e.orig.proto = IPPROTO_UDP;
    e.reply.src = rte_cpu_to_be_32(ip("10.244.1.3").value);
    e.reply.dst = rte_cpu_to_be_32(ip("10.244.1.0").value);
    e.reply.sport = rte_cpu_to_be_16(8080);
    e.reply.dport = rte_cpu_to_be_16(static_cast<uint16_t>(port));
    e.reply.proto = IPPROTO_UDP;
    e.stateWord = static_cast<uint16_t>(lb::ConnState::kUdpReplied);
    ASSERT_GE(shard.insert(e, ctx.nowMs), 0);
  }
  for (uint16_t sport = 40000; sport < 40003; ++sport) {
    rte_mbuf* m;
    auto meta = run(fromBackend().ipv4("10.244.1.3", "10.96.0.36").udp(sport, 80).build(), 1, &m);
    EXPECT_EQ(meta.action, Action::kDrop);
    EXPECT_EQ(meta.drop, DropReason::kMasqueradeNoPort);
    rte_pktmbuf_free(m);
  }
  // Counted against the backend, as npctl services shows it.
  const lb::ServiceTable& table = *backend.current()->services;
  uint32_t index = 0;
  lb::ServiceAccess access;
  ASSERT_TRUE(table.find(rte_cpu_to_be_32(ip("10.96.0.36").value), rte_cpu_to_be_16(80),
                         IPPROTO_UDP, &index, &access));
  const lb::ServicePortEntry& sp = table.port(index);
  ASSERT_EQ(sp.backendCount, 1u);
  EXPECT_EQ(node->serviceRegistry().snatExhausted(table.backend(sp, 0).slot), 3u);
}

TEST_F(ServiceStageTest, AFlowWhoseBackendWentAwayIsPickedAgain) {
  service("udp", "10.96.0.35", {"10.244.1.3", "10.244.2.4"}, 17);
  const Bytes probe = fromClient().ipv4("10.244.1.2", "10.96.0.35").udp(41000, 80).build();
  rte_mbuf* m;
  run(probe, 0, &m);
  const uint32_t first = get32(mbufBytes(m), 30);
  rte_pktmbuf_free(m);
  const char* keep = first == ip("10.244.1.3").value ? "10.244.2.4" : "10.244.1.3";
  service("udp", "10.96.0.35", {keep}, 17);
  run(probe, 0, &m);
  EXPECT_EQ(get32(mbufBytes(m), 30), ip(keep).value) << "same 5-tuple, the remaining backend";
  rte_pktmbuf_free(m);
  EXPECT_EQ(counters.serviceFlows.read(), 2u);
}

TEST_F(ServiceStageTest, AnUnchangedBackendKeepsItsFlowsAcrossChanges) {
  service("web", "10.96.0.30", {"10.244.1.3"});
  rte_mbuf* m;
  run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 80, 0x02).build(), 0, &m);
  rte_pktmbuf_free(m);
  service("web", "10.96.0.30", {"10.244.1.3", "10.244.2.4", "10.244.2.5"});
  auto meta =
      run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 80, 0x10).build(), 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(get32(mbufBytes(m), 30), ip("10.244.1.3").value);
  rte_pktmbuf_free(m);
  EXPECT_EQ(counters.serviceFlows.read(), 1u) << "the flow kept its entry";
}

TEST_F(ServiceStageTest, UnknownServiceAddressesAreDropped) {
  rte_mbuf* m;
  auto meta = run(fromClient().ipv4("10.244.1.2", "10.96.9.9").tcp(1, 80, 0x02).build(), 0, &m);
  EXPECT_EQ(meta.drop, DropReason::kServiceUnknown);
  rte_pktmbuf_free(m);
}

TEST_F(ServiceStageTest, IcmpErrorsFromTheBackendAreAboutWhatTheClientSent) {
  // The backend answers port-unreachable quoting the translated packet; the client must get it
  // about the packet it sent: to the VIP and service port.
  service("web", "10.96.0.30", {"10.244.1.3"}, 17);
  rte_mbuf* m;
  Bytes req = fromClient().ipv4("10.244.1.2", "10.96.0.30").udp(5000, 80).payload(10).build();
  run(req, 0, &m);
  Bytes translated = mbufBytes(m);  // what the backend received
  rte_pktmbuf_free(m);
  // The backend's kernel answers port-unreachable quoting the packet it got.
  Bytes quote(translated.begin() + 14, translated.end());
  Bytes icmpErr = fromBackend()
                      .ipv4("10.244.1.3", "10.244.1.2")
                      .ipProto(1)
                      .payloadBytes([&] {
                        Bytes b = {3, 3, 0, 0, 0, 0, 0, 0};
                        b.insert(b.end(), quote.begin(), quote.end());
                        uint16_t c = testing::internetChecksum(b.data(), b.size());
                        b[2] = static_cast<uint8_t>(c >> 8);
                        b[3] = static_cast<uint8_t>(c);
                        return b;
                      }())
                      .build();
  auto meta = run(icmpErr, 1, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(get32(out, 26), ip("10.96.0.30").value) << "from the VIP the client sent to";
  EXPECT_EQ(get32(out, 42 + 16), ip("10.96.0.30").value) << "quoted destination: the VIP";
  EXPECT_EQ(get16(out, 42 + 20 + 2), 80) << "quoted destination port: the service port";
  EXPECT_EQ(testing::internetChecksum(&out[34], out.size() - 34), 0) << "ICMP checksum";
  EXPECT_EQ(testing::internetChecksum(&out[42], 20), 0) << "quoted IPv4 checksum";
  rte_pktmbuf_free(m);
  EXPECT_EQ(counters.icmpTranslated.read(), 1u);
}

}  // namespace
}  // namespace nodeplane::testing
