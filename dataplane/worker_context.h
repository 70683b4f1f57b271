// What one worker owns besides its burst: counters, rate limiter, caches, its ring to the control
// thread. Never shared between workers.
#pragma once

#include <cstdint>

#include "core/counters.h"
#include "core/icmp_rate_limiter.h"
#include "lb/snat_ports.h"
#include "overlay/decap.h"

struct rte_ring;

namespace nodeplane::dataplane {

class FlowLog;

// An element of a worker's punt ring (worker -> control thread).
struct PuntedPacket {
  rte_mbuf* mbuf;
  uint8_t reason;  // PuntReason
  uint8_t worker;
  uint16_t inPort;
  uint32_t aux;
};
static_assert(sizeof(PuntedPacket) == 16);

// An element of a worker's inject ring (control thread -> worker): send `mbuf` on `port`.
struct InjectedPacket {
  rte_mbuf* mbuf;
  uint16_t port;
  uint16_t pad[3];
};
static_assert(sizeof(InjectedPacket) == 16);

struct WorkerContext {
  uint16_t workerIndex = 0;  // also the TX queue this worker uses on every port
  uint16_t workerCount = 1;
  uint32_t nowMs = 0;       // coarse clock for flow timestamps, updated once per loop
  uint64_t generation = 0;  // of the snapshot the current burst runs under
  WorkerCounters* counters = nullptr;
  rte_ring* puntRing = nullptr;          // null: punting drops (tests, benchmarks)
  lb::ConnTracker* conntrack = nullptr;  // null: no tracking (no services, no masquerade)
  FlowLog* flowLog = nullptr;            // null: no flow log (--flow-log-size 0, tests)
  // A trace (npctl trace) on the control thread: stages decide as usual but change no shared
  // state (no flow inserted, updated or removed, no L7 state, no policy counters or log).
  bool dryRun = false;
  IcmpRateLimiter icmpLimiter;
  IcmpRateLimiter espLearnLimiter;  // ESP of unknown SPIs to the control thread (kEspUnknownSpi)
  overlay::DecapCache decapCache;
  lb::SnatPorts snatPorts;  // this worker's share of the SNAT source ports
};

}  // namespace nodeplane::dataplane
