#include "control/service_registry.h"

#include <netinet/in.h>

#include <algorithm>

#include "core/names.h"

namespace nodeplane::control {

namespace {

bool isUnicast(Ipv4Address a) {
  return a.value != 0 && (a.value >> 28) < 0xe;
}

const char* protoName(uint8_t p) {
  return p == IPPROTO_UDP ? "UDP" : "TCP";
}

// Every (address, port, protocol) a service answers on, for conflict checks.
std::vector<std::string> endpointsOf(const ServiceSpec& s, const NodeSettings& settings) {
  std::vector<std::string> out;
  for (const auto& p : s.ports) {
    const std::string suffix = ":" + std::to_string(p.port) + "/" + protoName(p.protocol);
    for (const auto& ip : s.clusterIps) out.push_back(ip.toString() + suffix);
    for (const auto& ip : s.externalIps) out.push_back(ip.toString() + suffix);
    for (const auto& ip : s.loadBalancerIps) out.push_back(ip.toString() + suffix);
    if (p.nodePort != 0)
      out.push_back(settings.nodeIp.toString() + ":" + std::to_string(p.nodePort) + "/" +
                    protoName(p.protocol));
  }
  return out;
}

}  // namespace

Status ServiceRegistry::validate(const ServiceSpec& s, const NodeSettings& settings,
                                 const Services& others) {
  // Error texts are made only for errors: a full apply validates every service.
  auto what = [&] { return "service " + s.namespaceName + "/" + s.name; };
  auto bad = [&](const std::string& field, const std::string& why) {
    return invalidArgument(what() + ": field '" + field + "': " + why);
  };
  if (!isDnsLabel(s.namespaceName)) return bad("namespace", "not a valid namespace name");
  if (!isDnsLabel(s.name)) return bad("name", "not a valid service name");
  if (s.type != "ClusterIP" && s.type != "NodePort" && s.type != "LoadBalancer" &&
      s.type != "ExternalName")
    return bad("type", "'" + s.type + "' is not ClusterIP, NodePort, LoadBalancer or ExternalName");
  if (s.type == "ExternalName") {
    if (!isDnsSubdomain(s.externalName.ends_with('.')
                            ? std::string_view(s.externalName).substr(0, s.externalName.size() - 1)
                            : std::string_view(s.externalName)))
      return bad("externalName", "'" + s.externalName + "' is not a DNS name");
    if (!s.dnsOnly()) return bad("clusterIPs", "an ExternalName service has no addresses");
  } else if (!s.externalName.empty()) {
    return bad("externalName", "only ExternalName services have one");
  }
  for (const auto& ip : s.clusterIps) {
    if (!isUnicast(ip)) return bad("clusterIPs", ip.toString() + " is not a unicast address");
    if (settings.serviceCidr && !settings.serviceCidr->contains(ip))
      return bad("clusterIPs", ip.toString() + " is outside the service CIDR " +
                                   settings.serviceCidr->toString());
  }
  for (const auto* list : {&s.externalIps, &s.loadBalancerIps})
    for (const auto& ip : *list)
      if (!isUnicast(ip))
        return bad(list == &s.externalIps ? "externalIPs" : "loadBalancerIPs",
                   ip.toString() + " is not a unicast address");
  if (s.ports.empty() && !s.dnsOnly()) return bad("ports", "empty");
  std::set<std::pair<uint16_t, uint8_t>> seen;
  std::set<std::string> names;
  for (size_t i = 0; i < s.ports.size(); ++i) {
    const auto& p = s.ports[i];
    const std::string f = "ports[" + std::to_string(i) + "]";
    if (p.protocol != IPPROTO_TCP && p.protocol != IPPROTO_UDP)
      return bad(f + ".protocol", "only TCP and UDP are supported");
    if (p.port == 0) return bad(f + ".port", "must be 1-65535");
    if (!seen.insert({p.port, p.protocol}).second)
      return bad(f + ".port", std::to_string(p.port) + "/" + protoName(p.protocol) + " twice");
    if (!names.insert(p.name).second) return bad(f + ".name", "'" + p.name + "' twice");
    if (p.nodePort != 0 && s.type == "ClusterIP")
      return bad(f + ".nodePort", "only NodePort and LoadBalancer services have node ports");
    if (!p.targetPortName.empty() && p.targetPort != 0)
      return bad(f + ".targetPort", "either a number or a name");
  }
  if (s.affinityClientIp && (s.affinityTimeoutSeconds == 0 || s.affinityTimeoutSeconds > 86400))
    return bad("sessionAffinityConfig.clientIP.timeoutSeconds", "must be 1-86400");
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    const auto& e = s.endpoints[i];
    auto f = [i] { return "endpoints[" + std::to_string(i) + "]"; };
    if (!isUnicast(e.ip)) return bad(f() + ".ip", e.ip.toString() + " is not a unicast address");
    if (e.weight > 65535) return bad(f() + ".weight", "must be 0-65535");
    if (!e.hostname.empty() && !isDnsLabel(e.hostname))
      return bad(f() + ".hostname", "'" + e.hostname + "' is not a DNS label");
    for (const auto& [name, port] : e.ports)
      if (port == 0) return bad(f() + ".ports." + name, "must be 1-65535");
  }
  // Nothing may answer on an address and port another service answers on.
  if (others.empty()) return okStatus();
  const auto mine = endpointsOf(s, settings);
  const std::set<std::string> mineSet(mine.begin(), mine.end());
  for (const auto& [key, other] : others) {
    if (key == s.key()) continue;
    for (const auto& e : endpointsOf(other, settings))
      if (mineSet.count(e))
        return makeError(ErrorCode::kAlreadyExists,
                         what() + ": " + e + " is already service " + key);
  }
  return okStatus();
}

