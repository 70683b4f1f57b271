// The host path: a veth pair nodeplane makes in the node's own network namespace, so the node's
// kernel and the pods reach each other through the data plane (kubelet probes, hostNetwork
// clients, pods talking to the API server or any service on the node's address).
//
//   node kernel ── <name> ══ veth ══ <name>-dp ── nodeplane (a pod port, role kHost)
//
// The kernel side gets routes for the pod and service CIDRs via the pods' gateway address (which
// nodeplane answers ARP for) with the node's address as source; nodeplane routes the node's
// address to the host port. Runs on the control thread; rtnetlink only, no shell-outs.
#pragma once

#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::control {

inline constexpr size_t kMaxName = 15;  // IFNAMSIZ - 1

struct HostPathConfig {
  std::string kernelInterface;  // e.g. "nodeplane0"; ours is the same name with "-dp"
  unsigned mtu = 1500;
  Ipv4Address nodeIp;                // the source the kernel uses on these routes
  Ipv4Address gatewayIp;             // the next hop of the routes (answered by nodeplane)
  std::vector<Ipv4Prefix> prefixes;  // routed into nodeplane: pod CIDR(s), service CIDR
  // The node's only way out (NodeSettings::hostDefaultRoute): the node address goes on the
  // kernel's interface, and the kernel's default route through it.
  bool defaultRoute = false;
};

struct HostPathLinks {
  std::string kernelInterface;
  std::string ourInterface;  // the port nodeplane opens
  MacAddress kernelMac;      // the destination MAC of packets to the node
};

// The name of our end of the pair.
inline std::string hostPathPeerName(const std::string& kernelInterface) {
  return kernelInterface + "-dp";
}

// An error when the name is not usable (empty, too long for "-dp", not a valid interface name).
inline Status validateHostInterfaceName(const std::string& name) {
  if (name.empty() || hostPathPeerName(name).size() > kMaxName)
    return makeError(ErrorCode::kInvalidArgument,
                     "host interface \"" + name + "\": 1 to " + std::to_string(kMaxName - 3) +
                         " characters (\"-dp\" is added for nodeplane's end)");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return makeError(ErrorCode::kInvalidArgument,
                       "host interface \"" + name + "\": letters, digits, '-', '_' and '.' only");
  return okStatus();
}

// Makes the pair (a stale one from an earlier run is deleted first) and brings both ends up,
// without routes.
Result<HostPathLinks> createHostPathLinks(const HostPathConfig& config);
// Adds the kernel-side routes (and with defaultRoute the node address and the default route);
// call once nodeplane serves the port.
Status addHostPathRoutes(const HostPathConfig& config);
// Deletes the pair (and with it the routes). Missing: fine.
void removeHostPath(const std::string& kernelInterface);

}  // namespace nodeplane::control
