// The stages a received burst goes through, in order (DESIGN.md §3). Pure over the burst, the
// snapshot and the worker's context: no I/O here, so tests and benchmarks run it on synthetic
// mbufs. The worker loop does RX before and dispatch/TX after.
#pragma once

#include "dataplane/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void runStages(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
