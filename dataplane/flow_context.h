// What the service stage and its flow-policy helper share while they work through one burst:
// the snapshot's tables, the worker's connection tracker and shard, and the packets they made
// (TCP resets to clients) that still need routing. Lives on the worker's stack for one burst.
#pragma once

#include <rte_mbuf.h>

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"
#include "lb/conntrack.h"
#include "lb/service_table.h"
#include "policy/policy_table.h"

namespace nodeplane::dataplane {

// Packets made while handling the burst; appended to it for the route stage.
struct MadePackets {
  unsigned count = 0;
  rte_mbuf* pkts[kMaxBurst];
  PacketMeta meta[kMaxBurst];
};

struct FlowContext {
  const Snapshot& snap;
  const lb::ServiceTable* services;
  const policy::PolicyTable* policy;  // null: no policy applied, pod flows not tracked
  WorkerContext& ctx;
  lb::ConnTracker& ct;
  lb::ConnShard& own;
  MadePackets& made;
  unsigned inserted = 0;  // entries this burst added to `own` (its later packets look again)
};

// A reply to a client that came in on the uplink goes straight back to where it came from.
void returnToClient(rte_mbuf* m, PacketMeta& meta, const lb::ConnEntry& e, FlowContext& fc);

}  // namespace nodeplane::dataplane
