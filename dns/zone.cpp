#include "dns/zone.h"

#include <algorithm>
#include <set>

namespace nodeplane::dns {

namespace {

constexpr uint8_t kOwnerIsQuestion[2] = {0xc0, 0x0c};

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

// One record into `set`: owner (a wire name, or empty for the question's pointer), type, TTL and
// RDATA.
void addRecord(RecordSet& set, std::string_view owner, uint16_t type, uint32_t ttl,
               std::string_view rdata) {
  if (owner.empty())
    set.wire.append(reinterpret_cast<const char*>(kOwnerIsQuestion), 2);
  else
    set.wire.append(owner);
  put16(set.wire, type);
  put16(set.wire, kClassIn);
  put32(set.wire, ttl);
  put16(set.wire, static_cast<uint16_t>(rdata.size()));
  set.wire.append(rdata);
  ++set.count;
}

std::string ipv4Rdata(uint32_t ip) {
  std::string r;
  put32(r, ip);
  return r;
}

std::string dashed(uint32_t ip) {
  return std::to_string(ip >> 24) + "-" + std::to_string(ip >> 16 & 0xff) + "-" +
         std::to_string(ip >> 8 & 0xff) + "-" + std::to_string(ip & 0xff);
}

std::string reverseName(uint32_t ip) {
  return std::to_string(ip & 0xff) + "." + std::to_string(ip >> 8 & 0xff) + "." +
         std::to_string(ip >> 16 & 0xff) + "." + std::to_string(ip >> 24) + ".in-addr.arpa";
}

const char* protoLabel(uint8_t proto) {
  return proto == 17 ? "_udp" : "_tcp";
}

// A DNS-1123 label, as Kubernetes requires of namespaces, services and port names.
bool isLabel(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return s.front() != '-' && s.back() != '-';
}

}  // namespace

std::string Zone::toWire(std::string_view dotted) {
  if (!dotted.empty() && dotted.back() == '.') dotted.remove_suffix(1);
  if (dotted.empty()) return std::string(1, '\0');
  std::string out;
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t end = dotted.find('.', start);
    if (end == std::string_view::npos) end = dotted.size();
    const size_t n = end - start;
    if (n == 0 || n > 63) return {};
    out.push_back(static_cast<char>(n));
    for (size_t i = start; i < end; ++i) {
      const char c = dotted[i];
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return {};
      out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    }
    start = end + 1;
  }
  out.push_back('\0');
  if (out.size() > kMaxName) return {};
  return out;
}

Zone::Zone(const ZoneConfig& config, const std::vector<ZoneService>& services) : config_(config) {
  apex_ = toWire(config_.domain);
  if (apex_.size() <= 1) {
    problems_.push_back("cluster domain '" + config_.domain + "' is not a DNS name");
    apex_ = toWire("cluster.local");
    config_.domain = "cluster.local";
  }
  for (size_t i = 0; i + 1 < apex_.size(); i += 1u + static_cast<uint8_t>(apex_[i])) ++apexLabels_;

  // The apex: SOA and NS as CoreDNS gives them.
  std::string soa;
  soa += toWire("ns.dns." + config_.domain);
  soa += toWire("hostmaster." + config_.domain);
  put32(soa, config_.serial);
  put32(soa, 7200);
  put32(soa, 1800);
  put32(soa, 86400);
  put32(soa, config_.ttl);
  ZoneName& apexName = at(apex_);
  addRecord(apexName.soa, {}, kTypeSoa, config_.ttl, soa);
  addRecord(apexName.ns, {}, kTypeNs, config_.ttl, toWire("ns.dns." + config_.domain));
  RecordSet authority;
  addRecord(authority, apex_, kTypeSoa, config_.ttl, soa);
  soaAuthority_ = authority.wire;

  // dns-version: the schema this zone follows.
  std::string version = "1.1.0";
  version.insert(version.begin(), static_cast<char>(version.size()));
  addRecord(at(toWire("dns-version." + config_.domain)).txt, {}, kTypeTxt, config_.ttl, version);
  (void)at(toWire("pod." + config_.domain));
  (void)at(toWire("svc." + config_.domain));

  for (const ZoneService& s : services) addService(s);
}

