// The parser against one fixture per packet class it must accept or reject (table-driven fixtures,
// docs/architecture.md), and against every truncation and many mutations of valid frames without
// reading past their end.
#include "dataplane/parse.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <rte_mbuf.h>

#include <functional>
#include <random>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::Bytes;
using testing::PacketBuilder;

constexpr size_t kIp = testing::kEthLen;  // IPv4 header offset in untagged frames

PacketBuilder tcpFrame() {
  return PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80);
}
PacketBuilder udpFrame() {
  return PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").udp(5353, 53).payload(12);
}

// Recomputes the IPv4 header checksum after a test changed a header field.
void fixIpChecksum(Bytes& b, size_t ipAt = kIp) {
  const size_t ihl = (b[ipAt] & 0xf) * 4u;
  b[ipAt + 10] = b[ipAt + 11] = 0;
  uint16_t c = testing::internetChecksum(&b[ipAt], std::min(ihl, b.size() - ipAt));
  b[ipAt + 10] = static_cast<uint8_t>(c >> 8);
  b[ipAt + 11] = static_cast<uint8_t>(c);
}
void setTotalLength(Bytes& b, uint16_t len) {
  b[kIp + 2] = static_cast<uint8_t>(len >> 8);
  b[kIp + 3] = static_cast<uint8_t>(len);
  fixIpChecksum(b);
}

struct ParseCase {
  const char* name;
  std::function<Bytes()> frame;
  Action action;
  DropReason drop = DropReason::kNone;
};

