// The overlay's slow path through NodeController: ARP requests out, replies in, packets held and
// released, given up on, and oversized packets fragmented.
#include "control/underlay_resolver.h"

#include <gtest/gtest.h>
#include <rte_arp.h>

#include <set>

#include "tests/unit/support/overlay_fixture.h"

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;

std::array<uint8_t, 6> macAt(const Bytes& b, size_t at) {
  return {b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]};
}

class ResolverTest : public OverlayFixture {
 protected:
  void service(std::chrono::steady_clock::time_point at) { node->serviceSlowPath(at); }
  size_t counted(DropReason r) { return backend.control.drops[static_cast<size_t>(r)].read(); }
};

TEST_F(ResolverTest, SendsArpRequestsForTunnelEndpoints) {
  service(std::chrono::steady_clock::now());
  ASSERT_FALSE(backend.injected.empty());
  Bytes arp = mbufBytes(backend.injected.back().second);
  EXPECT_EQ(backend.injected.back().first, kUplinkPort);
  EXPECT_EQ(macAt(arp, 0), mac("ff:ff:ff:ff:ff:ff").bytes);
  EXPECT_EQ(arp[12], 0x08);
  EXPECT_EQ(arp[13], 0x06);
  EXPECT_EQ(arp[21], 1);  // request
  EXPECT_EQ(macAt(arp, 22), mac(kUplinkMac).bytes);
  EXPECT_EQ(arp[38], 192);
  EXPECT_EQ(arp[41], 11);  // who has 192.168.50.11
  EXPECT_GE(arp.size(), 60u) << "padded to the Ethernet minimum";
}

TEST_F(ResolverTest, AReplyPublishesResolvedTemplates) {
  const auto generation = node->generation();
  EXPECT_FALSE(snapshot().overlay->node(0).resolved);
  resolvePeer();
  EXPECT_GT(node->generation(), generation);
  EXPECT_TRUE(snapshot().overlay->node(0).resolved);
  EXPECT_EQ(snapshot().routes.get(), snapshot().routes.get());
  Bytes templ(snapshot().overlay->node(0).outer, snapshot().overlay->node(0).outer + 6);
  EXPECT_EQ(macAt(templ, 0), mac(kPeerMac).bytes);
}

TEST_F(ResolverTest, HeldPacketsLeaveWithTheLearnedMac) {
  rte_mbuf* m;
  auto meta = run(fromPod().ipv4(kPodIp, "10.244.2.7").udp(1, 2).build(), kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kPunt);
  backend.punted.push_back({m, static_cast<uint8_t>(meta.punt), 0, kPodPort, meta.aux});
  service(std::chrono::steady_clock::now());
  clearInjected();  // the ARP request
  resolvePeer();
  ASSERT_EQ(backend.injected.size(), 1u) << "the held packet, now complete";
  Bytes out = mbufBytes(backend.injected[0].second);
  EXPECT_EQ(macAt(out, 0), mac(kPeerMac).bytes);
  EXPECT_EQ(out[36] << 8 | out[37], 4789);
}

TEST_F(ResolverTest, GivesUpAfterUnansweredProbes) {
  const auto t0 = std::chrono::steady_clock::now();
  rte_mbuf* m;
  auto meta = run(fromPod().ipv4(kPodIp, "10.244.2.7").udp(1, 2).build(), kPodPort, &m);
  backend.punted.push_back({m, static_cast<uint8_t>(meta.punt), 0, kPodPort, meta.aux});
  for (auto at : {0s, 1s, 2s}) service(t0 + at);
  EXPECT_EQ(counted(DropReason::kNeighborUnresolved), 0u);
  service(t0 + 3s);
  EXPECT_EQ(counted(DropReason::kNeighborUnresolved), 1u);
}

