// Offloads at the edges: super-packets segmented for a wire (plain and VXLAN) with every checksum
// complete, partial checksums completed exactly after NAT, segments from a wire coalesced for a
// pod without reordering anything.
#include "dataplane/offload.h"

#include <gtest/gtest.h>
#include <rte_ip.h>

#include <cstring>

#include "dataplane/parse.h"
#include "dataplane/snapshot.h"
#include "dataplane/vnet.h"
#include "lb/nat.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::Bytes;
using testing::get16;
using testing::get32;
using testing::PacketBuilder;

constexpr uint8_t kAck = 0x10, kPsh = 0x08;

Bytes pattern(size_t n, size_t from = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((from + i) % 251);
  return b;
}

bool ipChecksumOk(const Bytes& b, size_t l3) {
  const size_t ihl = (b[l3] & 0xf) * 4;
  return testing::internetChecksum(&b[l3], ihl) == 0;
}

// The TCP or UDP checksum of the datagram at `l3`, recomputed in full: 0 when right.
uint16_t l4Sum(const Bytes& b, size_t l3) {
  const size_t ihl = (b[l3] & 0xf) * 4;
  const size_t total = get16(b, l3 + 2);
  Bytes pseudo(12);
  std::copy(b.begin() + l3 + 12, b.begin() + l3 + 20, pseudo.begin());
  pseudo[9] = b[l3 + 9];
  pseudo[10] = static_cast<uint8_t>((total - ihl) >> 8);
  pseudo[11] = static_cast<uint8_t>(total - ihl);
  pseudo.insert(pseudo.end(), b.begin() + l3 + ihl, b.begin() + l3 + total);
  return testing::internetChecksum(pseudo.data(), pseudo.size());
}

// Leaves the L4 checksum as a sender with checksum offload does: the pseudo-header sum.
void makePartial(rte_mbuf* m, size_t l3, uint64_t flags) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  const size_t l4 = l3 + rte_ipv4_hdr_len(ip);
  const uint16_t sum = rte_ipv4_phdr_cksum(ip, 0);
  const size_t field = ip->next_proto_id == IPPROTO_TCP ? 16 : 6;
  std::memcpy(rte_pktmbuf_mtod_offset(m, uint8_t*, l4 + field), &sum, 2);
  m->ol_flags |= flags | RTE_MBUF_F_TX_IPV4;
}

rte_mempool* indirectPool() {
  static rte_mempool* pool = rte_pktmbuf_pool_create("np_test_indirect", 1023, 0, 0, 0, 0);
  return pool;
}

Bytes superFrame(size_t payload, uint32_t seq = 5000) {
  return PacketBuilder()
      .ipv4("10.244.1.2", "10.244.2.3")
      .dontFragment()
      .tcp(40000, 5201, kAck | kPsh)
      .tcpSeq(seq, 77)
      .payloadBytes(pattern(payload))
      .build();
}

void expectSegments(rte_mbuf** out, uint16_t count, size_t l3, size_t payload, uint16_t mss,
                    uint32_t seq) {
  Bytes joined;
  for (uint16_t i = 0; i < count; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(out[i]->ol_flags & (RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_L4_MASK), 0u);
    const Bytes b = testing::mbufBytes(out[i]);
    EXPECT_EQ(get16(b, l3 + 2), b.size() - l3);
    EXPECT_TRUE(ipChecksumOk(b, l3));
    EXPECT_EQ(l4Sum(b, l3), 0);
    const size_t tcp = l3 + 20;
    EXPECT_EQ(get32(b, tcp + 4), seq + i * mss);
    EXPECT_EQ((b[tcp + 13] & kPsh) != 0, i + 1 == count);  // PSH on the last segment only
    joined.insert(joined.end(), b.begin() + tcp + 20, b.end());
    rte_pktmbuf_free(out[i]);
  }
  EXPECT_EQ(joined, pattern(payload));
}

