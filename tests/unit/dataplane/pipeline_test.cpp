// The stages together (parse, pod ingress, route) over synthetic bursts, against snapshots the
// real NodeController builds: what a pod's packet turns into, byte for byte where it matters.
#include "dataplane/pipeline.h"

#include <gtest/gtest.h>
#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "control/node_controller.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::Bytes;
using testing::PacketBuilder;

constexpr const char* kPodAMac = "0a:00:00:00:00:0a";
constexpr const char* kPodBMac = "0a:00:00:00:00:0b";
constexpr const char* kPortAMac = testing::kFakePort0Mac;
constexpr const char* kPortBMac = testing::kFakePort1Mac;

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = testing::ip("192.168.50.10");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    node_ = std::make_unique<control::NodeController>(s, backend_);
    ASSERT_TRUE(node_->start().ok());
    attach("ns-dev", "c1", "10.244.1.2", kPodAMac);  // port 0
    attach("ns-stg", "c4", "10.244.1.3", kPodBMac);  // port 1
    ctx_.counters = &counters_;
    ctx_.icmpLimiter.configure(1'000'000, 1000, 50);
  }

  void attach(const char* ns, const char* name, const char* ipText, const char* macText) {
    control::PodAttachment a;
    a.namespaceName = ns;
    a.name = name;
    a.containerId = std::string("ctr-") + name;
    a.hostInterface = std::string("veth-") + name;
    a.ip = testing::ip(ipText);
    a.mac = testing::mac(macText);
    ASSERT_TRUE(node_->attachPod(a).ok());
  }

  // Runs one packet received on `port` through the stages.
  PacketMeta run(const Bytes& frame, uint16_t port, rte_mbuf** out) {
    Burst burst;
    burst.count = 1;
    burst.inPort = port;
    burst.pkts[0] = testing::makeMbuf(frame, port);
    runStages(burst, *backend_.current(), ctx_);
    *out = burst.pkts[0];
    return burst.meta[0];
  }

  PacketBuilder fromA() { return PacketBuilder().eth(kPortAMac, kPodAMac); }

  testing::FakeBackend backend_;
  std::unique_ptr<control::NodeController> node_;
  WorkerCounters counters_;
  WorkerContext ctx_;
};

