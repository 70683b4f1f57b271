// Stage N: route valid IPv4 packets on their (post-NAT) destination. One bulk FIB lookup for the
// burst, then per packet: TTL (ICMP time-exceeded when it runs out), MAC rewrite for the next hop,
// Ethernet padding and 802.1Q tags removed. Leaves Action::kTransmit or Action::kDrop.
#pragma once

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void routeStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

// Answers a packet that cannot go on with an ICMP error to its sender (rate-limited), counting
// `reason` for the original packet either way. Used by every stage that rejects with ICMP.
// The error comes from the node's address unless `source` is given (a VIP refusing itself).
// An error about a translated packet is translated back (the sender never saw the translation).
void rejectWithIcmp(rte_mbuf* m, PacketMeta& meta, DropReason reason, uint8_t type, uint8_t code,
                    rte_be32_t restOfHeader, const Snapshot& snapshot, WorkerContext& ctx,
                    rte_be32_t source = 0);

// Writes a fresh untagged Ethernet header in front of the IPv4 header (removing 802.1Q tags and
// Ethernet padding).
void rewriteEthernet(rte_mbuf* m, PacketMeta& meta, const rte_ether_addr& dst,
                     const rte_ether_addr& src);

}  // namespace nodeplane::dataplane
