// A per-worker token bucket for generated ICMP errors (like Linux's icmp_ratelimit): a flood of
// expiring or unroutable packets must not turn the data plane into an amplifier.
#pragma once

#include <cstdint>

namespace nodeplane {

class IcmpRateLimiter {
 public:
  void configure(uint64_t tscHz, uint32_t perSecond, uint32_t burst) {
    cyclesPerToken_ = perSecond == 0 ? 0 : tscHz / perSecond;
    burst_ = burst;
    tokens_ = burst;
  }
  bool allow(uint64_t nowTsc) {
    if (cyclesPerToken_ == 0) return false;
    if (tokens_ < burst_) {
      uint64_t earned = (nowTsc - lastTsc_) / cyclesPerToken_;
      if (earned > 0) {
        tokens_ = earned >= burst_ - tokens_ ? burst_ : tokens_ + static_cast<uint32_t>(earned);
        lastTsc_ = nowTsc;
      }
    } else {
      lastTsc_ = nowTsc;
    }
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

 private:
  uint64_t cyclesPerToken_ = 0;
  uint64_t lastTsc_ = 0;
  uint32_t burst_ = 0;
  uint32_t tokens_ = 0;
};

}  // namespace nodeplane