TEST_F(PipelineTest, ForwardsBetweenPodsRewritingMacsAndTtl) {
  Bytes in = fromA().ipv4("10.244.1.2", "10.244.1.3", 64).tcp(40000, 8080).payload(10).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 1);
  Bytes out = testing::mbufBytes(m);
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(MacAddress::parse(kPodBMac)->bytes,
            (std::array<uint8_t, 6>{out[0], out[1], out[2], out[3], out[4], out[5]}));
  EXPECT_EQ(MacAddress::parse(kPortBMac)->bytes,
            (std::array<uint8_t, 6>{out[6], out[7], out[8], out[9], out[10], out[11]}));
  EXPECT_EQ(out[14 + 8], 63);                                            // TTL
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);                 // header checksum valid
  EXPECT_TRUE(std::equal(in.begin() + 34, in.end(), out.begin() + 34));  // L4 untouched
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, StripsEthernetPadding) {
  Bytes in = fromA().ipv4("10.244.1.2", "10.244.1.3").udp(1000, 53).padTo(60).build();
  rte_mbuf* m;
  ASSERT_EQ(run(in, 0, &m).action, Action::kTransmit);
  EXPECT_EQ(m->pkt_len, 14u + 20 + 8);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, AnswersArpForTheGatewayWithThePortMac) {
  Bytes in = PacketBuilder()
                 .eth("ff:ff:ff:ff:ff:ff", kPodAMac)
                 .arp(1, kPodAMac, "10.244.1.2", "169.254.1.1")
                 .build();
  rte_mbuf* m;
  PacketMeta meta = run(in, 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);
  auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, 14);
  EXPECT_EQ(rte_be_to_cpu_16(arp->arp_opcode), RTE_ARP_OP_REPLY);
  EXPECT_EQ(rte_be_to_cpu_32(arp->arp_data.arp_sip), testing::ip("169.254.1.1").value);
  EXPECT_EQ(rte_be_to_cpu_32(arp->arp_data.arp_tip), testing::ip("10.244.1.2").value);
  EXPECT_EQ(0, memcmp(arp->arp_data.arp_sha.addr_bytes, testing::mac(kPortAMac).bytes.data(), 6));
  EXPECT_EQ(0, memcmp(arp->arp_data.arp_tha.addr_bytes, testing::mac(kPodAMac).bytes.data(), 6));
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  EXPECT_EQ(0, memcmp(eth->dst_addr.addr_bytes, testing::mac(kPodAMac).bytes.data(), 6));
  EXPECT_EQ(counters_.arpReplies.read(), 1u);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, LeavesDuplicateAddressProbesUnanswered) {
  Bytes probe = PacketBuilder()
                    .eth("ff:ff:ff:ff:ff:ff", kPodAMac)
                    .arp(1, kPodAMac, "0.0.0.0", "10.244.1.2")
                    .build();
  rte_mbuf* m;
  PacketMeta meta = run(probe, 0, &m);
  EXPECT_EQ(meta.drop, DropReason::kArpNotAnswered);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, AnswersPingToTheGateway) {
  Bytes in = fromA().ipv4("10.244.1.2", "169.254.1.1").icmpEcho(9, 3).payload(24).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);
  Bytes out = testing::mbufBytes(m);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(&out[14]);
  EXPECT_EQ(rte_be_to_cpu_32(ip->src_addr), testing::ip("169.254.1.1").value);
  EXPECT_EQ(rte_be_to_cpu_32(ip->dst_addr), testing::ip("10.244.1.2").value);
  EXPECT_EQ(out[34], RTE_IP_ICMP_ECHO_REPLY);
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
  EXPECT_EQ(testing::internetChecksum(&out[34], out.size() - 34), 0);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, RejectsWhatAPodMustNotSend) {
  struct Case {
    const char* name;
    Bytes frame;
    DropReason drop;
  } cases[] = {
      {"spoofed source", fromA().ipv4("10.244.1.99", "10.244.1.3").udp(1, 2).build(),
       DropReason::kPodSourceSpoofed},
      {"zero source", fromA().ipv4("0.0.0.0", "10.244.1.3").udp(68, 67).build(),
       DropReason::kIpv4SourceInvalid},
      {"vlan tagged", fromA().vlan(5).ipv4("10.244.1.2", "10.244.1.3").udp(1, 2).build(),
       DropReason::kPodVlanTagged},
      {"not to our mac",
       PacketBuilder()
           .eth("0a:00:00:00:00:99", kPodAMac)
           .ipv4("10.244.1.2", "10.244.1.3")
           .udp(1, 2)
           .build(),
       DropReason::kEthDstNotLocal},
      {"multicast",
       PacketBuilder()
           .eth("01:00:5e:00:00:fb", kPodAMac)
           .ipv4("10.244.1.2", "224.0.0.251")
           .udp(5353, 5353)
           .build(),
       DropReason::kIpv4DstMulticast},
      {"broadcast to our mac", fromA().ipv4("10.244.1.2", "255.255.255.255").udp(1, 2).build(),
       DropReason::kIpv4DstMulticast},
      {"unknown pod in our cidr", fromA().ipv4("10.244.1.77", "10.244.1.77").udp(1, 2).build(),
       DropReason::kPodSourceSpoofed},
      {"to a pod that does not exist", fromA().ipv4("10.244.1.2", "10.244.1.77").udp(1, 2).build(),
       DropReason::kPodUnknown},
      {"outside every prefix", fromA().ipv4("10.244.1.2", "8.8.8.8").udp(1, 53).build(),
       DropReason::kNoRoute},
      {"tcp to the gateway", fromA().ipv4("10.244.1.2", "169.254.1.1").tcp(1, 22).build(),
       DropReason::kGatewayUnsupported},
  };
  for (auto& c : cases) {
    rte_mbuf* m;
    PacketMeta meta = run(c.frame, 0, &m);
    EXPECT_EQ(meta.action, Action::kDrop) << c.name;
    EXPECT_EQ(dropReasonInfo(meta.drop).name, dropReasonInfo(c.drop).name) << c.name;
    rte_pktmbuf_free(m);
  }
}

