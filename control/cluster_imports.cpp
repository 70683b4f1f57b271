#include "control/cluster_imports.h"

#include <algorithm>

namespace nodeplane::control {

bool ClusterImports::announce(const ExportAnnouncement& a, TimePoint now) {
  ImportedService& s = services_[a.namespaceName + "/" + a.name][a.clusterId];
  const bool changed = s.address != a.address || s.ports != a.ports || s.headless != a.headless ||
                       s.endpoints != a.endpoints;
  s.address = a.address;
  s.ports = a.ports;
  s.headless = a.headless;
  s.endpoints = a.endpoints;
  s.lastSeen = now;
  return changed;
}

bool ClusterImports::withdraw(const std::string& clusterId, const std::string& service) {
  auto it = services_.find(service);
  if (it == services_.end() || it->second.erase(clusterId) == 0) return false;
  if (it->second.empty()) services_.erase(it);
  return true;
}

std::vector<std::pair<std::string, std::string>> ClusterImports::expire(
    TimePoint oldest, const std::set<std::string>& alive) {
  std::vector<std::pair<std::string, std::string>> forgotten;
  for (auto service = services_.begin(); service != services_.end();) {
    auto& clusters = service->second;
    for (auto c = clusters.begin(); c != clusters.end();) {
      if (c->second.lastSeen < oldest || !alive.count(c->first)) {
        forgotten.emplace_back(c->first, service->first);
        c = clusters.erase(c);
      } else {
        ++c;
      }
    }
    service = clusters.empty() ? services_.erase(service) : std::next(service);
  }
  return forgotten;
}

bool isClustersetKey(const std::string& key) {
  return key.ends_with(kClustersetSuffix);
}

namespace {

// Every port named (an unnamed one "p<port>"), so that other clusters' endpoints can say theirs.
std::string portName(const ServicePortSpec& p) {
  return p.name.empty() ? "p" + std::to_string(p.port) : p.name;
}

}  // namespace

namespace {

// Another cluster's port numbers for the clusterset service's ports: matched by protocol and
// name, else number.
std::map<std::string, uint16_t> remotePorts(const std::vector<ServicePortSpec>& ports,
                                            const std::vector<AnnouncedPort>& announced) {
  std::map<std::string, uint16_t> out;
  for (const ServicePortSpec& p : ports)
    for (const AnnouncedPort& a : announced)
      if (a.protocol == p.protocol && (a.name == p.name || a.port == p.port)) {
        out[p.name] = a.port;
        break;
      }
  return out;
}

ServicePortSpec fromAnnounced(const AnnouncedPort& p) {
  ServicePortSpec sp;
  sp.protocol = p.protocol;
  sp.port = p.port;
  sp.targetPort = p.port;
  sp.name = p.name;
  sp.name = portName(sp);
  return sp;
}

// A headless name: this cluster's endpoints (if it exports the name) and every other headless
// exporter's, all ready (no Maglev to fall over: DNS answers every one).
ServiceSpec headlessClusterset(const std::string& key, const ServiceSpec* mine,
                               const std::map<std::string, ImportedService>* imported) {
  ServiceSpec s;
  const auto slash = key.find('/');
  s.namespaceName = key.substr(0, slash);
  s.name = key.substr(slash + 1) + kClustersetSuffix;
  if (mine != nullptr) {
    s.ports = mine->ports;
    for (ServicePortSpec& p : s.ports) p.name = portName(p);
    for (const EndpointSpec& e : mine->endpoints)
      if (e.ready) s.endpoints.push_back(e);
  }
  if (imported != nullptr)
    for (const auto& [cluster, remote] : *imported) {
      if (!remote.headless) continue;
      if (s.ports.empty())
        for (const AnnouncedPort& p : remote.ports) s.ports.push_back(fromAnnounced(p));
      for (const AnnouncedEndpoint& a : remote.endpoints) {
        EndpointSpec e;
        e.ip = a.address;
        e.nodeName = "cluster:" + cluster;
        e.hostname = a.hostname;
        e.ports = remotePorts(s.ports, remote.ports);
        s.endpoints.push_back(std::move(e));
      }
    }
  return s;
}

}  // namespace

std::map<std::string, ServiceSpec> clustersetServices(
    const std::map<std::string, ServiceSpec>& services, const ExportMap& exports,
    const ClusterImports& imports, const Ipv4Prefix& cidr,
    std::map<std::string, Ipv4Address>& vips) {
  // The names: this cluster's exports (of services with a ClusterIP, or headless ones), and every
  // import; a name is headless when this cluster exports it headless, or (not exported here)
  // when the first cluster announcing it does.
  std::map<std::string, const ServiceSpec*> local;
  std::set<std::string> names, headless;
  for (const auto& [key, ip] : exports) {
    auto it = services.find(key);
    if (it == services.end() || !it->second.externalName.empty()) continue;
    local[key] = &it->second;
    names.insert(key);
    if (it->second.clusterIps.empty()) headless.insert(key);
  }
  for (const auto& [key, clusters] : imports.services()) {
    if (!names.count(key) && clusters.begin()->second.headless) headless.insert(key);
    names.insert(key);
  }

  // Addresses (for the names that are not headless): kept, freed, then given.
  for (auto it = vips.begin(); it != vips.end();)
    it = names.count(it->first) && !headless.count(it->first) ? std::next(it) : vips.erase(it);
  std::set<uint32_t> taken;
  for (const auto& [key, ip] : vips) taken.insert(ip.value);
  const uint32_t last = cidr.address.value + ~cidr.mask() - 1;
  std::map<std::string, ServiceSpec> out;
  for (const std::string& key : names) {
    auto imported = imports.services().find(key);
    if (headless.count(key)) {
      auto it = local.find(key);
      ServiceSpec s =
          headlessClusterset(key, it != local.end() ? it->second : nullptr,
                             imported != imports.services().end() ? &imported->second : nullptr);
      out[s.key()] = std::move(s);
      continue;
    }
    if (!vips.count(key)) {
      uint32_t a = cidr.address.value + 1;
      while (a <= last && taken.count(a)) ++a;
      if (a > last) continue;  // the clusterset CIDR is full: this name gets no service
      vips[key] = Ipv4Address{a};
      taken.insert(a);
    }
    const auto slash = key.find('/');
    ServiceSpec s;
    s.namespaceName = key.substr(0, slash);
    s.name = key.substr(slash + 1) + kClustersetSuffix;
    s.clusterIps = {vips[key]};
    bool localReady = false;
    if (auto it = local.find(key); it != local.end()) {
      const ServiceSpec& mine = *it->second;
      s.ports = mine.ports;
      for (ServicePortSpec& p : s.ports) p.name = portName(p);
      s.endpoints = mine.endpoints;
      for (EndpointSpec& e : s.endpoints)
        for (const ServicePortSpec& p : mine.ports)
          if (auto port = e.ports.find(p.name); port != e.ports.end() && p.name.empty())
            e.ports[portName(p)] = port->second;
      s.affinityClientIp = mine.affinityClientIp;
      s.affinityTimeoutSeconds = mine.affinityTimeoutSeconds;
      localReady = std::any_of(s.endpoints.begin(), s.endpoints.end(),
                               [](const EndpointSpec& e) { return e.ready; });
    }
    if (imported != imports.services().end()) {
      if (s.ports.empty())  // not exported here: the first exporting cluster's ports
        for (const AnnouncedPort& p : imported->second.begin()->second.ports)
          s.ports.push_back(fromAnnounced(p));
      for (const auto& [cluster, remote] : imported->second) {
        if (remote.headless) continue;  // exported as the other kind there
        EndpointSpec e;
        e.ip = remote.address;
        e.nodeName = "cluster:" + cluster;  // never this node
        e.ready = !localReady;              // local first
        e.serving = true;
        e.ports = remotePorts(s.ports, remote.ports);
        s.endpoints.push_back(std::move(e));
      }
    }
    out[s.key()] = std::move(s);
  }
  return out;
}

}  // namespace nodeplane::control
