// What workers count about services' backends, kept for the daemon's lifetime: backend slots
// outlive snapshots, so their counters do too. One block per worker (its only writer, plain
// load+store); the control thread sums blocks. Fixed capacity: slots past it share the last
// counter. A slot is reused for another backend after the first one left; the control plane keeps
// each slot's total at the time it was handed out and reports the difference.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/counters.h"

namespace nodeplane::lb {

class BackendCounters {
 public:
  static constexpr uint32_t kDefaultSlots = 1u << 16;

  BackendCounters(unsigned workers, uint32_t slots)
      : slots_(std::max<uint32_t>(slots, 2)), snatExhausted_(size_t{workers} * slots_) {}

  // New flows to this backend dropped because no SNAT source port was free (worker-side).
  Counter& snatExhausted(unsigned worker, uint32_t slot) {
    return snatExhausted_[size_t{worker} * slots_ + std::min(slot, slots_ - 1)];
  }
  // The sum over workers (control thread).
  uint64_t snatExhaustedTotal(uint32_t slot) const {
    uint64_t sum = 0;
    const size_t workers = snatExhausted_.size() / slots_;
    for (size_t w = 0; w < workers; ++w)
      sum += snatExhausted_[w * slots_ + std::min(slot, slots_ - 1)].read();
    return sum;
  }

 private:
  uint32_t slots_;
  std::vector<Counter> snatExhausted_;
};

}  // namespace nodeplane::lb