TEST(PrepareForWire, SegmentsATcpSuperPacketAtTheSendersSegmentSize) {
  const size_t payload = 60000;
  const uint16_t mss = 1398;
  rte_mbuf* m = testing::makeSegmentedMbuf(superFrame(payload));
  makePartial(m, 14, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
  m->tso_segsz = mss;
  WorkerCounters counters;
  rte_mbuf* out[kMaxGsoSegments];
  const rte_gso_ctx gso = makeGsoContext(testing::testPool(), indirectPool());
  const uint16_t count = prepareForWire(m, out, gso, counters);
  ASSERT_EQ(count, (payload + mss - 1) / mss);
  EXPECT_EQ(counters.gsoSuperPackets.read(), 1u);
  EXPECT_EQ(counters.gsoSegments.read(), count);
  expectSegments(out, count, 14, payload, mss, 5000);
}

// `bytes` as a chain: a first piece of `first` bytes, then pieces of `piece` bytes.
rte_mbuf* oddPieces(const Bytes& bytes, size_t first, size_t piece) {
  rte_mbuf* head = nullptr;
  for (size_t at = 0; at < bytes.size();) {
    const size_t n = std::min(bytes.size() - at, at == 0 ? first : piece);
    rte_mbuf* m = rte_pktmbuf_alloc(testing::testPool());
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(n)), &bytes[at], n);
    if (head == nullptr)
      head = m;
    else
      EXPECT_EQ(rte_pktmbuf_chain(head, m), 0);
    at += n;
  }
  return head;
}

