// The overlay's slow path on the control thread: resolves underlay next hops with ARP (requests
// built here and handed to a worker to send), learns from ARP the workers punt, holds packets that
// wait for a MAC and sends them when it arrives, and fragments inner packets that are too large
// for the overlay and carry no DF. Workers never wait for any of this.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <vector>

#include "core/ipv4.h"
#include "dataplane/dataplane_backend.h"
#include "overlay/neighbor_table.h"

namespace nodeplane::control {

class UnderlayResolver {
 public:
  using TimePoint = overlay::NeighborTable::TimePoint;

  struct Uplink {
    uint16_t port = 0;
    MacAddress mac;
    Ipv4Address localIp;
  };

  explicit UnderlayResolver(dataplane::DataplaneBackend& backend,
                            overlay::NeighborTable::Timers timers = {})
      : backend_(backend), neighbors_(timers) {}

  // Who takes the gateway heartbeats workers punt (the frame, whose it becomes, and the punt
  // detail: the cluster link it was opened on, or dataplane::kHeartbeatFromUnderlay).
  void setHeartbeatHandler(std::function<void(rte_mbuf*, uint32_t)> handler) {
    onHeartbeat_ = std::move(handler);
  }
  // Who takes ESP of unknown SPIs from peer gateways (the frame, whose it becomes, and the link).
  void setEspUnknownSpiHandler(std::function<void(rte_mbuf*, uint32_t)> handler) {
    onEspUnknownSpi_ = std::move(handler);
  }

  // Enables ARP on the uplink (announces our address once with a gratuitous ARP).
  void setUplink(const Uplink& uplink);
  // The next hops the overlay needs. True when resolved MACs changed.
  bool setWanted(const std::set<Ipv4Address>& wanted, TimePoint now);
  std::optional<MacAddress> mac(Ipv4Address ip) const { return neighbors_.mac(ip); }

  // Handles what workers punted and the ARP timers. `current` is the snapshot in force (for
  // fragmenting: its routes and templates). True when resolved MACs changed: the caller then
  // publishes new encap templates.
  bool service(TimePoint now, const dataplane::Snapshot* current);

  std::vector<overlay::NeighborTable::View> neighbors(TimePoint now) const {
    return neighbors_.list(now);
  }

 private:
  bool handleArp(rte_mbuf* m, TimePoint now);
  void handleAwaitingNeighbor(rte_mbuf* m, Ipv4Address nextHop);
  void handleFragment(rte_mbuf* m, const dataplane::Snapshot* current);
  void fragmentForCluster(rte_mbuf* m, const PacketMeta& meta, const dataplane::NextHop& nh,
                          const dataplane::Snapshot& current);
  // The IPv4 packet of `m` (consumed) with its TTL decremented, cut to `mtu`: each fragment in
  // one segment behind an Ethernet header of zeros (type IPv4) in `frames` (kMaxFragments);
  // returns how many. What cannot be made is dropped and counted.
  int fragmentFrames(rte_mbuf* m, const PacketMeta& meta, uint16_t mtu, DropReason noHeadroom,
                     rte_mbuf** frames);
  void sendArp(Ipv4Address target, std::optional<MacAddress> unicastTo, bool gratuitous = false);
  void sendHeld(Ipv4Address ip, const MacAddress& mac);
  void transmitEncapsulated(rte_mbuf* m, Ipv4Address nextHop);
  void drop(rte_mbuf* m, DropReason reason);

  dataplane::DataplaneBackend& backend_;
  overlay::NeighborTable neighbors_;
  std::function<void(rte_mbuf*, uint32_t)> onHeartbeat_;
  std::function<void(rte_mbuf*, uint32_t)> onEspUnknownSpi_;
  std::optional<Uplink> uplink_;
};

}  // namespace nodeplane::control
