#include "control/global_net.h"

#include <set>

namespace nodeplane::control {

Ipv4Address globalEgressIp(const Ipv4Prefix& globalCidr) {
  return Ipv4Address{globalCidr.address.value + 1};
}

Result<Ipv4Address> exportAddress(const std::string& service, std::optional<Ipv4Address> wanted,
                                  const NodeSettings& settings, const ExportMap& exports) {
  const std::string what = "export of service " + service;
  if (!settings.globalCidr) {
    if (wanted)
      return invalidArgument(what + ": globalIp: this cluster has no --cluster-global-cidr");
    return Ipv4Address{0};  // exported at its ClusterIP
  }
  const Ipv4Prefix& cidr = *settings.globalCidr;
  const uint32_t first = cidr.address.value + 2;  // after the network and the egress address
  const uint32_t last = cidr.address.value + ~cidr.mask() - 1;  // before the broadcast address
  std::set<uint32_t> taken;
  for (const auto& [key, ip] : exports)
    if (key != service) taken.insert(ip.value);
  if (wanted) {
    if (!cidr.contains(*wanted) || wanted->value < first || wanted->value > last)
      return invalidArgument(what + ": globalIp: " + wanted->toString() +
                             " is not a free address of the global CIDR " + cidr.toString() +
                             " (its first two and its last are not)");
    if (taken.count(wanted->value)) {
      for (const auto& [key, ip] : exports)
        if (ip == *wanted && key != service)
          return makeError(ErrorCode::kAlreadyExists, what + ": globalIp: " + wanted->toString() +
                                                          " is service " + key + "'s");
    }
    return *wanted;
  }
  if (auto it = exports.find(service); it != exports.end()) return it->second;
  for (uint32_t a = first; a <= last; ++a)
    if (!taken.count(a)) return Ipv4Address{a};
  return makeError(ErrorCode::kResourceExhausted,
                   what + ": every address of the global CIDR " + cidr.toString() + " is taken");
}

GlobalIngressList resolveGlobalIngress(const ExportMap& exports,
                                       const std::map<std::string, ServiceSpec>& services) {
  GlobalIngressList out;
  for (const auto& [key, ip] : exports) {
    auto it = services.find(key);
    if (ip.value == 0 || it == services.end() || it->second.clusterIps.empty()) continue;
    out.push_back({ip, it->second.clusterIps.front(), key});
  }
  return out;
}

std::string exportState(const std::string& service,
                        const std::map<std::string, ServiceSpec>& services) {
  auto it = services.find(service);
  if (it == services.end()) return "no such service";
  if (it->second.clusterIps.empty()) return "headless (no ClusterIP)";
  return "active";
}

}  // namespace nodeplane::control
