// Gateway heartbeats (issue 13): what a cluster's gateway nodes send every interval, to the
// gateways of every peer cluster through the ESP links (authenticated by the SA they arrive on)
// and to the other nodes of their own cluster as plain UDP on the underlay (like VXLAN, trusted
// to the underlay), so that a gateway that stops is replaced within a second
// (cluster_health.h). Both go to UDP port kClusterHeartbeatPort of the receiver's node address,
// where the workers punt them to the control thread.
//
// The same port carries export announcements: every second the active gateway tells each peer
// gateway, one datagram per exported service, the service (namespace/name), the address the
// peer reaches it at (its global address with Globalnet, else its ClusterIP) and its ports; the
// peer imports it (MCS ServiceImport semantics, control/cluster_imports.h), and its active
// gateway relays what it imports to the other nodes of its cluster on the underlay (and that an
// import is withdrawn, when it forgets one).
//
// Heartbeat payload (network order): "NPHB", version 1, flags (bit 0: the sender is its
// cluster's active gateway; the others zero), the cluster ID's length (1-63), a reserved byte
// (zero), a 32-bit sequence number, the cluster ID.
// Announcement payload: "NPEX", version 1, flags (bit 0: withdrawn; bit 1: headless; the others
// zero), the lengths of the cluster ID, the namespace and the name (1-63 each), the port count
// (1-32; 0 when withdrawn; 0-32 when headless), a reserved byte (zero), the 32-bit address (zero
// when headless), then the three names, then per port its protocol (6 or 17), its 16-bit number
// and its name's length (0-15) and name; a headless service's then the endpoint count (0-64)
// and per endpoint its 32-bit address (its global one with Globalnet) and its hostname's length
// (0-63) and hostname. At most kMaxAnnouncementBytes in all (one datagram through the link).
// Decoding is bounded: a short, long or malformed payload is rejected, never read past. Control
// thread only.
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

struct AnnouncedPort {
  std::string name;
  uint8_t protocol = 6;
  uint16_t port = 0;
  bool operator==(const AnnouncedPort&) const = default;
};
struct AnnouncedEndpoint {
  Ipv4Address address;
  std::string hostname;
  bool operator==(const AnnouncedEndpoint&) const = default;
};
struct ExportAnnouncement {
  std::string clusterId;
  std::string namespaceName, name;
  Ipv4Address address;  // a headless service has none: its endpoints' instead
  std::vector<AnnouncedPort> ports;
  bool withdrawn = false;  // no longer exported (relayed to a cluster's nodes; no ports)
  bool headless = false;
  std::vector<AnnouncedEndpoint> endpoints;  // headless: its ready endpoints
  bool operator==(const ExportAnnouncement&) const = default;
};
inline constexpr size_t kMaxAnnouncedPorts = 32;
inline constexpr size_t kMaxAnnouncedEndpoints = 64;
inline constexpr size_t kMaxAnnouncementBytes = 1400;

// Empty when the announcement cannot be encoded (names too long, no or too many ports or
// endpoints, more than kMaxAnnouncementBytes).
std::vector<uint8_t> encodeAnnouncement(const ExportAnnouncement& announcement);
std::optional<ExportAnnouncement> decodeAnnouncement(const uint8_t* data, size_t length);

// A heartbeat frame (Ethernet, IPv4, UDP to kClusterHeartbeatPort, checksums complete) from
// `pool`; null when the pool is empty.
rte_mbuf* heartbeatFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                         Ipv4Address from, Ipv4Address to, const Heartbeat& heartbeat);
// The same for any payload (an encoded announcement).
rte_mbuf* clusterMessageFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                              Ipv4Address from, Ipv4Address to,
                              const std::vector<uint8_t>& payload);

// The heartbeat or announcement in a frame a worker punted, and its IPv4 source; nothing when it
// is neither.
struct ReceivedHeartbeat {
  std::optional<Heartbeat> heartbeat;
  std::optional<ExportAnnouncement> announcement;
  Ipv4Address from;
};
std::optional<ReceivedHeartbeat> readHeartbeatFrame(rte_mbuf* m);

}  // namespace nodeplane::control