Status ServiceRegistry::checkConflicts(const Services& all, const NodeSettings& settings) {
  // (address, port, protocol) packed in 64 bits -> the service answering there.
  std::unordered_map<uint64_t, const std::string*> owner;
  owner.reserve(all.size() * 2);
  for (const auto& [serviceKey, s] : all) {
    const std::string& key = serviceKey;  // a structured binding cannot be captured (clang 14)
    auto claim = [&](Ipv4Address ip, uint16_t port, uint8_t proto) -> Status {
      const uint64_t k = uint64_t{ip.value} << 24 | uint64_t{port} << 8 | proto;
      auto [it, inserted] = owner.emplace(k, &key);
      if (inserted || *it->second == key) return okStatus();
      return makeError(ErrorCode::kAlreadyExists,
                       "service " + key + ": " + ip.toString() + ":" + std::to_string(port) + "/" +
                           protoName(proto) + " is already service " + *it->second);
    };
    for (const auto& p : s.ports) {
      for (const auto* list : {&s.clusterIps, &s.externalIps, &s.loadBalancerIps})
        for (const auto& ip : *list)
          if (auto st = claim(ip, p.port, p.protocol); !st) return st;
      if (p.nodePort != 0)
        if (auto st = claim(settings.nodeIp, p.nodePort, p.protocol); !st) return st;
    }
  }
  return okStatus();
}

bool ServiceRegistry::isLocal(const EndpointSpec& e, const NodeSettings& settings) {
  return e.nodeName.empty() ? settings.podCidr.contains(e.ip) : e.nodeName == settings.nodeName;
}

std::optional<uint16_t> ServiceRegistry::backendPort(const ServicePortSpec& p,
                                                     const EndpointSpec& e) {
  if (!p.name.empty())
    if (auto it = e.ports.find(p.name); it != e.ports.end()) return it->second;
  if (!p.targetPortName.empty()) {
    auto it = e.ports.find(p.targetPortName);
    if (it == e.ports.end()) return std::nullopt;  // this endpoint does not serve that name
    return it->second;
  }
  return p.targetPort != 0 ? p.targetPort : p.port;
}

std::string ServiceRegistry::portKey(const ServiceSpec& s, const ServicePortSpec& p) {
  return s.key() + ":" + std::to_string(p.port) + "/" + protoName(p.protocol);
}

