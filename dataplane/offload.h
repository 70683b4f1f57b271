// Offloads at the edges of the data plane (see vnet.h for how they travel in between).
//
//   To a wire (an ethdev: the uplink, a pod attached by devargs): what the pods left to
//   offload is done here in software, since no PMD nodeplane drives is asked for TSO or L4
//   checksums. A TCP super-packet is segmented with rte_gso (plain TCP/IPv4 or VXLAN-TCP/IPv4:
//   the overlay marks its encapsulation) at the sender's own segment size, and every segment and
//   every packet with a partial checksum gets complete IPv4 and TCP/UDP checksums.
//   To a pod (a pod port): TCP segments that arrived from a wire are coalesced (rte_gro) into
//   super-packets, so a pod's kernel takes one packet where the wire carried dozens. Only
//   segments whose checksum verifies are merged (the merged packet is handed over with a
//   partial checksum, which the pod's kernel trusts); the rest pass as they came, in order.
//
// Worker-only, no allocation but mbufs from the pools given.
#pragma once

#include <rte_gso.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "core/counters.h"

namespace nodeplane::dataplane {

// The most packets one super-packet is segmented into (64 KiB at an MSS of 1,024 and up).
inline constexpr uint16_t kMaxGsoSegments = 64;

// rte_gso's context for a worker: headers from `direct`, payload references from `indirect`.
rte_gso_ctx makeGsoContext(rte_mempool* direct, rte_mempool* indirect);

// Turns `m` into packets any PMD sends as they are: writes them to `out` (room for
// kMaxGsoSegments) and returns how many; 0 when `m` was dropped (freed, the reason counted).
// A packet without offloads is passed through untouched.
uint16_t prepareForWire(rte_mbuf* m, rte_mbuf** out, const rte_gso_ctx& gso,
                        WorkerCounters& counters);

// Completes `m`'s partial TCP/UDP checksum in software (headers at the offsets given, in its first
// segment, as the parser found them) and clears its offload flags: before a path that knows no
// offloads (IPv4 fragmentation on the control thread).
void completeChecksum(rte_mbuf* m, uint16_t l3Offset, uint16_t l4Offset, uint8_t protocol);

// Coalesces the TCP segments among `pkts` (all bound for one pod port) in place; returns the
// new count. Packets that are not plain TCP segments keep their order relative to the rest.
uint16_t coalesceForPod(rte_mbuf** pkts, uint16_t n, WorkerCounters& counters);

}  // namespace nodeplane::dataplane
