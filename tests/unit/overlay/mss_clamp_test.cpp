#include "overlay/mss_clamp.h"

#include <gtest/gtest.h>

#include "dataplane/parse.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::overlay {
namespace {

using testing::Bytes;

// A SYN whose TCP options are `options` (padded to a multiple of 4), checksums valid.
Bytes synWith(Bytes options, uint8_t flags = 0x02) {
  while (options.size() % 4) options.push_back(0);
  Bytes b = testing::PacketBuilder().ipv4("10.244.1.2", "10.244.2.2").tcp(1000, 80, flags).build();
  const size_t tcp = 34;
  b.insert(b.end(), options.begin(), options.end());
  b[tcp + 12] = static_cast<uint8_t>((20 + options.size()) / 4 << 4);
  const uint16_t total = static_cast<uint16_t>(b.size() - 14);
  b[16] = static_cast<uint8_t>(total >> 8), b[17] = static_cast<uint8_t>(total);
  b[24] = b[25] = 0;
  uint16_t c = testing::internetChecksum(&b[14], 20);
  b[24] = static_cast<uint8_t>(c >> 8), b[25] = static_cast<uint8_t>(c);
  b[tcp + 16] = b[tcp + 17] = 0;
  Bytes pseudo(12);
  std::copy(b.begin() + 26, b.begin() + 34, pseudo.begin());
  pseudo[9] = 6;
  pseudo[10] = static_cast<uint8_t>((total - 20) >> 8),
  pseudo[11] = static_cast<uint8_t>(total - 20);
  pseudo.insert(pseudo.end(), b.begin() + tcp, b.end());
  c = testing::internetChecksum(pseudo.data(), pseudo.size());
  b[tcp + 16] = static_cast<uint8_t>(c >> 8), b[tcp + 17] = static_cast<uint8_t>(c);
  return b;
}

bool tcpChecksumValid(const Bytes& b) {
  const uint16_t total = static_cast<uint16_t>(b[16] << 8 | b[17]);
  Bytes pseudo(12);
  std::copy(b.begin() + 26, b.begin() + 34, pseudo.begin());
  pseudo[9] = 6;
  pseudo[10] = static_cast<uint8_t>((total - 20) >> 8),
  pseudo[11] = static_cast<uint8_t>(total - 20);
  pseudo.insert(pseudo.end(), b.begin() + 34, b.begin() + 14 + total);
  return testing::internetChecksum(pseudo.data(), pseudo.size()) == 0;
}

struct Outcome {
  bool changed;
  Bytes bytes;
};

Outcome clamp(const Bytes& frame, uint16_t max) {
  rte_mbuf* m = testing::makeExactMbuf(frame);
  PacketMeta meta;
  dataplane::parsePacket(m, meta);
  EXPECT_EQ(meta.action, Action::kContinue);
  bool changed = clampMss(m, meta, max);
  Outcome o{changed, testing::mbufBytes(m)};
  rte_pktmbuf_free(m);
  return o;
}

uint16_t mssAt(const Bytes& b, size_t optionOffset) {
  return static_cast<uint16_t>(b[54 + optionOffset + 2] << 8 | b[54 + optionOffset + 3]);
}

TEST(MssClamp, LowersAnMssAboveTheLimit) {
  auto o = clamp(synWith({2, 4, 0x05, 0xb4}), 1410);
  EXPECT_TRUE(o.changed);
  EXPECT_EQ(mssAt(o.bytes, 0), 1410);
  EXPECT_TRUE(tcpChecksumValid(o.bytes));
}

TEST(MssClamp, HandlesAnMssAtAnOddOffset) {
  // NOP, MSS: the value's bytes straddle two 16-bit words of the header.
  auto o = clamp(synWith({1, 2, 4, 0x23, 0x28, 1, 1, 0}), 1410);  // MSS 9000
  EXPECT_TRUE(o.changed);
  EXPECT_EQ(mssAt(o.bytes, 1), 1410);
  EXPECT_TRUE(tcpChecksumValid(o.bytes));
}

TEST(MssClamp, FindsTheMssAfterOtherOptions) {
  // SACK-permitted, timestamps (10 bytes), window scale, then MSS.
  auto o = clamp(synWith({4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 3, 3, 7, 2, 4, 0x05, 0xb4}), 1410);
  EXPECT_TRUE(o.changed);
  EXPECT_EQ(mssAt(o.bytes, 15), 1410);
  EXPECT_TRUE(tcpChecksumValid(o.bytes));
}

TEST(MssClamp, LeavesWhatNeedsNoChange) {
  EXPECT_FALSE(clamp(synWith({2, 4, 0x05, 0x00}), 1410).changed);              // 1280: fits
  EXPECT_FALSE(clamp(synWith({2, 4, 0x05, 0xb4}, 0x10), 1410).changed);        // not a SYN
  EXPECT_FALSE(clamp(synWith({}), 1410).changed);                              // no options
  EXPECT_FALSE(clamp(synWith({1, 1, 0, 0, 2, 4, 0x05, 0xb4}), 1410).changed);  // after END
  EXPECT_FALSE(clamp(synWith({8, 0, 2, 4, 0x05, 0xb4}), 1410).changed);   // length 0: malformed
  EXPECT_FALSE(clamp(synWith({8, 40, 2, 4, 0x05, 0xb4}), 1410).changed);  // runs past header
  auto synAck = clamp(synWith({2, 4, 0x05, 0xb4}, 0x12), 1410);           // SYN-ACK: clamped
  EXPECT_TRUE(synAck.changed);
}

}  // namespace
}  // namespace nodeplane::overlay
