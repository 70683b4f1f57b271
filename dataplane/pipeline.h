// The stages a received burst goes through, in order (docs/architecture.md, "The packet path").
// Pure over the burst, the snapshot and the worker's context: no I/O here, so tests and
// benchmarks run it on synthetic mbufs. The worker loop does RX before and dispatch/TX after.
//
// The order is written once, in runStagesTraced(): it calls `after(stageName, burst)` after each
// stage (npctl trace shows every stage's decisions). runStages() is the same function with an
// observer that does nothing, which the compiler removes.
#pragma once

#include "core/packet.h"
#include "dataplane/dns_stage.h"
#include "dataplane/parse.h"
#include "dataplane/pod_ingress.h"
#include "dataplane/route_stage.h"
#include "dataplane/service_stage.h"
#include "dataplane/snapshot.h"
#include "dataplane/uplink_ingress.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

template <typename After>
void runStagesTraced(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx, After&& after) {
  parseBurst(burst);
  after("parse", burst);
  switch (snapshot.ports[burst.inPort].role) {
    case PortRole::kPod:
      podIngressStage(burst, snapshot, ctx);
      after("pod-ingress", burst);
      dnsStage(burst, snapshot, ctx);
      after("dns", burst);
      break;
    case PortRole::kHost:
      hostIngressStage(burst, snapshot, ctx);
      after("host-ingress", burst);
      dnsStage(burst, snapshot, ctx);
      after("dns", burst);
      break;
    case PortRole::kUplink:
      uplinkIngressStage(burst, snapshot, ctx);
      after("uplink-ingress", burst);
      break;
    case PortRole::kUnused:
      for (uint16_t i = 0; i < burst.count; ++i)
        if (burst.meta[i].action == Action::kContinue)
          burst.meta[i].setDrop(DropReason::kPortNotServed);
      after("port", burst);
      return;
  }
  serviceStage(burst, snapshot, ctx);
  after("services+policy", burst);
  routeStage(burst, snapshot, ctx);
  after("route", burst);
}

// The worker's entry point: every stage, nothing observed.
void runStages(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
