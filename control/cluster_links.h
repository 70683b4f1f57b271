// Peer clusters and the encrypted links to their gateways (issue 13). Every node of a cluster
// knows the peers; only the active gateway (snapshot_assembly.h: activeGateway) has links, the
// other nodes route the peers' prefixes to it through the overlay. Pod and service CIDRs must
// not overlap between clusters, unless every cluster has a global CIDR (global_net.h).
//
// A peer is set with its cluster ID, its gateways' underlay addresses (in order of preference:
// the first that answers heartbeats is used, cluster_health.h), the prefixes routed to it and a
// secret the two clusters share. Each directed pair of gateways has up to kSasPerPeer SAs, one
// per sending worker: SPI and key are derived from the secret, the two IDs, the two gateways'
// addresses and the SA's index (clusterSpi, overlay::deriveEspKey), so both gateways agree
// without a key exchange, one flow hash never caps a peer at one core, and a standby gateway
// that takes over starts its own sequence numbers on SAs of its own. Changing the secret makes new
// SAs; the old ones keep opening until the next change (ClusterPeer::retired), so the two gateways
// need not change at the same instant. For each gateway of the peer, this node makes an outbound SA
// per worker and, for every SPI that gateway may send with, an inbound SA per worker (the replay
// window has one writer: ESP from one peer gateway reaches one RX queue, its outer addresses never
// change). Control thread only; the SAs live as long as a snapshot refers to them (PeerSas is
// shared).
#pragma once

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

// The SAs between this node and one gateway of a peer, both ways.
struct GatewaySas {
  Ipv4Address gateway;
  std::vector<std::unique_ptr<overlay::EspSa>> outbound;  // by worker: this node -> that gateway
  struct Inbound {
    uint32_t spi = 0;
    std::vector<std::unique_ptr<overlay::EspSa>> byWorker;
  };
  std::vector<Inbound> inbound;  // by the peer's SA index: that gateway -> this node
};

struct PeerSas {
  std::shared_ptr<overlay::EspDevice> device;  // outlives the SAs made on it
  std::vector<GatewaySas> gateways;            // as the peer's spec lists them
};

struct ClusterPeer {
  ClusterPeerSpec spec;
  std::shared_ptr<PeerSas> sas;
  // The SAs of the secret this peer had before (a key change): still opened, never sealed with,
  // so that what the other gateway seals with the old secret arrives while both change; and
  // taken back, with their sequence numbers, if the old secret returns.
  std::shared_ptr<PeerSas> retired;
  std::string retiredSecret;
};
using PeerMap = std::map<std::string, ClusterPeer>;  // by cluster ID

inline constexpr unsigned kSasPerPeer = 16;
inline constexpr unsigned kMaxGatewaysPerPeer = 4;

// The SPI of SA `index` from gateway `fromGateway` of cluster `from` to gateway `toGateway` of
// cluster `to` under `secret` (HKDF output, so it tells nothing of the secret; above 255, as RFC
// 4303 wants): a new secret, new SAs.
uint32_t clusterSpi(const std::string& secret, const std::string& from, Ipv4Address fromGateway,
                    const std::string& to, Ipv4Address toGateway, unsigned index);

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

// The peer's SAs for `workers` workers on `device`; `settings`: this cluster's ID, this
// gateway's address.
Result<std::shared_ptr<PeerSas>> makePeerSas(std::shared_ptr<overlay::EspDevice> device,
                                             const NodeSettings& settings,
                                             const ClusterPeerSpec& peer, unsigned workers);

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
