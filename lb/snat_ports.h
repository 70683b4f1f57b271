// Source ports for SNAT (masquerade, hairpin, external traffic sent on to a remote backend):
// a range (by default Linux's ephemeral range, kFirst-kLast; on an uplink shared with the node's
// kernel one above it, kSharedFirst-kSharedLast, which the uplink guard keeps from the kernel),
// split between workers (port % workers == worker) so that two workers
// never pick the same reply tuple. A pool belongs to a reply group: the far end (address, port,
// protocol) and the SNAT address; a port is free when the reply tuple it makes is not tracked.
//
// Exhaustion is cheap: a group found exhausted is remembered (a small direct-mapped cache per
// worker) and its next new flows fail at once for kRetryMs, instead of each packet probing the
// table kAttempts times again. One per worker; not shared.
#pragma once

#include <array>
#include <cstdint>

#include "lb/conntrack.h"

namespace nodeplane::lb {

class SnatPorts {
 public:
  static constexpr uint16_t kFirst = 32768;
  static constexpr uint16_t kLast = 60999;
  static constexpr uint16_t kSharedFirst = 61000;
  static constexpr uint16_t kSharedLast = 65535;
  static constexpr uint32_t kAttempts = 64;
  static constexpr uint32_t kRetryMs = 100;

  // Sets reply->dport to a free port of this worker's share, probing from `hash`. False when the
  // group's pool is exhausted (found now, or less than kRetryMs ago).
  bool allocate(const ConnShard& own, FlowKey* reply, uint32_t hash, unsigned worker,
                unsigned workers, uint32_t nowMs, uint16_t first = kFirst, uint16_t last = kLast);

 private:
  struct Exhausted {
    rte_be32_t farIp = 0, snatIp = 0;
    rte_be16_t farPort = 0;
    uint8_t proto = 0;
    bool valid = false;
    uint32_t untilMs = 0;
  };
  static constexpr uint32_t kCacheSize = 64;
  std::array<Exhausted, kCacheSize> exhausted_{};
};

}  // namespace nodeplane::lb
