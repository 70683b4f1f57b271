// The uplink guard: on a shared uplink (DPDK's af_packet PMD on the kernel's own interface) the
// node's kernel receives every frame nodeplane does, and answers what only nodeplane serves: a
// TCP RST to a NodePort's SYN before nodeplane's SYN-ACK, ICMP port unreachable for VXLAN. An
// nftables table of family netdev with an ingress chain on the uplink drops those before the
// kernel's IP stack sees them. Packet-socket taps run before the ingress hook, so nodeplane still
// receives them; everything else (SSH, the kubelet, the API server, ARP) reaches the kernel.
// Installed and removed on the control thread through libnftables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::control {

struct UplinkGuardConfig {
  std::string interface;  // the kernel interface the af_packet uplink is bound to
  Ipv4Address nodeIp;
  uint16_t vxlanPort = 4789;
  uint16_t nodePortFirst = 30000, nodePortLast = 32767;  // Kubernetes' default NodePort range
};

// The kernel interface of an af_packet uplink ("net_af_packet0,iface=eth0" -> "eth0"); nullopt
// for any other uplink (the kernel does not see its frames).
std::optional<std::string> sharedUplinkInterface(const std::string& devargs);
// The nftables script that (re)creates the table: pure, for tests and for the log.
std::string uplinkGuardRules(const UplinkGuardConfig& config);
Status installUplinkGuard(const UplinkGuardConfig& config);
void removeUplinkGuard();

}  // namespace nodeplane::control