TEST_F(ResolverTest, FragmentsOversizedPacketsWithoutDf) {
  resolvePeer();
  clearInjected();
  Bytes big = fromPod().ipv4(kPodIp, "10.244.2.7", 64).udp(5, 6).payload(3000).build();
  backend.punted.push_back({makeChainedMbuf(big, 1500, kPodPort),
                            static_cast<uint8_t>(PuntReason::kFragment), 0, kPodPort, 0});
  service(std::chrono::steady_clock::now());
  ASSERT_EQ(backend.injected.size(), 3u) << "3008 bytes of UDP in 1450-byte inner packets";
  size_t carried = 0;
  for (auto& [port, f] : backend.injected) {
    EXPECT_EQ(port, kUplinkPort);
    Bytes out = mbufBytes(f);
    EXPECT_EQ(f->nb_segs, 1);
    EXPECT_LE(out.size() - 14, 1500u) << "fits the underlay MTU";
    EXPECT_EQ(macAt(out, 0), mac(kPeerMac).bytes);
    const size_t innerIp = 50 + 14;
    EXPECT_EQ(internetChecksum(&out[14], 20), 0) << "outer checksum";
    EXPECT_EQ(internetChecksum(&out[innerIp], 20), 0) << "inner fragment checksum";
    EXPECT_EQ(out[innerIp + 8], 63) << "TTL decremented once";
    carried += (out[innerIp + 2] << 8 | out[innerIp + 3]) - 20;
  }
  EXPECT_EQ(carried, 8u + 3000);
  EXPECT_EQ(backend.control.fragmentsSent.read(), 3u);
}

TEST_F(ResolverTest, NodeTableValidationNamesNodeAndField) {
  struct Case {
    control::NodeSpec spec;
    const char* expect;
  } cases[] = {
      {{"x", ip("192.168.50.20"), {*Ipv4Prefix::parse("10.244.1.128/25")}, {}},
       "overlaps this node"},
      {{"x", ip("192.168.50.11"), {*Ipv4Prefix::parse("10.244.9.0/24")}, {}}, "already belongs"},
      {{"x", ip("192.168.50.20"), {*Ipv4Prefix::parse("10.245.0.0/24")}, {}}, "cluster CIDR"},
      {{"x", ip("192.168.50.20"), {*Ipv4Prefix::parse("10.244.2.0/25")}, {}}, "node-gpu"},
      {{"x", ip("192.168.50.20"), {}, {}}, "'podCidrs': empty"},
      {{"x", ip("192.168.50.10"), {*Ipv4Prefix::parse("10.244.9.0/24")}, {}},
       "this node's address"},
      {{"x", ip("224.0.0.1"), {*Ipv4Prefix::parse("10.244.9.0/24")}, {}}, "'ip'"},
      {{"x", ip("192.168.50.20"), {*Ipv4Prefix::parse("10.244.9.0/24")}, mac("01:00:5e:00:00:01")},
       "'vtepMac'"},
      {{"Bad_Name", ip("192.168.50.20"), {*Ipv4Prefix::parse("10.244.9.0/24")}, {}}, "'name'"},
      {{"node-cpu", ip("192.168.50.99"), {*Ipv4Prefix::parse("10.244.1.0/24")}, {}}, "--node-ip"},
      {{"node-cpu", ip(kNodeIp), {*Ipv4Prefix::parse("10.244.7.0/24")}, {}}, "--pod-cidr"},
  };
  const auto generation = node->generation();
  for (const auto& c : cases) {
    auto st = node->setNode(c.spec);
    ASSERT_FALSE(st.ok()) << c.expect;
    EXPECT_NE(st.error().message.find(c.expect), std::string::npos) << st.error().message;
  }
  EXPECT_EQ(node->generation(), generation) << "nothing published for a rejected node";
  EXPECT_TRUE(
      node->setNode({"node-cpu", ip(kNodeIp), {*Ipv4Prefix::parse("10.244.1.0/24")}, {}}).ok());
  EXPECT_EQ(node->nodes().size(), 2u);
  EXPECT_TRUE(node->deleteNode("node-gpu").ok());
  EXPECT_EQ(node->deleteNode("node-gpu").error().code, ErrorCode::kNotFound);
}

}  // namespace
}  // namespace nodeplane::testing

