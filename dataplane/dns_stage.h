// The cluster DNS responder stage, between ingress and services (docs/architecture.md, "The
// packet path"): a UDP query from a pod or the node to a cluster DNS address, for a name the zone
// answers (dns/responder.h), is answered in place by this worker and sent back out the port it
// came in on. No conntrack entry, no trip to a DNS pod: nothing to race on (kubernetes#56903).
// Every other packet, and every query the zone does not answer, goes on to the service stage as
// before (DNAT to the DNS Service's backends: the upstream).
#pragma once

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void dnsStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
