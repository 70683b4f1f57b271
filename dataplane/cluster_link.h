// The snapshot's links to other clusters (issue 13, first slice): for each peer cluster, where its
// gateway is on the underlay and the ESP SAs (overlay/esp.h) this node's workers seal and open
// its traffic with. Packets routed to a peer's prefixes (NextHopKind::kRemoteCluster) are queued
// on the link's own TX buffer (port kFirstLinkPort + link) and, as it is flushed, segmented and
// checksummed like any packet for a wire, sealed with the worker's outbound SA and sent on the
// uplink to the peer's gateway; ESP arriving on the uplink is opened by the worker's SA for its
// SPI and goes on as if from the overlay.
// Built on the control thread (control/cluster_links.h), which owns the SAs; `owner` keeps them
// alive for as long as a snapshot refers to them.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "overlay/esp.h"

namespace nodeplane::dataplane {

struct ClusterLink {
  rte_be32_t gatewayIp = 0;  // the peer's gateway (the outer destination)
  rte_be32_t nextHopIp = 0;  // whose MAC the frames go to (the gateway, or the underlay router)
  rte_ether_addr dstMac{};
  rte_ether_addr srcMac{};  // the uplink's
  bool resolved = false;    // dstMac known (ARP); until then the link drops, never sends clear
  uint16_t uplinkPort = 0;
  uint32_t innerMtu = 0;                  // the largest inner IPv4 packet that fits sealed
  std::vector<overlay::EspSa*> outbound;  // by worker
};

struct ClusterLinkTable {
  struct Inbound {
    uint32_t spi = 0;
    uint16_t link = 0;
    std::vector<overlay::EspSa*> byWorker;
  };
  std::vector<ClusterLink> links;
  std::vector<Inbound> inbound;  // sorted by SPI
  std::shared_ptr<const void> owner;

  const Inbound* findSpi(uint32_t spi) const {
    auto it = std::lower_bound(inbound.begin(), inbound.end(), spi,
                               [](const Inbound& in, uint32_t s) { return in.spi < s; });
    return it != inbound.end() && it->spi == spi ? &*it : nullptr;
  }
};

}  // namespace nodeplane::dataplane
