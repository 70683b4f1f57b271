// The snapshot's links to other clusters (issue 13, first slice): for each peer cluster, where its
// gateway is on the underlay and the ESP SAs (overlay/esp.h) this node's workers seal and open
// its traffic with. Packets routed to a peer's prefixes (NextHopKind::kRemoteCluster) are queued
// on the link's own TX buffer (port kFirstLinkPort + link) and, as it is flushed, segmented and
// checksummed like any packet for a wire, sealed with the worker's outbound SA and sent on the
// uplink to the peer's gateway; ESP arriving on the uplink is opened by the worker's SA for its
// SPI and goes on as if from the overlay. With Globalnet, addresses are translated at the link's
// edge (control/global_net.h).
// Built on the control thread (control/cluster_links.h), which owns the SAs; `owner` keeps them
// alive for as long as a snapshot refers to them.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "overlay/esp.h"
#include "overlay/overlay_table.h"

namespace nodeplane::dataplane {

// Gateway heartbeats (control/heartbeat.h) arrive on this UDP port of the node's address, on the
// uplink (from this cluster's gateways) or inside ESP (from a peer's): punted, never routed.
inline constexpr uint16_t kClusterHeartbeatPort = 4800;
// The punt detail of a heartbeat from the underlay (else: the link it was opened on).
inline constexpr uint32_t kHeartbeatFromUnderlay = 0xffffffffu;

struct ClusterLink {
  rte_be32_t gatewayIp = 0;  // the peer's gateway (the outer destination)
  rte_be32_t nextHopIp = 0;  // whose MAC the frames go to (the gateway, or the underlay router)
  rte_ether_addr dstMac{};
  rte_ether_addr srcMac{};  // the uplink's
  bool resolved = false;    // dstMac known (ARP); until then the link drops, never sends clear
  uint16_t uplinkPort = 0;
  uint32_t innerMtu = 0;                  // the largest inner IPv4 packet that fits sealed
  std::vector<overlay::EspSa*> outbound;  // by worker
  // A VXLAN link (unencrypted, a VNI of its own) instead of ESP: the outer headers' template,
  // its one remote node being the peer's gateway, and the inner frame's MACs (our VTEP's, the
  // peer gateway's). Null: ESP.
  std::shared_ptr<const overlay::OverlayTable> vxlan;
  rte_ether_addr innerSrcMac{}, innerDstMac{};
};

// Globalnet's translations (control/global_net.h): an exported service's global address and its
// ClusterIP, both in network order.
struct GlobalTranslation {
  rte_be32_t globalIp = 0;
  rte_be32_t clusterIp = 0;
};

struct ClusterLinkTable {
  struct Inbound {
    uint32_t spi = 0;
    rte_be32_t gateway = 0;  // the peer gateway that seals with it (the outer source)
    uint16_t link = 0;
    std::vector<overlay::EspSa*> byWorker;
  };
  std::vector<ClusterLink> links;
  std::vector<Inbound> inbound;  // sorted by SPI, then gateway
  // Globalnet: this cluster's global CIDR (host order; mask 0: none, peers route real CIDRs),
  // the address its pods reach peers from, and the exported services' translations, sorted by
  // global address (byGlobal) and by ClusterIP (byCluster).
  uint32_t globalNet = 0, globalMask = 0;
  rte_be32_t globalEgressIp = 0;
  std::vector<GlobalTranslation> byGlobal, byCluster;
  std::shared_ptr<const void> owner;

  bool globalnet() const { return globalMask != 0; }
  // The VXLAN link / the ESP link whose peer gateway is `outerSource`, or -1.
  int32_t vxlanLinkFrom(rte_be32_t outerSource) const { return linkFrom(outerSource, true); }
  int32_t espLinkFrom(rte_be32_t outerSource) const { return linkFrom(outerSource, false); }
  bool isGlobal(rte_be32_t ip) const {
    return globalMask != 0 && (rte_be_to_cpu_32(ip) & globalMask) == globalNet;
  }
  // The translation of an exported service's global address / of its ClusterIP; null: none.
  const GlobalTranslation* toCluster(rte_be32_t globalIp) const {
    return find(byGlobal, globalIp, &GlobalTranslation::globalIp);
  }
  const GlobalTranslation* toGlobal(rte_be32_t clusterIp) const {
    return find(byCluster, clusterIp, &GlobalTranslation::clusterIp);
  }

  // The SAs that open `spi` from peer gateway `gateway` (the outer source); null: none.
  const Inbound* findSpi(rte_be32_t gateway, uint32_t spi) const {
    auto it = std::lower_bound(inbound.begin(), inbound.end(), std::pair{spi, gateway},
                               [](const Inbound& in, std::pair<uint32_t, rte_be32_t> key) {
                                 return std::pair{in.spi, in.gateway} < key;
                               });
    return it != inbound.end() && it->spi == spi && it->gateway == gateway ? &*it : nullptr;
  }

 private:
  int32_t linkFrom(rte_be32_t outerSource, bool vxlan) const {
    for (size_t i = 0; i < links.size(); ++i)
      if ((links[i].vxlan != nullptr) == vxlan && links[i].gatewayIp == outerSource)
        return static_cast<int32_t>(i);
    return -1;
  }
  static const GlobalTranslation* find(const std::vector<GlobalTranslation>& sorted, rte_be32_t ip,
                                       rte_be32_t GlobalTranslation::*field) {
    auto it = std::lower_bound(
        sorted.begin(), sorted.end(), ip,
        [field](const GlobalTranslation& t, rte_be32_t v) { return t.*field < v; });
    return it != sorted.end() && (*it).*field == ip ? &*it : nullptr;
  }
};

}  // namespace nodeplane::dataplane
