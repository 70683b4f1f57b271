// Peer clusters and the encrypted links to their gateways (issue 13). Every node of a cluster
// knows the peers; only the active gateway (snapshot_assembly.h: activeGateway) has links, the
// other nodes route the peers' prefixes to it through the overlay. Pod and service CIDRs must
// not overlap between clusters, unless every cluster has a global CIDR (global_net.h).
//
// A peer is set with its cluster ID, its gateway's underlay address, the prefixes routed to it
// and a secret the two clusters share. Each direction of a pair has up to kSasPerPeer SAs, one
// per sending worker: SPI and key are derived from the secret, the two IDs and the SA's index
// (clusterSpi, overlay::deriveEspKey), so both gateways agree without a key exchange and one
// flow hash never caps a peer at one core. Changing the secret makes new SAs; the old ones keep
// opening until the next change (ClusterPeer::retired), so the two gateways need not change at
// the same instant. This node makes an outbound SA per worker and, for every SPI the peer
// may send with, an inbound SA per worker (the replay window has one writer: ESP from one peer
// gateway reaches one RX queue, its outer addresses never change).
// Control thread only; the SAs live as long as a snapshot refers to them (PeerSas is shared).
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
  Ipv4Address gatewayIp;
  std::vector<Ipv4Prefix> cidrs;  // the peer's pod and service prefixes, routed to its gateway
  std::string secret;             // shared by the two clusters (at least 16 bytes)
  // Globalnet (global_net.h): the peer's global CIDR, then the only prefix routed to it (its
  // `cidrs` may overlap ours, and are only shown).
  std::optional<Ipv4Prefix> globalCidr;
};

// The prefixes routed to a peer's gateway: its global CIDR, or else its cidrs.
std::vector<Ipv4Prefix> routedPrefixes(const ClusterPeerSpec& peer);

struct PeerSas {
  std::shared_ptr<overlay::EspDevice> device;             // outlives the SAs made on it
  std::vector<std::unique_ptr<overlay::EspSa>> outbound;  // by worker
  struct Inbound {
    uint32_t spi = 0;
    std::vector<std::unique_ptr<overlay::EspSa>> byWorker;
  };
  std::vector<Inbound> inbound;  // by the peer's SA index
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

// The SPI of SA `index` from cluster `from` to cluster `to` under `secret` (HKDF output, so it
// tells nothing of the secret; above 255, as RFC 4303 wants): a new secret, new SAs.
uint32_t clusterSpi(const std::string& secret, const std::string& from, const std::string& to,
                    unsigned index);

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
    const GlobalIngressList& globalIngress);

// The largest inner packet a link carries sealed.
uint32_t clusterLinkMtu(const NodeSettings& settings);

}  // namespace nodeplane::control
