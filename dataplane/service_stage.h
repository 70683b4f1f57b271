// The services and connection-tracking stage, between ingress and routing (docs/architecture.md,
// "The packet path"):
//   tracked flow   -> its translation (DNAT to the backend / SNAT) and state, in place
//   new to service -> backend by session affinity or Maglev, per traffic policy; SNAT where
//                     replies would otherwise bypass this node (remote backend of external
//                     traffic, hairpin); tracked, then translated. No usable backend: TCP RST /
//                     ICMP port-unreachable.
//   leaving cluster-> masqueraded to the node address (when the node has an underlay gateway)
//   ICMP error     -> translated back when it is about a tracked, translated flow
// Traffic from the uplink or to the node's own address goes no further unless one of these
// claimed it. Compiled into the data plane library (it uses the route stage's reply builders).
#pragma once

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void serviceStage(Burst& burst, const dataplane::Snapshot& snapshot, dataplane::WorkerContext& ctx);

}  // namespace nodeplane::dataplane
