// Peer clusters and the encrypted links to their gateways (issue 13). Every node of a cluster
// knows the peers; only the active gateway (snapshot_assembly.h: activeGateway) has links, the
// other nodes route the peers' prefixes to it through the overlay. Pod and service CIDRs must
// not overlap between clusters, unless every cluster has a global CIDR (global_net.h).
//
// A peer is set with its cluster ID, its gateways' underlay addresses (in order of preference:
// the first that answers heartbeats is used, cluster_health.h), the prefixes routed to it and a
// secret the two clusters share. Each directed pair of gateways has its SAs, one per sending
// worker, in generations (below): keys are derived from the secret (overlay::deriveEspKey), so
// both gateways agree without a key exchange, one flow hash never caps a peer at one core, and a
// standby gateway that takes over seals with SAs of its own. Control thread only; the SAs live as
// long as a snapshot refers to them (the sets are shared).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/global_net.h"
#include "control/model.h"
#include "control/underlay_resolver.h"
#include "core/result.h"
#include "dataplane/cluster_link.h"
#include "dataplane/dataplane_backend.h"
#include "overlay/esp.h"

namespace nodeplane::control {

struct ClusterPeerSpec {
  std::string clusterId;
  std::vector<Ipv4Address> gateways;  // its gateway nodes' underlay addresses, first preferred
  std::vector<Ipv4Prefix> cidrs;      // the peer's pod and service prefixes, routed to its gateway
  std::string secret;                 // shared by the two clusters (at least 16 bytes; ESP only)
  // The tunnel: ESP (AES-GCM, the default) or VXLAN (unencrypted, on the `vni` of this pair of
  // clusters, which both set alike and no other peer or the overlay uses).
  enum class Tunnel : uint8_t { kEsp, kVxlan };
  Tunnel tunnel = Tunnel::kEsp;
  uint32_t vni = 0;
  // Globalnet (global_net.h): the peer's global CIDR, then the only prefix routed to it (its
  // `cidrs` may overlap ours, and are only shown).
  std::optional<Ipv4Prefix> globalCidr;
};

// The prefixes routed to a peer's gateway: its global CIDR, or else its cidrs.
std::vector<Ipv4Prefix> routedPrefixes(const ClusterPeerSpec& peer);

// SA generations. The SAs one gateway seals with towards one gateway of a peer are all of one
// generation, named by the second (Unix time) it began. SPIs carry the SA's index and the
// generation's low 27 bits (clusterSpi); keys are derived from the secret, both clusters and
// gateways, the index and the whole generation (saContext). A gateway starts a generation when a
// peer is set, when its secret changes, every --cluster-rekey-seconds, and when one of its SAs
// has sealed kRekeyAfterPackets (rte_ipsec's IV is the 32-bit sequence number); generations only
// grow, also across restarts (NodeController keeps the last one in the state directory), so no
// key ever seals two packets with one IV. The other gateway learns a generation from its first
// packet: an unknown SPI from a peer gateway goes to the control thread, which derives that
// generation's SAs and installs them when the packet opens (keeping the generation before it,
// for packets on their way). A new generation is first `pending`: for kRekeyOverlap only the
// control thread's heartbeats are sealed with it (its SA of index kControlSaIndex), so the peer
// has learned it before data moves over, and a rekey loses nothing.
inline constexpr unsigned kSasPerPeer = 16;      // SA indexes of a generation (4 bits of the SPI)
inline constexpr unsigned kControlSaIndex = 15;  // the control thread's; workers use 0-14
inline constexpr unsigned kMaxEspWorkers = kControlSaIndex;
inline constexpr uint64_t kRekeyAfterPackets = uint64_t{1} << 31;
inline constexpr auto kRekeyOverlap = std::chrono::seconds(1);
// A learned generation began at most this long after this node's clock says now (the gateways'
// clocks agree to within it), and at most twice the rekey interval and this long before.
inline constexpr uint64_t kGenerationSkewSeconds = 600;

// One generation of the SAs this node seals with towards one peer gateway.
struct OutboundSas {
  std::shared_ptr<overlay::EspDevice> device;  // outlives the SAs made on it
  uint64_t generation = 0;
  std::string secret;                             // what its keys come from
  std::chrono::steady_clock::time_point started;  // when it was made (the rekey timer)
  std::vector<std::unique_ptr<overlay::EspSa>> byWorker;
  std::unique_ptr<overlay::EspSa> control;  // index kControlSaIndex: the control thread's
  uint64_t mostSealed() const;              // by any one of its SAs (wear)
};

// One generation of the SAs a peer gateway seals with towards this node, as this node opens
// them: for each SA index one SA per worker (a replay window has one writer: ESP from one peer
// gateway reaches one RX queue, its outer addresses never change).
struct InboundSas {
  std::shared_ptr<overlay::EspDevice> device;
  uint64_t generation = 0;
  std::string secret;
  struct Sa {
    uint32_t spi = 0;
    std::vector<std::unique_ptr<overlay::EspSa>> byWorker;
  };
  std::vector<Sa> byIndex;  // kSasPerPeer
};

// The SAs between this node and one gateway of a peer, both ways (null: none yet; all null on a
// VXLAN link).
struct GatewaySas {
  Ipv4Address gateway;
  std::shared_ptr<OutboundSas> outbound;  // what the workers seal with
  std::shared_ptr<OutboundSas> pending;   // the next generation: heartbeats only, until promoted
  std::shared_ptr<InboundSas> inbound;    // the newest generation learned from that gateway
  std::shared_ptr<InboundSas> previous;   // and the one before it
};

struct ClusterPeer {
  ClusterPeerSpec spec;
  std::vector<GatewaySas> gateways;  // as the spec lists them
  // The secret this peer had before the last change: a generation the peer gateway still seals
  // with it is learned too, so the two clusters need not change at the same instant.
  std::string retiredSecret;
};
using PeerMap = std::map<std::string, ClusterPeer>;  // by cluster ID

inline constexpr unsigned kMaxGatewaysPerPeer = 4;

// The SPI of SA `index` of `generation`: the top bit set (above 255, as RFC 4303 wants), the
// index, the generation's low 27 bits. Inbound SAs are found by outer source and SPI, so SPIs
// need only be unique per peer gateway.
constexpr uint32_t clusterSpi(unsigned index, uint64_t generation) {
  return 0x80000000u | ((index & 0xfu) << 27) | static_cast<uint32_t>(generation & 0x07ffffffu);
}
constexpr unsigned spiIndex(uint32_t spi) {
  return (spi >> 27) & 0xfu;
}
// The generation an SPI names: the one nearest `now` (Unix seconds) with its low 27 bits (a span
// of 4.25 years).
uint64_t spiGeneration(uint32_t spi, uint64_t now);
// What names one SA's key: the sending cluster and gateway, the receiving ones, index, generation.
std::string saContext(const std::string& from, Ipv4Address fromGateway, const std::string& to,
                      Ipv4Address toGateway, unsigned index, uint64_t generation);

// Generation `generation` of this node's SAs towards `gateway` of `peer`: `workers` of them and
// the control thread's, from the peer's secret.
Result<std::shared_ptr<OutboundSas>> makeOutboundSas(std::shared_ptr<overlay::EspDevice> device,
                                                     const NodeSettings& settings,
                                                     const ClusterPeerSpec& peer,
                                                     Ipv4Address gateway, uint64_t generation,
                                                     unsigned workers);
// Generation `generation` of the SAs `gateway` of cluster `peerId` seals with towards this node,
// from `secret`, for `workers` workers.
Result<std::shared_ptr<InboundSas>> makeInboundSas(std::shared_ptr<overlay::EspDevice> device,
                                                   const NodeSettings& settings,
                                                   const std::string& peerId, Ipv4Address gateway,
                                                   uint64_t generation, const std::string& secret,
                                                   unsigned workers);

// The link of each peer gateway, in the snapshot's link table: peers in map order, each peer's
// gateways in its spec's order. `first`: the link of a peer's first gateway.
struct LinkIndex {
  std::string clusterId;
  Ipv4Address gateway;
  uint16_t first = 0;
};
std::vector<LinkIndex> linkIndexes(const PeerMap& peers);

// Checks a peer against this node and the other peers; an error names the field.
Status validatePeer(const ClusterPeerSpec& peer, const NodeSettings& settings,
                    const PeerMap& others);

// The snapshot's link table for `peers` (map order: the route table's link indexes), with the
// underlay MACs resolved so far and, with Globalnet, the exported services' translations.
// `owner` keeps the SAs alive with the snapshot.
std::shared_ptr<const dataplane::ClusterLinkTable> buildClusterLinks(
    const std::shared_ptr<const PeerMap>& peers, const NodeSettings& settings,
    const dataplane::PortInfo& uplink, const UnderlayResolver& resolver,
    const GlobalIngressList& globalIngress, int socketId);

// The largest inner packet a link carries (sealed, or in VXLAN).
uint32_t clusterLinkMtu(const NodeSettings& settings,
                        ClusterPeerSpec::Tunnel tunnel = ClusterPeerSpec::Tunnel::kEsp);

}  // namespace nodeplane::control
