// The hot-path side of policy, called by the data plane's flow-policy helper
// (dataplane/flow_policy.cpp): a verdict for each new flow (one classifier lookup, on the tuple
// after DNAT), which the caller caches in the flow's connection entry; and the L7 scan of client
// segments of flows L7 rules cover. Knows flows by tuple and entry index, not connection entries.
// No allocation, locks or logging: counters are per worker, denials go to the worker's ring.
#pragma once

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "core/counters.h"
#include "core/packet.h"
#include "policy/policy_table.h"

namespace nodeplane::policy {

// A flow as policy sees it: the client's address and the backend it reaches (after DNAT).
struct FlowTuple {
  rte_be32_t src = 0, dst = 0;
  rte_be16_t sport = 0, dport = 0;
  uint8_t protocol = 0;
};

// Verdict bits (kVerdict*) for a flow: counted against the deciding policies, denials (and
// audit-mode would-be denials) logged, rate-limited. A pod's flows to itself (hairpinned
// through a Service) are always allowed.
// `record` false (a trace): nothing is counted or logged.
// `decidingSlot`, when given: the counter slot + 1 of the policy that decided (the denying one;
// else the one whose rule allowed, the backend's ingress before the client's egress), 0 when no
// policy selects either end.
uint8_t evaluate(const PolicyTable& table, const FlowTuple& flow, unsigned worker,
                 WorkerCounters& counters, uint32_t nowMs, bool record = true,
                 uint32_t* decidingSlot = nullptr);

enum class L7Outcome : uint8_t { kPass, kOutOfOrder, kNoState, kDeny };

// Every new entry of the worker's shard: forget what an earlier flow at this index scanned.
inline void forgetL7(const PolicyTable& table, unsigned worker, uint32_t entryIndex) {
  if (table.l7() != nullptr) table.runtime().l7Refs(worker)[entryIndex] = L7Ref{};
}

// Which entries of the worker's connection shard have ended: when the L7 stream pool runs out,
// the states of ended flows are taken back.
struct EntryLiveness {
  const void* shard;
  bool (*ended)(const void* shard, uint32_t entryIndex);
};

// Scans a client-to-server segment of an L7-covered flow whose entry is `entryIndex` in the
// worker's own connection shard. `server`/`serverPort`: the pod and port after DNAT.
// kDeny sets *denyMatch, when given: the deny rule's match index + 1 (0: no allow rule matched).
L7Outcome inspectClientSegment(const PolicyTable& table, unsigned worker, uint32_t entryIndex,
                               EntryLiveness entries, const rte_mbuf* m, const PacketMeta& meta,
                               rte_be32_t server, rte_be16_t serverPort, WorkerCounters& counters,
                               uint32_t nowMs, uint32_t* denyMatch = nullptr);

// Turns a client segment into a RST to the server: same addresses and sequence number, no
// payload (a super-packet loses its later segments and its offloads). False when the headers
// are not in the first segment (left unchanged).
bool rewriteAsReset(rte_mbuf* m, PacketMeta& meta);

}  // namespace nodeplane::policy
