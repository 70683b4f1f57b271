// The anti-replay window of RFC 4303 section 3.4.3, as a ring of 64-bit buckets (RFC 6479): a
// sequence number is accepted when it is ahead of the highest seen or inside the window and not
// yet seen, and marked only once its packet has authenticated.
//
// ESP SAs keep this one beside rte_ipsec's: DPDK's esn_inb_update_sqn() (22.11, and upstream as
// of this writing) builds the bucket bit in a uint32_t, so sequence numbers in the upper half of
// every bucket (32-63, 96-127, ...) are never marked as seen and can be replayed. rte_ipsec's
// window still refuses what is behind it; this one refuses duplicates.
// One writer (the SA's worker); no allocation after construction.
#pragma once

#include <cstdint>
#include <vector>

namespace nodeplane::overlay {

class ReplayWindow {
 public:
  // `size`: sequence numbers behind the highest that are still accepted once (rounded up to a
  // multiple of 64).
  explicit ReplayWindow(uint32_t size) {
    uint32_t buckets = 2;
    while (buckets * 64 < size + 64) buckets *= 2;
    bits_.assign(buckets, 0);
    size_ = size;
  }

  bool acceptable(uint64_t seq) const {
    if (seq == 0) return false;
    if (seq > top_) return true;
    if (seq + size_ <= top_) return false;
    return !(bits_[(seq >> 6) & mask()] & (uint64_t{1} << (seq & 63)));
  }

  // Marks `seq` seen (call only for an authenticated packet that was acceptable()).
  void mark(uint64_t seq) {
    if (seq > top_) {
      const uint64_t from = top_ >> 6, to = seq >> 6;
      const uint64_t clear = to - from < bits_.size() ? to - from : bits_.size();
      for (uint64_t b = 1; b <= clear; ++b) bits_[(from + b) & mask()] = 0;
      top_ = seq;
    }
    bits_[(seq >> 6) & mask()] |= uint64_t{1} << (seq & 63);
  }

  uint64_t highest() const { return top_; }

 private:
  uint64_t mask() const { return bits_.size() - 1; }
  std::vector<uint64_t> bits_;
  uint64_t top_ = 0;
  uint32_t size_ = 0;
};

}  // namespace nodeplane::overlay
