#include "control/global_net.h"

#include <map>
#include <set>
#include <utility>

namespace nodeplane::control {

Ipv4Address globalEgressIp(const Ipv4Prefix& globalCidr) {
  return Ipv4Address{globalCidr.address.value + 1};
}

namespace {

// The addresses of a global CIDR exports and endpoints may have: after the network and the
// egress address, before the broadcast address.
std::pair<uint32_t, uint32_t> globalRange(const Ipv4Prefix& cidr) {
  return {cidr.address.value + 2, cidr.address.value + ~cidr.mask() - 1};
}

}  // namespace

Result<Ipv4Address> exportAddress(const std::string& service, std::optional<Ipv4Address> wanted,
                                  const NodeSettings& settings, const ExportMap& exports,
                                  const GlobalIngressList& inUse) {
  const std::string what = "export of service " + service;
  if (!settings.globalCidr) {
    if (wanted)
      return invalidArgument(what + ": globalIp: this cluster has no --cluster-global-cidr");
    return Ipv4Address{0};  // exported at its ClusterIP
  }
  const Ipv4Prefix& cidr = *settings.globalCidr;
  const auto [first, last] = globalRange(cidr);
  std::set<uint32_t> taken;
  for (const auto& [key, ip] : exports)
    if (key != service) taken.insert(ip.value);
  for (const GlobalIngress& g : inUse)
    if (g.endpoint) taken.insert(g.globalIp.value);
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
      return makeError(ErrorCode::kAlreadyExists,
                       what + ": globalIp: " + wanted->toString() +
                           " is an endpoint's of an exported headless service");
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
                                       const std::map<std::string, ServiceSpec>& services,
                                       const NodeSettings& settings,
                                       const GlobalIngressList& before) {
  GlobalIngressList out;
  std::set<uint32_t> taken;
  std::vector<std::pair<std::string, const ServiceSpec*>> headless;
  for (const auto& [key, ip] : exports) {
    auto it = services.find(key);
    if (ip.value != 0) taken.insert(ip.value);
    if (it == services.end() || !it->second.externalName.empty()) continue;
    if (it->second.clusterIps.empty()) {
      headless.emplace_back(key, &it->second);
      continue;
    }
    if (ip.value == 0) continue;
    out.push_back({ip, it->second.clusterIps.front(), key, false, ""});
  }
  if (!settings.globalCidr || headless.empty()) return out;
  // Endpoints keep their global address; new ones take the highest free (exports come from the
  // bottom of the range).
  std::map<std::pair<std::string, uint32_t>, Ipv4Address> kept;
  for (const GlobalIngress& g : before)
    if (g.endpoint && !taken.count(g.globalIp.value))
      kept[{g.service, g.localIp.value}] = g.globalIp;
  std::vector<std::pair<GlobalIngress, bool>> endpoints;  // (entry, has an address)
  for (const auto& [key, spec] : headless)
    for (const EndpointSpec& e : spec->endpoints) {
      if (!e.ready) continue;
      GlobalIngress g{Ipv4Address{0}, e.ip, key, true, e.hostname};
      auto k = kept.find({key, e.ip.value});
      const bool has = k != kept.end() && taken.insert(k->second.value).second;
      if (has) g.globalIp = k->second;
      endpoints.emplace_back(std::move(g), has);
    }
  const auto [first, last] = globalRange(*settings.globalCidr);
  uint32_t next = last;
  for (auto& [g, has] : endpoints) {
    if (!has) {
      while (next >= first && taken.count(next)) --next;
      if (next < first) continue;  // the global CIDR is full: this endpoint is not reached
      g.globalIp = Ipv4Address{next};
      taken.insert(next);
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::string exportState(const std::string& service,
                        const std::map<std::string, ServiceSpec>& services,
                        const NodeSettings& settings) {
  auto it = services.find(service);
  if (it == services.end()) return "no such service";
  if (!it->second.externalName.empty()) return "ExternalName (not exported)";
  if (it->second.clusterIps.empty())
    return settings.globalCidr ? "headless (its endpoints get global addresses)"
                               : "headless (its endpoints' addresses are announced)";
  return "active";
}

}  // namespace nodeplane::control