TEST_F(PipelineTest, ExpiringTtlTurnsIntoTimeExceeded) {
  Bytes in = fromA().ipv4("10.244.1.2", "10.244.1.3", 1).udp(33434, 33434).payload(32).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, 0, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0);  // back to the sender
  Bytes out = testing::mbufBytes(m);
  ASSERT_EQ(out.size(), 14u + 20 + 8 + (20 + 8 + 32));
  EXPECT_EQ(0, memcmp(&out[0], testing::mac(kPodAMac).bytes.data(), 6));
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(&out[14]);
  EXPECT_EQ(ip->next_proto_id, IPPROTO_ICMP);
  EXPECT_EQ(rte_be_to_cpu_32(ip->src_addr), testing::ip("192.168.50.10").value);
  EXPECT_EQ(rte_be_to_cpu_32(ip->dst_addr), testing::ip("10.244.1.2").value);
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
  EXPECT_EQ(out[34], 11);  // time exceeded
  EXPECT_EQ(out[35], 0);   // in transit
  EXPECT_EQ(testing::internetChecksum(&out[34], out.size() - 34), 0);
  // The quote is the original datagram as it arrived.
  EXPECT_TRUE(std::equal(in.begin() + 14, in.end(), out.begin() + 42));
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kIpv4TtlExpired)].read(), 1u);
  EXPECT_EQ(counters_.icmpErrorsSent.read(), 1u);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, IcmpErrorsAreRateLimited) {
  ctx_.icmpLimiter.configure(1'000'000'000, 1, 2);  // burst of 2, then one per second
  int sent = 0;
  for (int i = 0; i < 10; ++i) {
    rte_mbuf* m;
    PacketMeta meta = run(fromA().ipv4("10.244.1.2", "10.244.1.3", 1).udp(1, 2).build(), 0, &m);
    if (meta.action == Action::kTransmit)
      ++sent;
    else
      EXPECT_EQ(meta.drop, DropReason::kIpv4TtlExpired);
    rte_pktmbuf_free(m);
  }
  EXPECT_EQ(sent, 2);
  EXPECT_EQ(counters_.icmpRateLimited.read(), 8u);
}

TEST_F(PipelineTest, NeverAnswersIcmpErrorsWithIcmpErrors) {
  // An ICMP error (dest unreachable) with TTL 1: dropped, no error about the error.
  Bytes in = fromA().ipv4("10.244.1.2", "10.244.1.3", 1).icmpEcho(0, 0).payload(28).build();
  in[34] = 3;  // type: destination unreachable
  in[36] = in[37] = 0;
  uint16_t c = testing::internetChecksum(&in[34], in.size() - 34);
  in[36] = static_cast<uint8_t>(c >> 8);
  in[37] = static_cast<uint8_t>(c);
  rte_mbuf* m;
  PacketMeta meta = run(in, 0, &m);
  EXPECT_EQ(meta.action, Action::kDrop);
  EXPECT_EQ(meta.drop, DropReason::kIpv4TtlExpired);
  EXPECT_EQ(counters_.icmpErrorsSent.read(), 0u);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, UplinkTrafficIsNotServedYet) {
  // A port without a role in the snapshot (e.g. just detached): every packet is counted.
  Bytes in = PacketBuilder().ipv4("192.168.50.1", "10.244.1.3").udp(1, 2).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, 9, &m);
  EXPECT_EQ(meta.drop, DropReason::kPortNotServed);
  rte_pktmbuf_free(m);
}

TEST_F(PipelineTest, ABurstMixesVerdictsPerPacket) {
  Burst burst;
  burst.inPort = 0;
  const Bytes frames[] = {
      fromA().ipv4("10.244.1.2", "10.244.1.3").tcp(1, 2).build(),
      fromA().ipv4("10.244.1.2", "8.8.8.8").tcp(1, 2).build(),
      PacketBuilder()
          .eth("ff:ff:ff:ff:ff:ff", kPodAMac)
          .arp(1, kPodAMac, "10.244.1.2", "169.254.1.1")
          .build(),
      Bytes(5, 0),
      fromA().ipv4("10.244.1.2", "10.244.1.3").udp(1, 2).build(),
  };
  for (const Bytes& f : frames) burst.pkts[burst.count++] = testing::makeMbuf(f, 0);
  runStages(burst, *backend_.current(), ctx_);
  EXPECT_EQ(burst.meta[0].action, Action::kTransmit);
  EXPECT_EQ(burst.meta[0].outPort, 1);
  EXPECT_EQ(burst.meta[1].drop, DropReason::kNoRoute);
  EXPECT_EQ(burst.meta[2].action, Action::kTransmit);
  EXPECT_EQ(burst.meta[2].outPort, 0);
  EXPECT_EQ(burst.meta[3].drop, DropReason::kEthTruncated);
  EXPECT_EQ(burst.meta[4].outPort, 1);
  for (uint16_t i = 0; i < burst.count; ++i) rte_pktmbuf_free(burst.pkts[i]);
}

}  // namespace
}  // namespace nodeplane::dataplane
