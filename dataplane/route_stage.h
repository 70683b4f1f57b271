// Stage N: route valid IPv4 packets on their (post-NAT) destination. One bulk FIB lookup for the
// burst, then per packet: TTL (ICMP time-exceeded when it runs out), MAC rewrite for the next hop,
// Ethernet padding and 802.1Q tags removed. Leaves Action::kTransmit or Action::kDrop.
#pragma once

#include "dataplane/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void routeStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

// Answers a packet that cannot go on with an ICMP error to its sender (rate-limited), counting
// `reason` for the original packet either way. Used by every stage that rejects with ICMP.
void rejectWithIcmp(rte_mbuf* m, PacketMeta& meta, DropReason reason, uint8_t type, uint8_t code,
                    rte_be32_t restOfHeader, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
