// NetworkPolicy and L7 rules as the service stage applies them to tracked flows: the verdict of a
// new flow (judged on the tuple after DNAT) cached in its connection entry with the policy
// generation, the cached verdict judged again after a policy change, the L7 scan of a flow's
// client segments, and the resets that end a flow an L7 rule denied.
// This is the bridge between connection entries (lb/) and the policy tables (policy/), which
// know nothing of each other. Hot path: no allocation, locks or logging.
#pragma once

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "core/packet.h"
#include "dataplane/flow_context.h"
#include "lb/conntrack.h"
#include "policy/policy_table.h"

namespace nodeplane::dataplane {

// The verdict for a new flow (client `key`, reaching `server`:`serverPort` after DNAT), as the
// word its entry caches. Sets *bits (policy::kVerdict*; 0 with no policy applied) and
// *decidingSlot (policy::evaluate: the deciding policy's counter slot + 1, or 0).
uint32_t newFlowVerdict(FlowContext& fc, const lb::FlowKey& key, rte_be32_t server,
                        rte_be16_t serverPort, uint8_t* bits, uint32_t* decidingSlot);

// The drop reason for a denying verdict.
inline DropReason denyReason(uint8_t bits) {
  return (bits & policy::kVerdictDenyEgress) ? DropReason::kPolicyDeniedEgress
                                             : DropReason::kPolicyDeniedIngress;
}

// A tracked flow's verdict after a policy change: evaluated again (and cached, unless tracing).
uint8_t reevaluatedVerdict(FlowContext& fc, lb::ConnEntry& e);

// The cached verdict of a tracked flow, evaluated again when the policy changed since. Inline:
// every packet of a tracked flow asks, once a policy is applied.
inline uint8_t trackedVerdict(FlowContext& fc, lb::ConnEntry& e) {
  const uint32_t word = e.policy();
  if (policy::verdictGeneration(word) != fc.policy->generation()) return reevaluatedVerdict(fc, e);
  return policy::verdictBits(word);
}

// A new flow's entry was inserted at `index` of this worker's shard: forgets what an earlier flow
// at that index scanned, and scans the first segment when L7 rules cover the flow. False: the
// packet's fate is decided (dropped); true: it goes on.
bool startFlow(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, uint8_t verdict, uint32_t index);

// A client segment of an L7-scanned flow, before translation. False: the packet's fate is
// decided (dropped); true: it goes on (possibly turned into a RST to the server, a RST to the
// client added to the made packets).
bool inspectL7(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, lb::ConnEntry& e,
               const lb::ConnRef& ref);

// A packet of a flow an L7 rule reset: the client's segments get another RST back (it may have
// missed ours); everything else is dropped.
void refuseResetFlow(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, const lb::ConnEntry& e,
                     bool reply);

}  // namespace nodeplane::dataplane
