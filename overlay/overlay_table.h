// The overlay part of a snapshot: this node's tunnel endpoint and, per remote node, a ready-made
// outer header (underlay MACs, IPv4 without lengths, UDP port, VXLAN VNI) so that encapsulation is
// one copy plus a few length fields. Built whole on the control thread; immutable once published.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/ipv4.h"
#include "core/result.h"
#include "overlay/vxlan.h"

struct rte_hash;

namespace nodeplane::overlay {

struct RemoteNode {
  alignas(64) uint8_t outer[kEncapLength];  // template; bytes 0-5 (next-hop MAC) valid if resolved
  uint32_t ipSumNoLength;  // one's complement sum of the template's IPv4 header, length 0
  rte_be32_t ip;           // tunnel endpoint
  rte_be32_t nextHopIp;    // underlay next hop (the endpoint itself or the underlay gateway)
  rte_ether_addr vtepMac;  // the remote VTEP's MAC: inner destination MAC
  bool resolved;           // next-hop MAC known
};

struct OverlaySettings {
  Ipv4Address localIp;
  uint16_t udpPort = 4789;
  uint32_t vni = 1;
  MacAddress vtepMac;  // our VTEP's MAC (inner source MAC)
  uint16_t uplinkPort = 0;
  MacAddress uplinkMac;  // outer source MAC
  uint16_t mtu = 1500;   // underlay IP MTU
  bool txIpChecksumOffload = false;
};

// The underlay default gateway (traffic leaving the cluster), when one is configured.
struct GatewaySpec {
  Ipv4Address ip;
  std::optional<MacAddress> mac;
};

struct RemoteNodeSpec {
  Ipv4Address ip;
  MacAddress vtepMac;
  Ipv4Address nextHop;                   // ip, or the underlay gateway
  std::optional<MacAddress> nextHopMac;  // from the neighbour table
};

class OverlayTable {
 public:
  ~OverlayTable();
  OverlayTable(const OverlayTable&) = delete;
  OverlayTable& operator=(const OverlayTable&) = delete;

  static Result<std::shared_ptr<const OverlayTable>> build(
      const OverlaySettings& settings, const std::vector<RemoteNodeSpec>& nodes,
      const std::optional<GatewaySpec>& gateway, int socketId);

  const RemoteNode& node(uint32_t index) const { return nodes_[index]; }
  size_t nodeCount() const { return nodes_.size(); }
  // Index of the node whose tunnel endpoint is `ip`, or -1.
  int32_t findBySource(rte_be32_t ip) const;

  rte_be32_t localIp() const { return localIp_; }
  rte_be16_t udpPort() const { return udpPort_; }    // network order
  rte_be32_t vniField() const { return vniField_; }  // VNI << 8, network order (as on the wire)
  const rte_ether_addr& vtepMac() const { return vtepMac_; }
  const rte_ether_addr& uplinkMac() const { return uplinkMac_; }
  uint16_t uplinkPort() const { return uplinkPort_; }
  uint16_t innerMtu() const { return innerMtu_; }  // largest inner IPv4 packet that fits
  bool txIpChecksumOffload() const { return txIpChecksumOffload_; }
  bool hasGateway() const { return hasGateway_; }
  rte_be32_t gatewayIp() const { return gatewayIp_; }
  bool gatewayResolved() const { return gatewayResolved_; }
  const rte_ether_addr& gatewayMac() const { return gatewayMac_; }

 private:
  OverlayTable() = default;
  std::vector<RemoteNode> nodes_;
  rte_hash* bySource_ = nullptr;
  rte_be32_t localIp_ = 0;
  rte_be16_t udpPort_ = 0;
  rte_be32_t vniField_ = 0;
  rte_ether_addr vtepMac_{};
  rte_ether_addr uplinkMac_{};
  uint16_t uplinkPort_ = 0;
  uint16_t innerMtu_ = 0;
  bool txIpChecksumOffload_ = false;
  bool hasGateway_ = false;
  bool gatewayResolved_ = false;
  rte_be32_t gatewayIp_ = 0;
  rte_ether_addr gatewayMac_{};
};

}  // namespace nodeplane::overlay