ZoneName& Zone::at(const std::string& wire) {
  auto [it, inserted] = names_.try_emplace(wire);
  if (inserted && wire.size() > apex_.size() && wire.ends_with(apex_)) {
    // Every name between it and the apex exists too (empty non-terminals answer NODATA).
    const std::string parent = wire.substr(1u + static_cast<uint8_t>(wire[0]));
    (void)at(parent);
  }
  return names_.find(wire)->second;  // (the recursion may have rehashed)
}

void Zone::addA(const std::string& owner, uint32_t ip) {
  addRecord(at(owner).a, {}, kTypeA, config_.ttl, ipv4Rdata(ip));
}

void Zone::addPtr(uint32_t ip, const std::string& target) {
  addRecord(names_[toWire(reverseName(ip))].ptr, {}, kTypePtr, config_.ttl, target);
}

void Zone::addService(const ZoneService& s) {
  const std::string what = "service " + s.namespaceName + "/" + s.name;
  if (!isLabel(s.namespaceName) || !isLabel(s.name)) {
    problems_.push_back(what + ": not a DNS label");
    return;
  }
  const std::string base = s.name + "." + s.namespaceName + ".svc." + config_.domain;
  const std::string owner = toWire(base);
  if (owner.empty()) {
    problems_.push_back(what + ": name longer than DNS allows");
    return;
  }
  const uint32_t ttl = config_.ttl;
  if (!s.externalName.empty()) {
    const std::string target = toWire(s.externalName);
    if (target.size() <= 1) {
      problems_.push_back(what + ": externalName '" + s.externalName + "' is not a DNS name");
      return;
    }
    addRecord(at(owner).cname, {}, kTypeCname, ttl, target);
    return;
  }
  (void)at(owner);

  // Targets of SRV records: (port, target wire name, target address).
  struct Target {
    uint16_t port;
    std::string wire;
    uint32_t ip;
  };
  auto addSrvSet = [&](const std::string& srvOwner, const std::vector<Target>& targets) {
    if (targets.empty()) return;
    const uint16_t weight = static_cast<uint16_t>(std::max<size_t>(1, 100 / targets.size()));
    ZoneName& n = at(srvOwner);
    for (const Target& t : targets) {
      std::string rdata;
      put16(rdata, 0);  // priority
      put16(rdata, weight);
      put16(rdata, t.port);
      rdata += t.wire;
      addRecord(n.srv, {}, kTypeSrv, ttl, rdata);
      addRecord(n.additional, t.wire, kTypeA, ttl, ipv4Rdata(t.ip));
    }
  };
  auto portOwner = [&](const ZonePort& p) {
    return toWire("_" + p.name + "." + protoLabel(p.protocol) + "." + base);
  };
  std::vector<Target> all;  // the service name's own SRV records: every port

  if (!s.clusterIps.empty()) {
    for (uint32_t ip : s.clusterIps) {
      addA(owner, ip);
      addPtr(ip, owner);
    }
    for (const ZonePort& p : s.ports) {
      const Target t{p.port, owner, s.clusterIps.front()};
      all.push_back(t);
      if (!p.name.empty() && isLabel(p.name)) addSrvSet(portOwner(p), {t});
    }
    addSrvSet(owner, all);
    return;
  }

  // Headless: the ready endpoints themselves.
  std::set<uint32_t> seen;
  std::map<std::string, std::vector<Target>> byPort;  // port owner -> targets
  for (const ZoneEndpoint& e : s.endpoints) {
    if (!e.ready || !seen.insert(e.ip).second) continue;
    addA(owner, e.ip);
    const std::string host = !e.hostname.empty() && isLabel(e.hostname) ? e.hostname : dashed(e.ip);
    const std::string hostWire = toWire(host + "." + base);
    if (hostWire.empty()) continue;
    addA(hostWire, e.ip);
    addPtr(e.ip, hostWire);
    for (const ZonePort& p : e.ports) {
      const Target t{p.port, hostWire, e.ip};
      all.push_back(t);
      if (!p.name.empty() && isLabel(p.name)) byPort[portOwner(p)].push_back(t);
    }
  }
  for (const auto& [portName, targets] : byPort) addSrvSet(portName, targets);
  addSrvSet(owner, all);
}

}  // namespace nodeplane::dns