Result<ServiceRegistry::Built> ServiceRegistry::build(const ServiceSpec& s,
                                                      const NodeSettings& settings, Prepared& out,
                                                      uint32_t& newPortIds,
                                                      uint32_t& newSlotIndex) {
  Built built;
  if (s.dnsOnly()) return built;  // headless, ExternalName: nothing to balance (DNS answers them)
  built.inputs.reserve(s.ports.size());
  built.keys.reserve(s.ports.size() * s.endpoints.size());
  for (const auto& p : s.ports) {
    lb::ServicePortInput in;
    const std::string pk = portKey(s, p);
    if (auto it = portIds_.find(pk); it != portIds_.end()) {
      in.id = it->second;
    } else if (auto n = out.newPortIds.find(pk); n != out.newPortIds.end()) {
      in.id = n->second;
    } else {
      in.id = nextPortId_ + newPortIds++;
      out.newPortIds[pk] = in.id;
    }
    in.proto = p.protocol;
    if (s.affinityClientIp) in.flags |= lb::kServiceAffinity;
    if (s.externalTrafficLocal) in.flags |= lb::kServiceExternalLocal;
    if (s.internalTrafficLocal) in.flags |= lb::kServiceInternalLocal;
    in.affinityTimeoutMs = s.affinityTimeoutSeconds * 1000;
    const rte_be16_t port = rte_cpu_to_be_16(p.port);
    for (const auto& ip : s.clusterIps)
      in.addresses.push_back({rte_cpu_to_be_32(ip.value), port, lb::ServiceAccess::kCluster});
    for (const auto* list : {&s.externalIps, &s.loadBalancerIps})
      for (const auto& ip : *list)
        in.addresses.push_back({rte_cpu_to_be_32(ip.value), port, lb::ServiceAccess::kExternal});
    if (p.nodePort != 0)
      in.addresses.push_back({rte_cpu_to_be_32(settings.nodeIp.value), rte_cpu_to_be_16(p.nodePort),
                              lb::ServiceAccess::kNodePort});

    // EndpointSlice semantics: ready endpoints take new flows; when none is ready, the serving
    // and terminating ones do. Every known endpoint stays alive for its existing flows.
    bool anyReady = false;
    for (const auto& e : s.endpoints) anyReady |= e.ready && backendPort(p, e).has_value();
    const size_t first = built.keys.size();
    in.backends.reserve(s.endpoints.size());
    for (const auto& e : s.endpoints) {
      auto bport = backendPort(p, e);
      if (!bport) continue;
      const BackendKey bk{in.id, e.ip.value, *bport};
      if (std::find(built.keys.begin() + static_cast<std::ptrdiff_t>(first), built.keys.end(),
                    bk) != built.keys.end())
        continue;  // listed twice
      uint32_t slot;
      if (auto it = slotOf_.find(bk); it != slotOf_.end()) {
        slot = it->second;
      } else if (auto n = out.newSlots.find(bk); n != out.newSlots.end()) {
        slot = n->second;
      } else if (out.freeSlotsUsed < freeSlots_.size()) {
        slot = freeSlots_[freeSlots_.size() - 1 - out.freeSlotsUsed++];
        out.newSlots[bk] = slot;
      } else {
        slot = newSlotIndex++;
        out.tags.push_back(1);
        out.newSlots[bk] = slot;
      }
      built.keys.push_back(bk);
      lb::ServicePortInput::Backend b;
      b.backend.ip = rte_cpu_to_be_32(e.ip.value);
      b.backend.port = rte_cpu_to_be_16(*bport);
      b.backend.local = isLocal(e, settings) ? 1 : 0;
      b.backend.slot = slot;
      b.backend.tag = out.tags[slot];
      b.usable = anyReady ? e.ready : (e.serving && e.terminating);
      b.backend.usable = b.usable ? 1 : 0;
      b.weight = e.weight;
      // The Maglev identity: the address's four bytes (the same on every node).
      const uint32_t be = rte_cpu_to_be_32(e.ip.value);
      b.identity.assign(reinterpret_cast<const char*>(&be), sizeof(be));
      in.backends.push_back(std::move(b));
    }
    std::sort(in.backends.begin(), in.backends.end(),
              [](const auto& a, const auto& b) { return a.identity < b.identity; });
    in.resolve(maglev_, settings.maglevSize);
    built.inputs.push_back(std::move(in));
  }
  return built;
}

Result<ServiceRegistry::Prepared> ServiceRegistry::prepare(Services next,
                                                           const NodeSettings& settings,
                                                           int socketId,
                                                           const std::set<uint32_t>& flushSlots) {
  Changes changes;
  for (auto& [key, s] : next) {
    auto it = services_.find(key);
    if (it == services_.end() || !(it->second == s)) changes[key] = std::move(s);
  }
  for (const auto& [key, s] : services_)
    if (!next.count(key)) changes[key] = std::nullopt;
  return prepareChanges(std::move(changes), settings, socketId, flushSlots);
}

