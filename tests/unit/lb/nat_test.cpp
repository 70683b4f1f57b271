// NAT rewrites: the incrementally updated checksums must equal a full recomputation.
#include "lb/nat.h"

#include <gtest/gtest.h>

#include <random>

#include "dataplane/parse.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::lb {
namespace {

using testing::Bytes;
using testing::get16;
using testing::PacketBuilder;

// Full recomputation of the L4 checksum over the pseudo-header (0 when valid).
uint16_t l4Sum(const Bytes& b) {
  const size_t total = get16(b, 16);
  Bytes pseudo(12);
  std::copy(b.begin() + 26, b.begin() + 34, pseudo.begin());
  pseudo[9] = b[23];
  pseudo[10] = static_cast<uint8_t>((total - 20) >> 8);
  pseudo[11] = static_cast<uint8_t>(total - 20);
  pseudo.insert(pseudo.end(), b.begin() + 34, b.begin() + 14 + total);
  return testing::internetChecksum(pseudo.data(), pseudo.size());
}

Bytes rewrite(const Bytes& in, bool source, uint32_t ip, uint16_t port) {
  rte_mbuf* m = testing::makeMbuf(in);
  PacketMeta meta;
  dataplane::parsePacket(m, meta);
  EXPECT_EQ(meta.action, Action::kContinue);
  natRewrite(m, meta, source, rte_cpu_to_be_32(ip), rte_cpu_to_be_16(port));
  Bytes out = testing::mbufBytes(m);
  rte_pktmbuf_free(m);
  return out;
}

std::string ipText(uint32_t v) {
  return Ipv4Address{v}.toString();
}

TEST(Nat, TcpAndUdpChecksumsStayExactOverRandomRewrites) {
  std::mt19937 rng(99);
  for (int i = 0; i < 3000; ++i) {
    // Any unicast source (the parser drops zero, multicast and broadcast sources).
    const uint32_t src = 0x01000000u + rng() % 0xdf000000u, dst = rng(), newIp = rng();
    const uint16_t sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng()),
                   newPort = static_cast<uint16_t>(rng());
    const bool tcp = i % 2 == 0;
    PacketBuilder b;
    b.ipv4(ipText(src).c_str(), ipText(dst).c_str());
    if (tcp)
      b.tcp(sport, dport);
    else
      b.udp(sport, dport);
    b.payload(rng() % 200);
    const Bytes in = b.build();
    ASSERT_EQ(l4Sum(in), 0);
    const bool source = rng() & 1;
    const Bytes out = rewrite(in, source, newIp, newPort);
    ASSERT_EQ(testing::internetChecksum(&out[14], 20), 0) << "IPv4 header, iteration " << i;
    ASSERT_EQ(l4Sum(out), 0) << (tcp ? "TCP" : "UDP") << ", iteration " << i;
    ASSERT_EQ(get16(out, source ? 34 : 36), newPort);
  }
}

// Globalnet's stateless translation: the address changes, the ports stay, the sums stay exact.
TEST(Nat, AddressOnlyRewritesKeepPortsAndChecksums) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t src = 0x01000000u + rng() % 0xdf000000u, dst = rng(), newIp = rng();
    const uint16_t sport = static_cast<uint16_t>(rng()), dport = static_cast<uint16_t>(rng());
    const bool tcp = i % 2 == 0;
    PacketBuilder b;
    b.ipv4(ipText(src).c_str(), ipText(dst).c_str());
    if (tcp)
      b.tcp(sport, dport);
    else
      b.udp(sport, dport);
    b.payload(rng() % 200);
    const Bytes in = b.build();
    rte_mbuf* m = testing::makeMbuf(in);
    PacketMeta meta;
    dataplane::parsePacket(m, meta);
    ASSERT_EQ(meta.action, Action::kContinue);
    const bool source = rng() & 1;
    natRewriteAddress(m, meta, source, rte_cpu_to_be_32(newIp));
    const Bytes out = testing::mbufBytes(m);
    rte_pktmbuf_free(m);
    ASSERT_EQ(testing::internetChecksum(&out[14], 20), 0) << "IPv4 header, iteration " << i;
    ASSERT_EQ(l4Sum(out), 0) << (tcp ? "TCP" : "UDP") << ", iteration " << i;
    ASSERT_EQ(get16(out, 34), sport);
    ASSERT_EQ(get16(out, 36), dport);
    ASSERT_EQ(rte_be_to_cpu_32(source ? meta.srcIp : meta.dstIp), newIp);
  }
}

TEST(Nat, UdpWithoutChecksumKeepsNone) {
  Bytes in = PacketBuilder().ipv4("10.0.0.1", "10.96.0.10").udp(1000, 53).payload(9).build();
  in[40] = in[41] = 0;  // no checksum
  const Bytes out = rewrite(in, false, 0x0af40105, 5353);
  EXPECT_EQ(get16(out, 40), 0);
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
}

TEST(Nat, IcmpEchoIdentifierIsThePort) {
  for (bool request : {true, false}) {
    const Bytes in = PacketBuilder()
                         .ipv4("10.244.1.2", "203.0.113.10")
                         .icmpEcho(777, 1, request)
                         .payload(16)
                         .build();
    const Bytes out = rewrite(in, request, 0xc0a8320a, 40001);  // SNAT request / un-SNAT reply
    EXPECT_EQ(get16(out, 38), 40001) << "identifier";
    EXPECT_EQ(testing::internetChecksum(&out[34], out.size() - 34), 0) << "ICMP checksum";
    EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
  }
}

TEST(Nat, LaterFragmentsOnlyGetTheirAddressRewritten) {
  const Bytes in =
      PacketBuilder().ipv4("10.0.0.1", "10.96.0.10").fragment(10, false).payload(24, 0x55).build();
  const Bytes out = rewrite(in, false, 0x0af40105, 8080);
  EXPECT_EQ(testing::internetChecksum(&out[14], 20), 0);
  EXPECT_TRUE(std::equal(in.begin() + 34, in.end(), out.begin() + 34)) << "payload untouched";
}

}  // namespace
}  // namespace nodeplane::lb
