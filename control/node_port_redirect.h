// NodePorts opened from the node itself: the kernel delivers a connection to its own address
// locally, so nodeplane never sees it. With the host path up, an nftables nat/output chain
// (table ip nodeplane) turns node-address:nodePort into the Service's ClusterIP:port, which the
// kernel routes into nodeplane through the host path like any ClusterIP; the kernel's conntrack
// turns the replies back. Rewritten whole when the set of NodePorts changes. Control thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "control/model.h"
#include "core/result.h"

namespace nodeplane::control {

struct NodePortRedirect {
  uint8_t protocol = 6;  // IPPROTO_TCP / IPPROTO_UDP
  uint16_t nodePort = 0;
  Ipv4Address clusterIp;
  uint16_t port = 0;
  auto operator<=>(const NodePortRedirect&) const = default;
};

// Every NodePort of these services (first ClusterIP; services without one are left out).
std::vector<NodePortRedirect> nodePortRedirects(const std::map<std::string, ServiceSpec>& services);
// The nftables script that (re)creates the table: pure, for tests and for the log.
std::string nodePortRedirectRules(const std::vector<NodePortRedirect>& redirects);
Status installNodePortRedirects(const std::vector<NodePortRedirect>& redirects);
void removeNodePortRedirects();

}  // namespace nodeplane::control
