// Encapsulation and decapsulation through the real stages, byte for byte where it matters, and
// every bad-input class of the uplink with its own counter.
#include <gtest/gtest.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <set>

#include "tests/unit/support/overlay_fixture.h"

namespace nodeplane::testing {
namespace {

using nodeplane::Action;
using nodeplane::DropReason;
using nodeplane::PuntReason;

std::array<uint8_t, 6> macAt(const Bytes& b, size_t at) {
  return {b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]};
}

// TCP/UDP checksum of the L4 segment at `l4` inside the IPv4 datagram at `ipAt`.
bool l4ChecksumValid(const Bytes& b, size_t ipAt) {
  const size_t ihl = (b[ipAt] & 0xf) * 4u;
  const size_t total = get16(b, ipAt + 2);
  Bytes pseudo(12);
  std::copy(b.begin() + ipAt + 12, b.begin() + ipAt + 20, pseudo.begin());
  pseudo[9] = b[ipAt + 9];
  pseudo[10] = static_cast<uint8_t>((total - ihl) >> 8);
  pseudo[11] = static_cast<uint8_t>(total - ihl);
  pseudo.insert(pseudo.end(), b.begin() + ipAt + ihl, b.begin() + ipAt + total);
  return internetChecksum(pseudo.data(), pseudo.size()) == 0;
}

TEST_F(OverlayFixture, EncapsulatesAsRfc7348AndTheKernelExpect) {
  resolvePeer();
  Bytes inner = fromPod().ipv4(kPodIp, "10.244.2.7", 64).tcp(40000, 8080, 0x10).payload(20).build();
  rte_mbuf* m;
  auto meta = run(inner, kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, kUplinkPort);
  Bytes out = mbufBytes(m);
  ASSERT_EQ(out.size(), inner.size() + 50);
  // Outer Ethernet: to the peer's underlay MAC from our uplink.
  EXPECT_EQ(macAt(out, 0), mac(kPeerMac).bytes);
  EXPECT_EQ(macAt(out, 6), mac(kUplinkMac).bytes);
  EXPECT_EQ(get16(out, 12), 0x0800);
  // Outer IPv4.
  EXPECT_EQ(out[14], 0x45);
  EXPECT_EQ(get16(out, 16), inner.size() + 36);
  EXPECT_EQ(get16(out, 20), 0x4000);  // DF, no fragment offset
  EXPECT_EQ(out[22], 64);
  EXPECT_EQ(out[23], IPPROTO_UDP);
  EXPECT_EQ(internetChecksum(&out[14], 20), 0);
  EXPECT_EQ(get16(out, 26) << 16 | get16(out, 28), ip(kNodeIp).value);
  EXPECT_EQ(get16(out, 30) << 16 | get16(out, 32), ip(kPeerIp).value);
  // UDP: entropy source port, VXLAN port, length, no checksum.
  EXPECT_GE(get16(out, 34), 49152);
  EXPECT_EQ(get16(out, 36), 4789);
  EXPECT_EQ(get16(out, 38), inner.size() + 16);
  EXPECT_EQ(get16(out, 40), 0);
  // VXLAN: I flag, VNI 1.
  EXPECT_EQ(out[42], 0x08);
  EXPECT_EQ((out[46] << 16 | out[47] << 8 | out[48]), 1);
  EXPECT_EQ(out[49], 0);
  // Inner: our VTEP to theirs, TTL - 1, the rest untouched.
  EXPECT_EQ(macAt(out, 50), mac(kPeerVtep).bytes);
  EXPECT_EQ(macAt(out, 56), mac(kOurVtep).bytes);
  EXPECT_EQ(out[50 + 14 + 8], 63);
  EXPECT_EQ(internetChecksum(&out[64], 20), 0);
  EXPECT_TRUE(std::equal(inner.begin() + 34, inner.end(), out.begin() + 84));
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, SourcePortFollowsTheFlow) {
  resolvePeer();
  std::set<uint16_t> ports;
  uint16_t first = 0;
  for (int rep = 0; rep < 2; ++rep)
    for (uint16_t sport = 1000; sport < 1064; ++sport) {
      rte_mbuf* m;
      auto meta = run(fromPod().ipv4(kPodIp, "10.244.2.7").udp(sport, 53).build(), kPodPort, &m);
      ASSERT_EQ(meta.action, Action::kTransmit);
      Bytes out = mbufBytes(m);
      if (sport == 1000 && rep == 0) first = get16(out, 34);
      if (sport == 1000 && rep == 1) EXPECT_EQ(get16(out, 34), first) << "same flow, same port";
      ports.insert(get16(out, 34));
      rte_pktmbuf_free(m);
    }
  EXPECT_GT(ports.size(), 48u) << "64 flows should spread over many source ports";
}

TEST_F(OverlayFixture, UnresolvedNextHopHandsTheEncapsulatedPacketToTheControlThread) {
  rte_mbuf* m;
  auto meta = run(fromPod().ipv4(kPodIp, "10.244.2.7").udp(1, 2).build(), kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kPunt);
  EXPECT_EQ(meta.punt, PuntReason::kAwaitNeighbor);
  EXPECT_EQ(meta.aux, rte_cpu_to_be_32(ip(kPeerIp).value));
  EXPECT_EQ(m->pkt_len, 42u + 50);  // already encapsulated: only the outer MAC is missing
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, TooBigWithDfGetsFragmentationNeededWithTheOverlayMtu) {
  resolvePeer();
  Bytes big = fromPod().ipv4(kPodIp, "10.244.2.7").dontFragment().udp(1, 2).payload(1472).build();
  rte_mbuf* m;
  auto meta = run(big, kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, kPodPort);  // back to the pod
  Bytes out = mbufBytes(m);
  EXPECT_EQ(macAt(out, 0), mac(kPodMac).bytes);
  EXPECT_EQ(get16(out, 26) << 16 | get16(out, 28), ip(kNodeIp).value);
  EXPECT_EQ(get16(out, 30) << 16 | get16(out, 32), ip(kPodIp).value);
  EXPECT_EQ(out[34], 3);            // destination unreachable
  EXPECT_EQ(out[35], 4);            // fragmentation needed and DF set
  EXPECT_EQ(get16(out, 38), 0);     // unused
  EXPECT_EQ(get16(out, 40), 1450);  // next-hop MTU
  EXPECT_EQ(internetChecksum(&out[34], out.size() - 34), 0);
  EXPECT_TRUE(std::equal(big.begin() + 14, big.begin() + 14 + 28, out.begin() + 42));
  EXPECT_EQ(counters.drops[static_cast<size_t>(DropReason::kFragmentationNeeded)].read(), 1u);
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, TooBigWithoutDfGoesToTheControlThreadToBeFragmented) {
  resolvePeer();
  rte_mbuf* m;
  auto meta =
      run(fromPod().ipv4(kPodIp, "10.244.2.7").udp(1, 2).payload(1472).build(), kPodPort, &m);
  EXPECT_EQ(meta.action, Action::kPunt);
  EXPECT_EQ(meta.punt, PuntReason::kFragment);
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, SynMssIsClampedOnTheWayIn) {
  resolvePeer();
  Bytes syn = fromPod().ipv4(kPodIp, "10.244.2.7").tcp(40000, 80, 0x02).build();
  // A TCP header with options: NOP, MSS 1460 (the MSS at an odd offset), then end.
  syn[14 + 2] = 0;
  syn[14 + 3] = 20 + 28;
  syn[14 + 20 + 12] = (7 << 4);
  const Bytes options = {1, 2, 4, 0x05, 0xb4, 0, 0, 0};
  syn.insert(syn.end(), options.begin(), options.end());
  // Recompute IPv4 and TCP checksums for the grown packet.
  syn[24] = syn[25] = 0;
  uint16_t c = internetChecksum(&syn[14], 20);
  syn[24] = static_cast<uint8_t>(c >> 8), syn[25] = static_cast<uint8_t>(c);
  syn[14 + 20 + 16] = syn[14 + 20 + 17] = 0;
  {
    Bytes pseudo(12);
    std::copy(syn.begin() + 26, syn.begin() + 34, pseudo.begin());
    pseudo[9] = 6;
    pseudo[11] = 28;
    pseudo.insert(pseudo.end(), syn.begin() + 34, syn.end());
    c = internetChecksum(pseudo.data(), pseudo.size());
    syn[14 + 20 + 16] = static_cast<uint8_t>(c >> 8), syn[14 + 20 + 17] = static_cast<uint8_t>(c);
  }
  ASSERT_TRUE(l4ChecksumValid(syn, 14));
  rte_mbuf* m;
  auto meta = run(syn, kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  Bytes out = mbufBytes(m);
  const size_t tcp = 50 + 14 + 20;
  EXPECT_EQ(get16(out, tcp + 20 + 3), 1410);
  EXPECT_TRUE(l4ChecksumValid(out, 50 + 14));
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, DecapsulatesToTheLocalPod) {
  resolvePeer();
  Bytes inner = PacketBuilder()
                    .eth(kOurVtep, kPeerVtep)
                    .ipv4("10.244.2.7", kPodIp, 63)
                    .udp(7, 7001)
                    .payload(10)
                    .build();
  rte_mbuf* m;
  auto meta = run(vxlan(inner), kUplinkPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kPodPort);
  Bytes out = mbufBytes(m);
  ASSERT_EQ(out.size(), inner.size());
  EXPECT_EQ(macAt(out, 0), mac(kPodMac).bytes);
  EXPECT_EQ(macAt(out, 6), mac(kPodPortMac).bytes);
  EXPECT_EQ(out[22], 62);
  EXPECT_TRUE(std::equal(inner.begin() + 34, inner.end(), out.begin() + 34));
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, AnswersArpForOurPodCidrInsideTheTunnel) {
  resolvePeer();
  Bytes request = PacketBuilder()
                      .eth("ff:ff:ff:ff:ff:ff", kPeerVtep)
                      .arp(1, kPeerVtep, "10.244.2.0", "10.244.1.0")
                      .build();
  rte_mbuf* m;
  auto meta = run(vxlan(request), kUplinkPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kUplinkPort);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(get16(out, 36), 4789);
  const size_t arp = 50 + 14;
  EXPECT_EQ(get16(out, arp + 6), 2);                    // reply
  EXPECT_EQ(macAt(out, arp + 8), mac(kOurVtep).bytes);  // 10.244.1.0 is at our VTEP
  EXPECT_EQ(macAt(out, 50), mac(kPeerVtep).bytes);
  rte_pktmbuf_free(m);
}

TEST_F(OverlayFixture, UplinkArpAndPingForTheNode) {
  rte_mbuf* m;
  auto meta = run(
      PacketBuilder().eth("ff:ff:ff:ff:ff:ff", kPeerMac).arp(1, kPeerMac, kPeerIp, kNodeIp).build(),
      kUplinkPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  Bytes out = mbufBytes(m);
  EXPECT_EQ(macAt(out, 14 + 8), mac(kUplinkMac).bytes);
  rte_pktmbuf_free(m);

  meta = run(PacketBuilder()
                 .eth(kUplinkMac, kPeerMac)
                 .arp(2, kPeerMac, kPeerIp, kNodeIp, kUplinkMac)
                 .build(),
             kUplinkPort, &m);
  EXPECT_EQ(meta.action, Action::kPunt);
  EXPECT_EQ(meta.punt, PuntReason::kArp);
  rte_pktmbuf_free(m);

  meta =
      run(PacketBuilder().eth(kUplinkMac, kPeerMac).ipv4(kPeerIp, kNodeIp).icmpEcho(1, 1).build(),
          kUplinkPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(mbufBytes(m)[34], 0);  // echo reply
  rte_pktmbuf_free(m);
}

struct BadUplinkCase {
  const char* name;
  std::function<Bytes(OverlayFixture&)> frame;
  DropReason drop;
};

TEST_F(OverlayFixture, EveryBadUplinkClassHasItsCounter) {
  resolvePeer();
  const Bytes inner =
      PacketBuilder().eth(kOurVtep, kPeerVtep).ipv4("10.244.2.7", kPodIp).udp(7, 7001).build();
  auto withUdpLength = [&](uint16_t len) {
    Bytes b = vxlan(inner);
    b[38] = static_cast<uint8_t>(len >> 8);
    b[39] = static_cast<uint8_t>(len);
    return b;
  };
  const BadUplinkCase cases[] = {
      {"unknown source", [&](auto& f) { return f.vxlan(inner, "192.168.50.99"); },
       DropReason::kVxlanUnknownSource},
      {"unknown vni", [&](auto& f) { return f.vxlan(inner, kPeerIp, 42); },
       DropReason::kVxlanUnknownVni},
      {"no I bit", [&](auto& f) { return f.vxlan(inner, kPeerIp, 1, 0x00); },
       DropReason::kVxlanNoIBit},
      {"vxlan truncated",
       [&](auto&) {
         return PacketBuilder()
             .eth(kUplinkMac, kPeerMac)
             .ipv4(kPeerIp, kNodeIp)
             .udp(1, 4789)
             .payload(5)
             .build();
       },
       DropReason::kVxlanTruncated},
      {"inner shorter than ethernet", [&](auto& f) { return f.vxlan(Bytes(9, 0)); },
       DropReason::kVxlanInnerTruncated},
      {"inner ipv4 cut", [&](auto& f) { return f.vxlan(Bytes(inner.begin(), inner.begin() + 30)); },
       DropReason::kVxlanInnerTruncated},
      {"inner ipv6",
       [&](auto& f) {
         Bytes i = inner;
         i[12] = 0x86, i[13] = 0xdd;
         return f.vxlan(i);
       },
       DropReason::kVxlanInnerNotIpv4},
      {"inner not for our vtep",
       [&](auto& f) {
         return f.vxlan(PacketBuilder()
                            .eth("0a:0b:0c:0d:0e:0f", kPeerVtep)
                            .ipv4("10.244.2.7", kPodIp)
                            .udp(1, 2)
                            .build());
       },
       DropReason::kVxlanInnerDstMac},
      {"inner arp for a foreign address",
       [&](auto& f) {
         return f.vxlan(PacketBuilder()
                            .eth("ff:ff:ff:ff:ff:ff", kPeerVtep)
                            .arp(1, kPeerVtep, "10.244.2.0", "10.244.9.1")
                            .build());
       },
       DropReason::kVxlanInnerArpNotOurs},
      {"udp length shorter than the datagram", [&](auto&) { return withUdpLength(30); },
       DropReason::kVxlanBadUdpLength},
      {"outer fragment",
       [&](auto&) {
         return PacketBuilder()
             .eth(kUplinkMac, kPeerMac)
             .ipv4(kPeerIp, kNodeIp)
             .fragment(0, true)
             .udp(1, 4789)
             .payload(64)
             .build();
       },
       DropReason::kVxlanOuterFragment},
      {"back into the overlay",
       [&](auto& f) {
         return f.vxlan(PacketBuilder()
                            .eth(kOurVtep, kPeerVtep)
                            .ipv4("10.244.2.7", "10.244.2.8")
                            .udp(1, 2)
                            .build());
       },
       DropReason::kOverlayLoop},
      {"not for this node",
       [&](auto&) {
         return PacketBuilder()
             .eth(kUplinkMac, kPeerMac)
             .ipv4(kPeerIp, "192.168.50.77")
             .udp(1, 2)
             .build();
       },
       DropReason::kUplinkNotForNode},
      {"the node's own traffic",
       [&](auto&) {
         return PacketBuilder().eth(kUplinkMac, kPeerMac).ipv4(kPeerIp, kNodeIp).tcp(1, 22).build();
       },
       DropReason::kHostPathUnavailable},
      // The node's own address as source: only the host path may claim it.
      {"spoofing the node",
       [&](auto&) {
         return PacketBuilder().eth(kUplinkMac, kPeerMac).ipv4(kNodeIp, kNodeIp).tcp(1, 80).build();
       },
       DropReason::kSourceIsNode},
      {"spoofing the node inside the tunnel",
       [&](auto& f) {
         return f.vxlan(
             PacketBuilder().eth(kOurVtep, kPeerVtep).ipv4(kNodeIp, kPodIp).udp(1, 2).build());
       },
       DropReason::kSourceIsNode},
      {"tagged",
       [&](auto& f) {
         Bytes b = f.vxlan(inner);
         b.insert(b.begin() + 12, {0x81, 0, 0, 5});
         return b;
       },
       DropReason::kUplinkVlanTagged},
      // Valid VXLAN, but sent to another host's MAC (a promiscuous uplink sees it).
      {"another host's frame",
       [&](auto& f) {
         Bytes b = f.vxlan(inner);
         const Bytes other = {0x52, 0x54, 0x00, 0x00, 0x00, 0x99};
         std::copy(other.begin(), other.end(), b.begin());
         return b;
       },
       DropReason::kEthDstNotLocal},
  };
  for (const auto& c : cases) {
    rte_mbuf* m;
    auto meta = run(c.frame(*this), kUplinkPort, &m);
    EXPECT_EQ(meta.action, Action::kDrop) << c.name;
    EXPECT_EQ(dropReasonInfo(meta.drop).name, dropReasonInfo(c.drop).name) << c.name;
    rte_pktmbuf_free(m);
  }
}

// A tunnel does not launder a source no host may have: the inner packet is checked as a pod's
// would be.
TEST_F(OverlayFixture, DecapsulatedPacketsWithAnInvalidSourceAreDropped) {
  resolvePeer();
  for (const char* source : {"224.0.0.1", "0.0.0.0", "255.255.255.255", "239.1.2.3"}) {
    rte_mbuf* m;
    auto meta = run(
        vxlan(PacketBuilder().eth(kOurVtep, kPeerVtep).ipv4(source, kPodIp).udp(7, 7001).build()),
        kUplinkPort, &m);
    EXPECT_EQ(meta.action, Action::kDrop) << source;
    EXPECT_EQ(dropReasonInfo(meta.drop).name, dropReasonInfo(DropReason::kIpv4SourceInvalid).name)
        << source;
    rte_pktmbuf_free(m);
  }
}

// Every truncation of a valid VXLAN frame is rejected without reading past it (ASan build).
TEST_F(OverlayFixture, EveryTruncatedVxlanFrameIsRejectedInBounds) {
  resolvePeer();
  const Bytes full =
      vxlan(PacketBuilder().eth(kOurVtep, kPeerVtep).ipv4("10.244.2.7", kPodIp).tcp(1, 2).build());
  for (size_t len = 0; len < full.size(); ++len) {
    Burst burst;
    burst.count = 1;
    burst.inPort = kUplinkPort;
    burst.pkts[0] = makeExactMbuf(Bytes(full.begin(), full.begin() + len), kUplinkPort);
    ctx.generation = snapshot().generation;
    dataplane::runStages(burst, snapshot(), ctx);
    EXPECT_EQ(burst.meta[0].action, Action::kDrop) << "cut to " << len;
    rte_pktmbuf_free(burst.pkts[0]);
  }
}

}  // namespace
}  // namespace nodeplane::testing
