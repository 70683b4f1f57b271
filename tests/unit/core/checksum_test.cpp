// Incremental checksum updates (RFC 1624) must equal a full recomputation, for every value.
#include "core/checksum.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane {
namespace {

rte_ipv4_hdr randomHeader(std::mt19937& rng) {
  rte_ipv4_hdr h{};
  auto* w = reinterpret_cast<uint16_t*>(&h);
  for (int i = 0; i < 10; ++i) w[i] = static_cast<uint16_t>(rng());
  h.version_ihl = 0x45;
  h.hdr_checksum = 0;
  h.hdr_checksum = rte_ipv4_cksum(&h);
  return h;
}

TEST(Checksum, TtlDecrementMatchesRecomputation) {
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    rte_ipv4_hdr h = randomHeader(rng);
    if (h.time_to_live <= 1)
      h.time_to_live = 2, h.hdr_checksum = 0, h.hdr_checksum = rte_ipv4_cksum(&h);
    decrementTtl(&h);
    rte_ipv4_hdr ref = h;
    ref.hdr_checksum = 0;
    ASSERT_EQ(h.hdr_checksum, rte_ipv4_cksum(&ref)) << "iteration " << i;
  }
}

TEST(Checksum, AddressRewriteMatchesRecomputation) {
  std::mt19937 rng(11);
  for (int i = 0; i < 100000; ++i) {
    rte_ipv4_hdr h = randomHeader(rng);
    const rte_be32_t old = h.dst_addr;
    const rte_be32_t next = static_cast<rte_be32_t>(rng());
    h.dst_addr = next;
    h.hdr_checksum = checksumUpdate32(h.hdr_checksum, old, next);
    rte_ipv4_hdr ref = h;
    ref.hdr_checksum = 0;
    // One's complement has two zeros; the header sums to 0xffff either way.
    ASSERT_EQ(rte_raw_cksum(&h, sizeof(h)), 0xffff) << "iteration " << i;
  }
}

TEST(Checksum, WordUpdateMatchesRecomputation) {
  std::mt19937 rng(13);
  for (int i = 0; i < 100000; ++i) {
    rte_ipv4_hdr h = randomHeader(rng);
    const rte_be16_t old = h.packet_id;
    const rte_be16_t next = static_cast<rte_be16_t>(rng());
    h.packet_id = next;
    h.hdr_checksum = checksumUpdate16(h.hdr_checksum, old, next);
    ASSERT_EQ(rte_raw_cksum(&h, sizeof(h)), 0xffff) << "iteration " << i;
  }
}

}  // namespace
}  // namespace nodeplane