// A super-packet in pieces of odd length (as a pod port may chain one): segments whose payload
// starts inside a piece at an odd offset. DPDK 22.11's rte_ipv4_udptcp_cksum_mbuf got these
// wrong (an unfolded sum byte-swapped); every segment's checksum must verify when flattened.
TEST(PrepareForWire, SegmentChecksumsAreExactWhenThePayloadSpansOddPieces) {
  const size_t payload = 20000;
  const uint16_t mss = 1391;
  for (uint16_t first : {uint16_t{66 + 101}, uint16_t{66 + 1001}, uint16_t{66 + 7}}) {
    SCOPED_TRACE(first);
    rte_mbuf* m = oddPieces(superFrame(payload), first, 1001);
    makePartial(m, 14, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
    m->tso_segsz = mss;
    WorkerCounters counters;
    rte_mbuf* out[kMaxGsoSegments];
    const rte_gso_ctx gso = makeGsoContext(testing::testPool(), indirectPool());
    const uint16_t count = prepareForWire(m, out, gso, counters);
    ASSERT_EQ(count, (payload + mss - 1) / mss);
    expectSegments(out, count, 14, payload, mss, 5000);
  }
}

TEST(PrepareForWire, SegmentsAVxlanEncapsulatedSuperPacket) {
  const size_t payload = 20000;
  const uint16_t mss = 1398;
  const Bytes inner = superFrame(payload, 9);
  Bytes vxlan = {0x08, 0, 0, 0, 0, 0, 1, 0};  // VNI 1
  vxlan.insert(vxlan.end(), inner.begin(), inner.end());
  const Bytes outer = PacketBuilder()
                          .ipv4("192.168.50.10", "192.168.50.11")
                          .udp(49152, 4789)
                          .payloadBytes(vxlan)
                          .build();
  rte_mbuf* m = testing::makeSegmentedMbuf(outer);
  constexpr size_t kInnerL3 = 14 + 20 + 8 + 8 + 14;
  makePartial(m, kInnerL3, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
  m->ol_flags |= RTE_MBUF_F_TX_TUNNEL_VXLAN | RTE_MBUF_F_TX_OUTER_IPV4;
  // The overlay leaves the outer checksum to the segmentation.
  rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14)->hdr_checksum = 0;
  m->tso_segsz = mss;
  WorkerCounters counters;
  rte_mbuf* out[kMaxGsoSegments];
  const uint16_t count =
      prepareForWire(m, out, makeGsoContext(testing::testPool(), indirectPool()), counters);
  ASSERT_EQ(count, (payload + mss - 1) / mss);
  for (uint16_t i = 0; i < count; ++i) {
    const Bytes b = testing::mbufBytes(out[i]);
    EXPECT_TRUE(ipChecksumOk(b, 14)) << i;
    EXPECT_EQ(get16(b, 16), b.size() - 14) << i;
    EXPECT_EQ(get16(b, 14 + 20 + 4), b.size() - 34) << i;    // the UDP length
    EXPECT_EQ(get16(b, 14 + 20 + 8 + 8 + 12), 0x0800) << i;  // the inner frame follows
  }
  expectSegments(out, count, kInnerL3, payload, mss, 9);
}

TEST(PrepareForWire, APartialChecksumIsExactAfterNat) {
  for (const bool tcp : {true, false}) {
    SCOPED_TRACE(tcp ? "TCP" : "UDP");
    PacketBuilder b;
    b.ipv4("10.244.1.2", "10.96.0.10");
    if (tcp)
      b.tcp(40000, 80, kAck);
    else
      b.udp(40000, 53);
    rte_mbuf* m = testing::makeMbuf(b.payloadBytes(pattern(333)).build());
    makePartial(m, 14, tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
    PacketMeta meta;
    parsePacket(m, meta);
    ASSERT_EQ(meta.action, Action::kContinue);
    // DNAT to a backend, then SNAT (masquerade) of the source: addresses and ports change.
    lb::natRewrite(m, meta, false, rte_cpu_to_be_32(0x0af40203), rte_cpu_to_be_16(8080));
    lb::natRewrite(m, meta, true, rte_cpu_to_be_32(0xc0a8320a), rte_cpu_to_be_16(61000));
    WorkerCounters counters;
    rte_mbuf* out[kMaxGsoSegments];
    ASSERT_EQ(prepareForWire(m, out, makeGsoContext(testing::testPool(), indirectPool()), counters),
              1);
    EXPECT_EQ(counters.checksumsCompleted.read(), 1u);
    const Bytes wire = testing::mbufBytes(out[0]);
    EXPECT_EQ(l4Sum(wire, 14), 0);
    EXPECT_TRUE(ipChecksumOk(wire, 14));
    EXPECT_EQ(get16(wire, 34 + 2), 8080);
    EXPECT_FALSE(hasPartialChecksum(out[0]));
    rte_pktmbuf_free(out[0]);
  }
}

TEST(PrepareForWire, RefusesAGsoSizeThatMakesTooManySegments) {
  rte_mbuf* m = testing::makeSegmentedMbuf(superFrame(60000));
  makePartial(m, 14, RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG);
  m->tso_segsz = 100;
  WorkerCounters counters;
  rte_mbuf* out[kMaxGsoSegments];
  EXPECT_EQ(prepareForWire(m, out, makeGsoContext(testing::testPool(), indirectPool()), counters),
            0);
  EXPECT_EQ(counters.drops[static_cast<size_t>(DropReason::kGsoTooManySegments)].read(), 1u);
}

TEST(PrepareForWire, PassesPacketsWithoutOffloadsUntouched) {
  const Bytes frame = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).payload(10).build();
  rte_mbuf* m = testing::makeMbuf(frame);
  WorkerCounters counters;
  rte_mbuf* out[kMaxGsoSegments];
  ASSERT_EQ(prepareForWire(m, out, makeGsoContext(testing::testPool(), indirectPool()), counters),
            1);
  EXPECT_EQ(out[0], m);
  EXPECT_EQ(testing::mbufBytes(m), frame);
  rte_pktmbuf_free(m);
}

// Segment `i` of a stream from a wire: 1,000 bytes of the pattern, ACK only.
rte_mbuf* wireSegment(unsigned i, uint16_t port = 0) {
  rte_mbuf* m = testing::makeMbuf(PacketBuilder()
                                      .ipv4("10.244.2.3", "10.244.1.2")
                                      .dontFragment()
                                      .tcp(5201, 40000, kAck)
                                      .tcpSeq(1000 + i * 1000, 5)
                                      .payloadBytes(pattern(1000, i * 1000))
                                      .build(),
                                  port);
  return m;
}

// The merged packet as the pod's kernel finishes it: checksum complete, the payload in order.
void expectMerged(rte_mbuf* m, unsigned first, unsigned count) {
  EXPECT_TRUE(isTcpSuperPacket(m));
  EXPECT_EQ(m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_TCP_CKSUM);
  EXPECT_EQ(m->tso_segsz, 1000u);
  completeChecksum(m, 14, 34, IPPROTO_TCP);
  const Bytes b = testing::mbufBytes(m);
  EXPECT_EQ(get16(b, 16), 40 + count * 1000);
  EXPECT_TRUE(ipChecksumOk(b, 14));
  EXPECT_EQ(l4Sum(b, 14), 0);
  EXPECT_EQ(get32(b, 38), 1000 + first * 1000);
  EXPECT_EQ(Bytes(b.begin() + 54, b.end()), pattern(count * 1000, first * 1000));
}

TEST(CoalesceForPod, MergesASegmentRunIntoOneSuperPacket) {
  rte_mbuf* pkts[8];
  for (unsigned i = 0; i < 8; ++i) pkts[i] = wireSegment(i);
  WorkerCounters counters;
  ASSERT_EQ(coalesceForPod(pkts, 8, counters), 1);
  EXPECT_EQ(counters.groSegments.read(), 8u);
  EXPECT_EQ(counters.groSuperPackets.read(), 1u);
  expectMerged(pkts[0], 0, 8);
  rte_pktmbuf_free(pkts[0]);
}

TEST(CoalesceForPod, WhatItCannotMergeKeepsItsPlace) {
  rte_mbuf* pkts[6];
  for (unsigned i = 0; i < 6; ++i) pkts[i] = wireSegment(i);
  // Segment 2's checksum is wrong: the pod's kernel must see it as it came (and drop it).
  rte_pktmbuf_mtod_offset(pkts[2], uint8_t*, 100)[0] ^= 0xff;
  rte_mbuf* bad = pkts[2];
  // Segment 5 has PSH: not merged, after the run before it.
  rte_pktmbuf_mtod_offset(pkts[5], rte_tcp_hdr*, 34)->tcp_flags |= kPsh;
  auto* tcp5 = rte_pktmbuf_mtod_offset(pkts[5], rte_tcp_hdr*, 34);
  tcp5->cksum = 0;
  tcp5->cksum = rte_ipv4_udptcp_cksum(rte_pktmbuf_mtod_offset(pkts[5], rte_ipv4_hdr*, 14), tcp5);
  rte_mbuf* psh = pkts[5];
  WorkerCounters counters;
  ASSERT_EQ(coalesceForPod(pkts, 6, counters), 4);
  EXPECT_EQ(counters.groChecksumBad.read(), 1u);
  expectMerged(pkts[0], 0, 2);
  EXPECT_EQ(pkts[1], bad);
  EXPECT_FALSE(isTcpSuperPacket(bad));
  expectMerged(pkts[2], 3, 2);
  EXPECT_EQ(pkts[3], psh);
  EXPECT_EQ(psh->nb_segs, 1);
  for (unsigned i = 0; i < 4; ++i) rte_pktmbuf_free(pkts[i]);
}

TEST(CoalesceForPod, LeavesPacketsFromPodsAlone) {
  rte_mbuf* pkts[4];
  for (unsigned i = 0; i < 4; ++i) pkts[i] = wireSegment(i, kFirstPodPort + 3);
  WorkerCounters counters;
  EXPECT_EQ(coalesceForPod(pkts, 4, counters), 4);
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(pkts[i]->nb_segs, 1);
    rte_pktmbuf_free(pkts[i]);
  }
}

}  // namespace
}  // namespace nodeplane::dataplane
