// Gateway heartbeats (issue 13): what a cluster's gateway nodes send every interval, to the
// gateways of every peer cluster through the ESP links (authenticated by the SA they arrive on)
// and to the other nodes of their own cluster as plain UDP on the underlay (like VXLAN, trusted
// to the underlay), so that a gateway that stops is replaced within a second
// (cluster_health.h). Both go to UDP port kClusterHeartbeatPort of the receiver's node address,
// where the workers punt them to the control thread.
//
// Payload (network order): "NPHB", version 1, flags (bit 0: the sender is its cluster's active
// gateway; the others zero), the cluster ID's length (1-63), a reserved byte (zero), a 32-bit
// sequence number, the cluster ID. Decoding is bounded: a short, long or malformed payload is
// rejected, never read past. Control thread only.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/ipv4.h"

namespace nodeplane::control {

struct Heartbeat {
  std::string clusterId;
  uint32_t sequence = 0;
  bool active = false;  // the sender is its cluster's active gateway
  bool operator==(const Heartbeat&) const = default;
};

std::vector<uint8_t> encodeHeartbeat(const Heartbeat& heartbeat);
std::optional<Heartbeat> decodeHeartbeat(const uint8_t* data, size_t length);

// A heartbeat frame (Ethernet, IPv4, UDP to kClusterHeartbeatPort, checksums complete) from
// `pool`; null when the pool is empty.
rte_mbuf* heartbeatFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                         Ipv4Address from, Ipv4Address to, const Heartbeat& heartbeat);

// The heartbeat in a frame a worker punted, and its IPv4 source; nothing when it is not one.
struct ReceivedHeartbeat {
  Heartbeat heartbeat;
  Ipv4Address from;
};
std::optional<ReceivedHeartbeat> readHeartbeatFrame(rte_mbuf* m);

}  // namespace nodeplane::control
