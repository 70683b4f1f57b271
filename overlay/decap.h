// VXLAN decapsulation: checks what arrived on the uplink for our VXLAN port (outer UDP length,
// VXLAN flags and VNI, a known source node, an inner frame at least an Ethernet header long) and
// strips the outer headers. Every rejection has its own DropReason; nothing is read past the
// packet's end (the outer parse bounded the IPv4 datagram, this checks the rest).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "core/packet.h"
#include "overlay/overlay_table.h"

namespace nodeplane::overlay {

// The last source node seen by one worker (most bursts come from few peers: one hash lookup per
// change of peer: docs/architecture.md, "Tiny caches for repeats"). Keyed by snapshot generation: a
// new table invalidates it.
struct DecapCache {
  uint64_t generation = ~uint64_t{0};
  rte_be32_t ip = 0;
  int32_t node = -1;
};

struct DecapResult {
  DropReason drop = DropReason::kNone;
  int32_t node = -1;  // the sending node's index, when accepted
};

// `outer` is the parse of the packet as received (IPv4/UDP to our address and VXLAN port).
// On success the mbuf holds just the inner Ethernet frame.
DecapResult decapsulate(rte_mbuf* m, const PacketMeta& outer, const OverlayTable& table,
                        uint64_t generation, DecapCache& cache);

// Maps an inner-frame parse failure to the overlay's own counter where one exists (truncation,
// inner frame not IPv4/ARP); other reasons (a bad inner checksum, ...) keep their name.
DropReason innerDropReason(DropReason innerParse);

}  // namespace nodeplane::overlay
