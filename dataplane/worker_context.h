// What one worker owns besides its burst: counters, rate limiter, identity. Never shared.
#pragma once

#include <cstdint>

#include "dataplane/counters.h"
#include "dataplane/icmp_rate_limiter.h"

namespace nodeplane::dataplane {

struct WorkerContext {
  uint16_t workerIndex = 0;  // also the TX queue this worker uses on every port
  WorkerCounters* counters = nullptr;
  IcmpRateLimiter icmpLimiter;
};

}  // namespace nodeplane::dataplane
