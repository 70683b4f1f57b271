// ICMP errors about translated flows. An error (destination unreachable, time exceeded, parameter
// problem) quotes the packet it is about, as that packet looked after our translation; the one
// who receives the error must see it about the packet it sent. This finds the flow from the quote
// and rewrites the quoted headers and the error's own addresses accordingly, so path-MTU discovery
// and port-unreachable work through a service VIP or a masquerade.
#pragma once

#include <rte_mbuf.h>

#include "core/packet.h"
#include "lb/conntrack.h"

namespace nodeplane::lb {

// An ICMP error that quotes the datagram it is about and is translated back: destination
// unreachable, time exceeded, parameter problem.
bool isIcmpError(uint8_t type);

// Translates the ICMP error in `m` (parsed into `meta`) when its quote belongs to a tracked,
// translated flow; updates meta's addresses for routing. False when it is not about one (the
// packet is left untouched) or the quote is too short to tell.
bool translateIcmpError(rte_mbuf* m, PacketMeta& meta, ConnTracker& conntrack, unsigned worker);

}  // namespace nodeplane::lb
