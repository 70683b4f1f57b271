// The uplink guard: on a shared uplink (DPDK's af_packet PMD on the kernel's own interface) the
// node's kernel receives every frame nodeplane does, and answers what only nodeplane serves: a
// TCP RST to a NodePort's SYN before nodeplane's SYN-ACK, ICMP port unreachable for VXLAN, a RST
// to every reply of a masqueraded flow (its SNAT port has no socket in the kernel). An
// nftables table of family netdev with an ingress chain on the uplink drops those before the
// kernel's IP stack sees them. Packet-socket taps run before the ingress hook, so nodeplane still
// receives them; everything else (SSH, the kubelet, the API server, ARP) reaches the kernel.
// Installed and removed on the control thread through libnftables.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "control/model.h"
#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::control {

struct UplinkGuardConfig {
  std::string interface;  // the kernel interface the af_packet uplink is bound to
  Ipv4Address nodeIp;
  uint16_t vxlanPort = 4789;
  uint16_t nodePortFirst = 30000, nodePortLast = 32767;  // Kubernetes' default NodePort range
  // The SNAT source ports of masqueraded flows: their replies are nodeplane's (0-0: none).
  uint16_t snatPortFirst = 0, snatPortLast = 0;
  // The node address is the host path's (NodeSettings::hostDefaultRoute): the kernel has nothing
  // on this interface, and takes none of it (everything reaches it through nodeplane).
  bool whole = false;
};

// The SNAT source ports a node uses: its setting, else above the kernel's ephemeral range when
// the kernel uses the node address too (a guarded shared uplink, or the host path as the node's
// way out), else the kernel's range (a NIC the kernel does not see).
std::pair<uint16_t, uint16_t> snatPortRange(bool guardedSharedUplink,
                                            std::optional<std::pair<uint16_t, uint16_t>> setting);
std::pair<uint16_t, uint16_t> snatPortRange(const NodeSettings& settings);
// The kernel's own ephemeral ports (net.ipv4.ip_local_port_range of this network namespace).
std::pair<uint16_t, uint16_t> kernelEphemeralPorts();

// The kernel interface of an af_packet uplink ("net_af_packet0,iface=eth0" -> "eth0"); nullopt
// for any other uplink (the kernel does not see its frames).
std::optional<std::string> sharedUplinkInterface(const std::string& devargs);
// The nftables script that (re)creates the table: pure, for tests and for the log.
std::string uplinkGuardRules(const UplinkGuardConfig& config);
Status installUplinkGuard(const UplinkGuardConfig& config);
void removeUplinkGuard();

}  // namespace nodeplane::control