namespace nodeplane::testing {
namespace {

// A node whose uplink NIC computes IPv4 checksums, and whose peer sits behind an underlay router.
class RoutedUnderlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend.pool = testPool();
    backend.ipv4ChecksumOffload = true;
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = ip(kNodeIp);
    s.underlayPrefixLength = 24;
    s.underlayGateway = ip("192.168.50.1");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.uplinkDevargs = "net_fake_uplink";
    node = std::make_unique<control::NodeController>(s, backend);
    ASSERT_TRUE(node->start().ok());
    control::PodAttachment a;
    a.namespaceName = "ns-dev";
    a.name = a.containerId = "c1";
    a.hostInterface = "veth-c1";
    a.ip = ip(kPodIp);
    a.mac = mac(kPodMac);
    ASSERT_TRUE(node->attachPod(a).ok());
    // One peer on the uplink's subnet, one behind the router.
    ASSERT_TRUE(
        node->setNode({"near", ip("192.168.50.11"), {*Ipv4Prefix::parse("10.244.2.0/24")}, {}})
            .ok());
    ASSERT_TRUE(
        node->setNode({"far", ip("10.200.0.5"), {*Ipv4Prefix::parse("10.244.3.0/24")}, {}}).ok());
  }
  void TearDown() override {
    for (auto& [port, m] : backend.injected) rte_pktmbuf_free(m);
  }
  FakeBackend backend;
  std::unique_ptr<control::NodeController> node;
};

TEST_F(RoutedUnderlayTest, EndpointsOffTheSubnetGoThroughTheGateway) {
  EXPECT_EQ(node->nextHopFor(ip("10.200.0.5")).toString(), "192.168.50.1");
  EXPECT_EQ(node->nextHopFor(ip("192.168.50.11")).toString(), "192.168.50.11");
  std::set<std::string> wanted;
  for (const auto& v : node->neighbors(std::chrono::steady_clock::now()))
    wanted.insert(v.ip.toString());
  EXPECT_EQ(wanted, (std::set<std::string>{"192.168.50.1", "192.168.50.11"}));

  // The router answers: the far node's template gets the router's MAC, the near one stays open.
  Bytes reply = PacketBuilder()
                    .eth(kUplinkMac, "52:54:00:00:00:01")
                    .arp(2, "52:54:00:00:00:01", "192.168.50.1", kNodeIp, kUplinkMac)
                    .build();
  backend.punted.push_back(
      {makeMbuf(reply, kUplinkPort), static_cast<uint8_t>(PuntReason::kArp), 0, kUplinkPort, 0});
  node->serviceSlowPath(std::chrono::steady_clock::now());
  const auto& table = *backend.current()->overlay;
  for (size_t i = 0; i < table.nodeCount(); ++i) {
    const auto& n = table.node(i);
    const bool far = n.ip == rte_cpu_to_be_32(ip("10.200.0.5").value);
    EXPECT_EQ(n.resolved, far);
    if (far) EXPECT_EQ(0, memcmp(n.outer, mac("52:54:00:00:00:01").bytes.data(), 6));
  }
}

TEST_F(RoutedUnderlayTest, OuterChecksumIsLeftToTheNicWhenItCan) {
  Bytes reply = PacketBuilder()
                    .eth(kUplinkMac, "52:54:00:00:00:01")
                    .arp(2, "52:54:00:00:00:01", "192.168.50.1", kNodeIp, kUplinkMac)
                    .build();
  backend.punted.push_back(
      {makeMbuf(reply, kUplinkPort), static_cast<uint8_t>(PuntReason::kArp), 0, kUplinkPort, 0});
  node->serviceSlowPath(std::chrono::steady_clock::now());
  ASSERT_TRUE(backend.current()->overlay->txIpChecksumOffload());
  WorkerCounters counters;
  dataplane::WorkerContext ctx;
  ctx.counters = &counters;
  Burst burst;
  burst.count = 1;
  burst.inPort = 1;
  burst.pkts[0] = makeMbuf(
      PacketBuilder().eth(kPodPortMac, kPodMac).ipv4(kPodIp, "10.244.3.9").udp(1, 2).build(), 1);
  dataplane::runStages(burst, *backend.current(), ctx);
  ASSERT_EQ(burst.meta[0].action, Action::kTransmit);
  rte_mbuf* m = burst.pkts[0];
  EXPECT_TRUE(m->ol_flags & RTE_MBUF_F_TX_IP_CKSUM);
  EXPECT_TRUE(m->ol_flags & RTE_MBUF_F_TX_IPV4);
  EXPECT_EQ(m->l2_len, 14u);
  EXPECT_EQ(m->l3_len, 20u);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(out[24], 0);
  EXPECT_EQ(out[25], 0) << "the NIC writes the checksum";
  rte_pktmbuf_free(m);
}

}  // namespace
}  // namespace nodeplane::testing
