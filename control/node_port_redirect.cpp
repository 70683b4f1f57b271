#include "control/node_port_redirect.h"

#include <netinet/in.h>

#include <algorithm>

#include "control/nftables.h"

namespace nodeplane::control {

namespace {

constexpr const char* kTable = "ip nodeplane";

}  // namespace

std::vector<NodePortRedirect> nodePortRedirects(
    const std::map<std::string, ServiceSpec>& services) {
  std::vector<NodePortRedirect> out;
  for (const auto& [key, s] : services) {
    if (s.clusterIps.empty()) continue;
    for (const ServicePortSpec& p : s.ports)
      if (p.nodePort != 0) out.push_back({p.protocol, p.nodePort, s.clusterIps.front(), p.port});
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string nodePortRedirectRules(const std::vector<NodePortRedirect>& redirects) {
  std::string s;
  s += "table " + std::string(kTable) + "\n";
  s += "delete table " + std::string(kTable) + "\n";
  s += "table " + std::string(kTable) + " {\n";
  s += "  chain nodeports {\n";
  s += "    type nat hook output priority -100; policy accept;\n";
  for (const NodePortRedirect& r : redirects) {
    const char* proto = r.protocol == IPPROTO_UDP ? "udp" : "tcp";
    // Any address of the node's own but loopback (127/8 would need route_localnet).
    s += "    ip daddr != 127.0.0.0/8 fib daddr type local " + std::string(proto) + " dport " +
         std::to_string(r.nodePort) + " dnat to " + r.clusterIp.toString() + ":" +
         std::to_string(r.port) + "\n";
  }
  s += "  }\n";
  s += "}\n";
  return s;
}

Status installNodePortRedirects(const std::vector<NodePortRedirect>& redirects) {
  return runNftScript(nodePortRedirectRules(redirects), "NodePorts from the node");
}

void removeNodePortRedirects() {
  (void)runNftScript(
      "table " + std::string(kTable) + "\ndelete table " + std::string(kTable) + "\n",
      "removing the NodePort redirects");
}

}  // namespace nodeplane::control