const std::vector<ParseCase>& cases() {
  static const std::vector<ParseCase> all = {
      {"tcp", [] { return tcpFrame().build(); }, Action::kContinue},
      {"udp", [] { return udpFrame().build(); }, Action::kContinue},
      {"icmp echo",
       [] { return PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").icmpEcho(7, 1).build(); },
       Action::kContinue},
      {"gre (not parsed, routed on L3)",
       [] { return PacketBuilder().ipv4("10.244.1.2", "10.0.0.1").ipProto(47).payload(8).build(); },
       Action::kContinue},
      {"ip options", [] { return tcpFrame().ipOptions(8).build(); }, Action::kContinue},
      {"ethernet padding",
       [] { return PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").udp(1, 2).padTo(60).build(); },
       Action::kContinue},
      {"802.1Q", [] { return tcpFrame().vlan(100).build(); }, Action::kContinue},
      {"QinQ", [] { return tcpFrame().vlan(10, 0x88a8).vlan(20).build(); }, Action::kContinue},
      {"arp request",
       [] {
         return PacketBuilder().arp(1, "02:00:00:00:00:02", "10.244.1.2", "169.254.1.1").build();
       },
       Action::kContinue},
      {"later fragment (no L4 expected)",
       [] { return tcpFrame().fragment(10, false).payload(16).build(); }, Action::kContinue},
      {"first fragment with whole L4 header",
       [] { return tcpFrame().fragment(0, true).payload(16).build(); }, Action::kContinue},
      // Malformed classes, one each.
      {"empty frame", [] { return Bytes(); }, Action::kDrop, DropReason::kEthTruncated},
      {"frame shorter than ethernet", [] { return Bytes(10, 0); }, Action::kDrop,
       DropReason::kEthTruncated},
      {"vlan header cut",
       [] {
         Bytes b = tcpFrame().vlan(5).build();
         b.resize(16);
         return b;
       },
       Action::kDrop, DropReason::kEthTruncated},
      {"three vlan tags", [] { return tcpFrame().vlan(1).vlan(2).vlan(3).build(); }, Action::kDrop,
       DropReason::kEthVlanTooDeep},
      {"ipv6",
       [] {
         Bytes b = tcpFrame().build();
         b[12] = 0x86;
         b[13] = 0xdd;
         return b;
       },
       Action::kDrop, DropReason::kIpv6Unsupported},
      {"lldp", [] { return PacketBuilder().build(); }, Action::kDrop,
       DropReason::kEthertypeUnsupported},
      {"ipv4 shorter than 20 bytes",
       [] {
         Bytes b = tcpFrame().build();
         b.resize(kIp + 12);
         return b;
       },
       Action::kDrop, DropReason::kIpv4Truncated},
      {"ip version 6 in an ipv4 frame",
       [] {
         Bytes b = tcpFrame().build();
         b[kIp] = 0x65;
         fixIpChecksum(b);
         return b;
       },
       Action::kDrop, DropReason::kIpv4BadVersion},
      {"ihl below 5",
       [] {
         Bytes b = tcpFrame().build();
         b[kIp] = 0x44;
         return b;
       },
       Action::kDrop, DropReason::kIpv4BadIhl},
      {"ihl beyond the packet",
       [] {
         Bytes b = PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").build();
         b[kIp] = 0x4f;  // 60-byte header in a 20-byte packet
         return b;
       },
       Action::kDrop, DropReason::kIpv4IhlBeyondPacket},
      {"total length below the header",
       [] {
         Bytes b = tcpFrame().build();
         setTotalLength(b, 12);
         return b;
       },
       Action::kDrop, DropReason::kIpv4BadTotalLength},
      {"total length beyond the frame",
       [] {
         Bytes b = tcpFrame().build();
         setTotalLength(b, 1000);
         return b;
       },
       Action::kDrop, DropReason::kIpv4TotalLengthBeyondFrame},
      {"bad header checksum",
       [] {
         Bytes b = tcpFrame().build();
         b[kIp + 10] ^= 0xff;
         return b;
       },
       Action::kDrop, DropReason::kIpv4BadChecksum},
      {"first fragment too short for the tcp header",
       [] {
         Bytes b = tcpFrame().fragment(0, true).build();
         setTotalLength(b, 20 + 12);  // 12 of the 20 TCP header bytes
         b.resize(kIp + 32);
         return b;
       },
       Action::kDrop, DropReason::kIpv4FragmentWithoutL4},
      {"tcp fragment at offset 1 (RFC 1858 overlap)",
       [] { return tcpFrame().fragment(1, true).payload(8).build(); }, Action::kDrop,
       DropReason::kIpv4FragmentWithoutL4},
      {"tcp header truncated",
       [] {
         Bytes b = tcpFrame().build();
         setTotalLength(b, 20 + 10);
         b.resize(kIp + 30);
         return b;
       },
       Action::kDrop, DropReason::kTcpTruncated},
      {"tcp data offset below 5",
       [] {
         Bytes b = tcpFrame().build();
         b[kIp + 20 + 12] = 4 << 4;
         return b;
       },
       Action::kDrop, DropReason::kTcpBadDataOffset},
      {"tcp data offset beyond the packet",
       [] {
         Bytes b = tcpFrame().build();
         b[kIp + 20 + 12] = 15 << 4;  // 60-byte TCP header in a 20-byte segment
         return b;
       },
       Action::kDrop, DropReason::kTcpTruncated},
      {"udp header truncated",
       [] {
         Bytes b = udpFrame().build();
         setTotalLength(b, 20 + 4);
         b.resize(kIp + 24);
         return b;
       },
       Action::kDrop, DropReason::kUdpTruncated},
      {"udp length below 8",
       [] {
         Bytes b = udpFrame().build();
         b[kIp + 20 + 4] = 0;
         b[kIp + 20 + 5] = 4;
         return b;
       },
       Action::kDrop, DropReason::kUdpBadLength},
      {"udp length beyond the ip payload",
       [] {
         Bytes b = udpFrame().build();
         b[kIp + 20 + 5] = 200;
         return b;
       },
       Action::kDrop, DropReason::kUdpBadLength},
      {"icmp truncated",
       [] {
         Bytes b = PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").icmpEcho(1, 1).build();
         setTotalLength(b, 20 + 4);
         b.resize(kIp + 24);
         return b;
       },
       Action::kDrop, DropReason::kIcmpTruncated},
      {"sctp truncated",
       [] {
         Bytes b = PacketBuilder().ipv4("10.244.1.2", "10.244.1.3").ipProto(132).payload(6).build();
         return b;
       },
       Action::kDrop, DropReason::kSctpTruncated},
      {"arp for another protocol",
       [] {
         Bytes b = PacketBuilder().arp(1, "02:00:00:00:00:02", "10.244.1.2", "10.244.1.1").build();
         b[14 + 2] = 0x86;  // ptype IPv6
         return b;
       },
       Action::kDrop, DropReason::kArpMalformed},
      {"arp truncated",
       [] {
         Bytes b = PacketBuilder().arp(1, "02:00:00:00:00:02", "10.244.1.2", "10.244.1.1").build();
         b.resize(14 + 20);
         return b;
       },
       Action::kDrop, DropReason::kArpMalformed},
  };
  return all;
}

class ParseFixture : public ::testing::TestWithParam<size_t> {};

TEST_P(ParseFixture, MatchesExpectedVerdict) {
  const ParseCase& c = cases()[GetParam()];
  SCOPED_TRACE(c.name);
  rte_mbuf* m = testing::makeExactMbuf(c.frame());
  PacketMeta meta;
  parsePacket(m, meta);
  EXPECT_EQ(meta.action, c.action) << c.name;
  if (c.action == Action::kDrop) {
    EXPECT_EQ(dropReasonInfo(meta.drop).name, dropReasonInfo(c.drop).name) << c.name;
  } else {
    EXPECT_LE(meta.l3Offset, m->pkt_len);
    if (meta.l3 == L3Kind::kIpv4) {
      EXPECT_LE(meta.l3Offset + meta.ipTotalLength, m->pkt_len);
      EXPECT_LE(meta.l4Offset, meta.l3Offset + meta.ipTotalLength);
    }
  }
  rte_pktmbuf_free(m);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParseFixture, ::testing::Range<size_t>(0, cases().size()),
                         [](const auto& info) {
                           std::string n = cases()[info.param].name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(Parse, ExtractsTcpFields) {
  rte_mbuf* m = testing::makeMbuf(tcpFrame().vlan(7).build());
  PacketMeta meta;
  parsePacket(m, meta);
  ASSERT_EQ(meta.action, Action::kContinue);
  EXPECT_EQ(meta.l3Offset, 18);
  EXPECT_EQ(meta.l4Offset, 38);
  EXPECT_EQ(meta.ipProto, IPPROTO_TCP);
  EXPECT_EQ(rte_be_to_cpu_16(meta.srcPort), 40000);
  EXPECT_EQ(rte_be_to_cpu_16(meta.dstPort), 80);
  EXPECT_EQ(meta.tcpFlags, 0x02);
  EXPECT_EQ(rte_be_to_cpu_32(meta.srcIp), testing::ip("10.244.1.2").value);
  EXPECT_EQ(rte_be_to_cpu_32(meta.dstIp), testing::ip("10.244.1.3").value);
  EXPECT_TRUE(meta.flags & kFlagVlanTagged);
  rte_pktmbuf_free(m);
}

TEST(Parse, HeadersSplitAcrossSegmentsAreNamed) {
  Bytes b = tcpFrame().payload(100).build();
  rte_mbuf* m = testing::makeChainedMbuf(b, kIp + 10);
  PacketMeta meta;
  parsePacket(m, meta);
  EXPECT_EQ(meta.action, Action::kDrop);
  EXPECT_EQ(meta.drop, DropReason::kHeadersNotContiguous);
  rte_pktmbuf_free(m);
}

TEST(Parse, TrustsHardwareChecksumVerdicts) {
  Bytes b = tcpFrame().build();
  b[kIp + 10] ^= 0x55;  // wrong in software terms
  rte_mbuf* m = testing::makeMbuf(b);
  m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
  PacketMeta meta;
  parsePacket(m, meta);
  EXPECT_EQ(meta.action, Action::kContinue);
  rte_pktmbuf_free(m);

  m = testing::makeMbuf(tcpFrame().build());
  m->ol_flags |= RTE_MBUF_F_RX_IP_CKSUM_BAD;
  parsePacket(m, meta);
  EXPECT_EQ(meta.drop, DropReason::kIpv4BadChecksum);
  rte_pktmbuf_free(m);
}

// Every prefix of every valid fixture: a clean verdict, and (under ASan) no read past the end.
TEST(Parse, EveryTruncationIsRejectedWithoutOverread) {
  for (const ParseCase& c : cases()) {
    if (c.action != Action::kContinue) continue;
    const Bytes full = c.frame();
    rte_mbuf* whole = testing::makeMbuf(full);
    PacketMeta ref;
    parsePacket(whole, ref);
    rte_pktmbuf_free(whole);
    const size_t needed =
        ref.l3 == L3Kind::kIpv4 ? ref.l3Offset + ref.ipTotalLength : ref.l3Offset + 28u;
    for (size_t len = 0; len < full.size(); ++len) {
      rte_mbuf* m = testing::makeExactMbuf(Bytes(full.begin(), full.begin() + len));
      PacketMeta meta;
      parsePacket(m, meta);
      if (len < needed) {
        EXPECT_EQ(meta.action, Action::kDrop) << c.name << " cut to " << len;
      }
      rte_pktmbuf_free(m);
    }
  }
}

// Random corruption of header bytes: the parser must decide something and stay in bounds.
TEST(Parse, MutatedHeadersStayInBounds) {
  std::mt19937 rng(1234);
  std::vector<Bytes> seeds;
  for (const ParseCase& c : cases())
    if (c.action == Action::kContinue) seeds.push_back(c.frame());
  for (int iteration = 0; iteration < 20000; ++iteration) {
    Bytes b = seeds[rng() % seeds.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) b[rng() % std::min<size_t>(b.size(), 64)] = rng() & 0xff;
    if (rng() % 3 == 0) b.resize(rng() % (b.size() + 1));
    rte_mbuf* m = testing::makeExactMbuf(b);
    PacketMeta meta;
    parsePacket(m, meta);
    ASSERT_TRUE(meta.action == Action::kDrop || meta.action == Action::kContinue);
    if (meta.action == Action::kContinue && meta.l3 == L3Kind::kIpv4) {
      ASSERT_LE(meta.l3Offset + meta.ipTotalLength, b.size());
      ASSERT_LE(meta.l4Offset, meta.l3Offset + meta.ipTotalLength);
    }
    rte_pktmbuf_free(m);
  }
}

}  // namespace
}  // namespace nodeplane::dataplane
