// TCP MSS clamping for SYNs that cross the overlay: a SYN announcing a segment size that would not
// fit the overlay's inner MTU gets it lowered, and the TCP checksum patched (RFC 1624), so the
// connection never relies on path-MTU discovery through the tunnel.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "core/packet.h"

namespace nodeplane::overlay {

// Lowers the MSS option of a TCP SYN (or SYN-ACK) in `m` to `maxMss` when larger. Returns true
// when it changed the packet. Reads only the TCP header the parser validated.
bool clampMss(rte_mbuf* m, const PacketMeta& meta, uint16_t maxMss);

}  // namespace nodeplane::overlay
