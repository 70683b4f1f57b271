// The virtio-net header of pod ports: each malformed class is refused with its own drop reason,
// good headers become offload flags, and flags become the header a pod's kernel takes.
#include "dataplane/vnet.h"

#include <gtest/gtest.h>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::PacketBuilder;

constexpr uint32_t kFrame = 1000;

VnetHeader tso(uint16_t gsoSize = 1400) {
  return VnetHeader{kVnetNeedsCsum, kVnetGsoTcpv4, 66, gsoSize, 34, 16};
}

struct Refused {
  const char* name;
  VnetHeader header;
  DropReason reason;
};

class VnetRefused : public ::testing::TestWithParam<Refused> {};

TEST_P(VnetRefused, WithItsOwnReason) {
  rte_mbuf* m = rte_pktmbuf_alloc(testing::testPool());
  EXPECT_EQ(vnetToMbuf(GetParam().header, kFrame, m), GetParam().reason) << GetParam().name;
  rte_pktmbuf_free(m);
}

INSTANTIATE_TEST_SUITE_P(
    EachClass, VnetRefused,
    ::testing::Values(
        Refused{"gso_size 0 with a GSO type", tso(0), DropReason::kPodVnetGsoWithoutSize},
        Refused{"UDP GSO", VnetHeader{kVnetNeedsCsum, 3, 42, 1400, 34, 6},
                DropReason::kPodVnetGsoUnsupported},
        Refused{"TCPv6 GSO", VnetHeader{kVnetNeedsCsum, 4, 74, 1400, 54, 16},
                DropReason::kPodVnetGsoUnsupported},
        Refused{"UDP L4 GSO", VnetHeader{kVnetNeedsCsum, 5, 42, 1400, 34, 6},
                DropReason::kPodVnetGsoUnsupported},
        Refused{"unknown flag", VnetHeader{0x80, kVnetGsoNone, 0, 0, 0, 0},
                DropReason::kPodVnetGsoUnsupported},
        Refused{"TSO without NEEDS_CSUM", VnetHeader{0, kVnetGsoTcpv4, 66, 1400, 0, 0},
                DropReason::kPodVnetGsoUnsupported},
        Refused{"hdr_len past the packet",
                VnetHeader{kVnetNeedsCsum, kVnetGsoTcpv4, 1001, 1400, 34, 16},
                DropReason::kPodVnetHeaderBeyondPacket},
        Refused{"csum_start past the packet", VnetHeader{kVnetNeedsCsum, 0, 0, 0, 999, 16},
                DropReason::kPodVnetChecksumBeyondPacket},
        Refused{"csum_offset past the packet", VnetHeader{kVnetNeedsCsum, 0, 0, 0, 34, 65000},
                DropReason::kPodVnetChecksumBeyondPacket},
        Refused{"csum_offset neither TCP's nor UDP's", VnetHeader{kVnetNeedsCsum, 0, 0, 0, 34, 2},
                DropReason::kPodVnetChecksumBeyondPacket}));

TEST(Vnet, GoodHeadersBecomeOffloadFlags) {
  rte_mbuf* m = rte_pktmbuf_alloc(testing::testPool());
  EXPECT_EQ(vnetToMbuf(VnetHeader{}, kFrame, m), DropReason::kNone);
  EXPECT_FALSE(hasPartialChecksum(m));
  EXPECT_EQ(vnetToMbuf(VnetHeader{kVnetDataValid, 0, 0, 0, 0, 0}, kFrame, m), DropReason::kNone);
  EXPECT_FALSE(hasPartialChecksum(m));

  EXPECT_EQ(vnetToMbuf(VnetHeader{kVnetNeedsCsum, 0, 0, 0, 34, 6}, kFrame, m), DropReason::kNone);
  EXPECT_EQ(m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_UDP_CKSUM);
  clearOffloads(m);

  VnetHeader ecn = tso(1448);
  ecn.gsoType |= kVnetGsoEcn;
  EXPECT_EQ(vnetToMbuf(ecn, kFrame, m), DropReason::kNone);
  EXPECT_TRUE(isTcpSuperPacket(m));
  EXPECT_EQ(m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_TCP_CKSUM);
  EXPECT_EQ(m->tso_segsz, 1448u);
  clearOffloads(m);
  EXPECT_FALSE(isTcpSuperPacket(m));
  EXPECT_EQ(m->tso_segsz, 0u);
  rte_pktmbuf_free(m);
}

TEST(Vnet, HeaderForAPodFromTheFlags) {
  // A TCP super-packet: GSO with the segment size, the checksum at TCP's offset.
  rte_mbuf* m = testing::makeMbuf(
      PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2, 0x10).payload(1000).build());
  m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM;
  m->tso_segsz = 500;
  VnetHeader h = vnetFromMbuf(m);
  EXPECT_EQ(h.flags, kVnetNeedsCsum);
  EXPECT_EQ(h.gsoType, kVnetGsoTcpv4);
  EXPECT_EQ(h.gsoSize, 500);
  EXPECT_EQ(h.hdrLen, 14 + 20 + 20);
  EXPECT_EQ(h.csumStart, 34);
  EXPECT_EQ(h.csumOffset, 16);
  rte_pktmbuf_free(m);

  // A UDP datagram of 4 bytes with a partial checksum (iperf3's hello): shorter than a TCP
  // header, still NEEDS_CSUM at UDP's offset.
  m = testing::makeMbuf(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).payload(4).build());
  m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
  h = vnetFromMbuf(m);
  EXPECT_EQ(h.flags, kVnetNeedsCsum);
  EXPECT_EQ(h.gsoType, kVnetGsoNone);
  EXPECT_EQ(h.csumStart, 34);
  EXPECT_EQ(h.csumOffset, 6);
  rte_pktmbuf_free(m);

  // Without offloads: an empty header (the checksums are complete).
  m = testing::makeMbuf(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build());
  h = vnetFromMbuf(m);
  EXPECT_EQ(h.flags, 0);
  EXPECT_EQ(h.gsoType, kVnetGsoNone);
  rte_pktmbuf_free(m);
}

}  // namespace
}  // namespace nodeplane::dataplane