Result<ServiceRegistry::Prepared> ServiceRegistry::prepareChanges(
    Changes changes, const NodeSettings& settings, int socketId,
    const std::set<uint32_t>& flushSlots) {
  Prepared out;
  out.tags = tags_;
  size_t backendsAtMost = 0;  // a full apply brings every backend at once: no rehash on the way
  for (const auto& [key, spec] : changes)
    if (spec) backendsAtMost += spec->ports.size() * spec->endpoints.size();
  out.newSlots.reserve(backendsAtMost);
  uint32_t newPortIds = 0;
  uint32_t newSlotIndex = static_cast<uint32_t>(out.tags.size());
  // Flushed backends: their tags change, and the services holding them carry the new tags.
  std::set<std::string> rebuild;
  if (!flushSlots.empty()) {
    for (uint32_t slot : flushSlots)
      if (slot < out.tags.size()) ++out.tags[slot];
    for (const auto& [key, b] : built_)
      for (const BackendKey& bk : b.keys)
        if (flushSlots.count(slotOf_.at(bk))) rebuild.insert(key);
  }
  auto rebuildOne = [&](const std::string& key, const ServiceSpec& spec) -> Status {
    auto b = build(spec, settings, out, newPortIds, newSlotIndex);
    if (!b) return b.error();
    // Backends the service no longer has: their slots' tags change, so their flows die at once.
    if (auto old = built_.find(key); old != built_.end()) {
      const std::set<BackendKey> now(b->keys.begin(), b->keys.end());
      for (const BackendKey& bk : old->second.keys)
        if (!now.count(bk) && out.released.insert(bk).second) ++out.tags[slotOf_.at(bk)];
    }
    out.rebuilt.emplace(key, std::move(*b));
    return okStatus();
  };
  for (const auto& [key, spec] : changes) {
    if (spec) {
      if (auto st = rebuildOne(key, *spec); !st) return st.error();
    } else if (auto old = built_.find(key); old != built_.end()) {
      for (const BackendKey& bk : old->second.keys)
        if (out.released.insert(bk).second) ++out.tags[slotOf_.at(bk)];
    }
  }
  for (const std::string& key : rebuild)
    if (!changes.count(key))
      if (auto st = rebuildOne(key, services_.at(key)); !st) return st.error();
  // Tags of rebuilt services' inputs were read before later releases in this change: refresh.
  for (auto& [key, b] : out.rebuilt)
    for (auto& in : b.inputs)
      for (auto& be : in.backends) be.backend.tag = out.tags[be.backend.slot];

  // Every service port in key order: the rebuilt ones, and the others as they were (built_ has
  // the same keys as services_, in the same order).
  std::vector<const lb::ServicePortInput*> inputs;
  inputs.reserve(table_ ? table_->portCount() + changes.size() : changes.size());
  auto add = [&](const Built& b) {
    for (const auto& in : b.inputs) inputs.push_back(&in);
  };
  auto addChanged = [&](const std::string& key) { add(out.rebuilt.at(key)); };
  auto c = changes.begin();
  for (auto b = built_.begin(); b != built_.end(); ++b) {
    const std::string& key = b->first;
    for (; c != changes.end() && c->first < key; ++c)
      if (c->second) addChanged(c->first);
    if (c != changes.end() && c->first == key) {
      if (c->second) addChanged(key);
      ++c;
      continue;
    }
    auto r = rebuild.count(key) ? out.rebuilt.find(key) : out.rebuilt.end();
    add(r != out.rebuilt.end() ? r->second : b->second);
  }
  for (; c != changes.end(); ++c)
    if (c->second) addChanged(c->first);

  auto table = lb::ServiceTable::build(inputs, out.tags, table_.get(), socketId, counters_);
  if (!table) return table.error();
  out.table = std::move(*table);
  out.changes = std::move(changes);
  return out;
}

void ServiceRegistry::commit(Prepared&& p) {
  freeSlots_.resize(freeSlots_.size() - p.freeSlotsUsed);
  for (const auto& bk : p.released) {
    freeSlots_.push_back(slotOf_.at(bk));
    slotOf_.erase(bk);
  }
  for (const auto& [bk, slot] : p.newSlots) {
    slotOf_[bk] = slot;
    counterBaselines_[slot] = counters_ ? counters_->snatExhaustedTotal(slot) : 0;
  }
  for (const auto& [pk, id] : p.newPortIds) {
    portIds_[pk] = id;
    portNames_[id] = pk;
    nextPortId_ = std::max(nextPortId_, id + 1);
  }
  tags_ = std::move(p.tags);
  for (auto& [key, spec] : p.changes) {
    if (spec) {
      services_[key] = std::move(*spec);
    } else {
      services_.erase(key);
      built_.erase(key);
    }
  }
  for (auto& [key, b] : p.rebuilt) built_[key] = std::move(b);
  table_ = std::move(p.table);
}

std::set<uint32_t> ServiceRegistry::slotsOf(const std::string& serviceKey) const {
  std::set<uint32_t> out;
  for (const auto& [bk, slot] : slotOf_) {
    auto it = portNames_.find(std::get<0>(bk));
    if (it != portNames_.end() && it->second.rfind(serviceKey + ":", 0) == 0) out.insert(slot);
  }
  return out;
}

std::set<uint32_t> ServiceRegistry::slotsOf(Ipv4Address ip, uint16_t port) const {
  std::set<uint32_t> out;
  for (const auto& [bk, slot] : slotOf_)
    if (std::get<1>(bk) == ip.value && std::get<2>(bk) == port) out.insert(slot);
  return out;
}

uint64_t ServiceRegistry::snatExhausted(uint32_t slot) const {
  if (!counters_) return 0;
  auto it = counterBaselines_.find(slot);
  return counters_->snatExhaustedTotal(slot) - (it == counterBaselines_.end() ? 0 : it->second);
}

std::string ServiceRegistry::portName(uint32_t id) const {
  auto it = portNames_.find(id);
  return it == portNames_.end() ? "" : it->second;
}

}  // namespace nodeplane::control
