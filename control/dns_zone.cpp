#include "control/dns_zone.h"

#include <netinet/in.h>
#include <rte_byteorder.h>

#include <algorithm>

#include <cstring>

#include "control/cluster_imports.h"
#include "dns/present.h"
#include "dns/responder.h"

namespace nodeplane::control {

namespace {

dns::ZoneService zoneService(const ServiceSpec& s) {
  dns::ZoneService z;
  z.namespaceName = s.namespaceName;
  z.name = s.name;
  for (const Ipv4Address& ip : s.clusterIps) z.clusterIps.push_back(ip.value);
  z.externalName = s.externalName;
  for (const ServicePortSpec& p : s.ports) z.ports.push_back({p.name, p.protocol, p.port});
  if (s.clusterIps.empty())  // headless: the endpoints' own addresses and ports
    for (const EndpointSpec& e : s.endpoints) {
      dns::ZoneEndpoint ze;
      ze.ip = e.ip.value;
      ze.hostname = e.hostname;
      ze.ready = e.ready;
      for (const ServicePortSpec& p : s.ports)
        if (auto port = ServiceRegistry::backendPort(p, e))
          ze.ports.push_back({p.name, p.protocol, *port});
      z.endpoints.push_back(std::move(ze));
    }
  return z;
}

}  // namespace

std::shared_ptr<const dataplane::DnsTable> buildDnsTable(const ServiceRegistry::Services& services,
                                                         const NodeSettings& settings, bool ready,
                                                         uint32_t serial) {
  if (!settings.dnsResponder) return nullptr;
  dns::ZoneConfig config;
  config.domain = settings.clusterDomain;
  config.ttl = settings.dnsTtl;
  config.serial = serial;
  config.ready = ready;
  std::vector<dns::ZoneService> zoneServices, clusterset;
  zoneServices.reserve(services.size());
  for (const auto& [key, s] : services) {
    if (!isClustersetKey(key)) {
      zoneServices.push_back(zoneService(s));
      continue;
    }
    dns::ZoneService z = zoneService(s);  // <name>@clusterset: <name>.<ns>.svc.<clusterset>
    z.name = s.name.substr(0, s.name.size() - std::strlen(kClustersetSuffix));
    clusterset.push_back(std::move(z));
  }
  std::vector<rte_be32_t> servers;
  for (const Ipv4Address& ip : settings.clusterDns) servers.push_back(rte_cpu_to_be_32(ip.value));
  bool udpUpstream = false, tcpUpstream = false;
  rte_be32_t policyServer = 0;
  rte_be16_t policyPort[2] = {rte_cpu_to_be_16(53), rte_cpu_to_be_16(53)};  // UDP, TCP
  if (auto it = services.find("kube-system/kube-dns"); it != services.end()) {
    const ServiceSpec& s = it->second;
    for (const Ipv4Address& ip : s.clusterIps)
      if (std::find(servers.begin(), servers.end(), rte_cpu_to_be_32(ip.value)) == servers.end())
        servers.push_back(rte_cpu_to_be_32(ip.value));
    for (const ServicePortSpec& p : s.ports) {
      if (p.port != 53) continue;
      const bool tcp = p.protocol == IPPROTO_TCP;
      for (const EndpointSpec& e : s.endpoints) {
        auto port = ServiceRegistry::backendPort(p, e);
        if (!e.ready || !port) continue;
        (tcp ? tcpUpstream : udpUpstream) = true;
        if (policyServer == 0 || policyServer == rte_cpu_to_be_32(e.ip.value)) {
          policyServer = rte_cpu_to_be_32(e.ip.value);
          policyPort[tcp ? 1 : 0] = rte_cpu_to_be_16(*port);
        }
      }
    }
  }
  if (policyServer == 0 && !servers.empty()) policyServer = servers.front();
  std::shared_ptr<const dns::Zone> clustersetZone;
  if (settings.clustersetCidr) {
    dns::ZoneConfig c = config;
    c.domain = settings.clustersetDomain;
    clustersetZone = std::make_shared<const dns::Zone>(c, clusterset);
  }
  return std::make_shared<const dataplane::DnsTable>(dataplane::DnsTable{
      dns::Zone(config, zoneServices), std::move(clustersetZone), std::move(servers), udpUpstream,
      tcpUpstream, policyServer, policyPort[0], policyPort[1]});
}

namespace {

Json records(const std::vector<dns::PresentedRecord>& list) {
  Json out = Json::array();
  for (const auto& r : list)
    out.push_back({{"name", r.name}, {"type", r.type}, {"ttl", r.ttl}, {"data", r.data}});
  return out;
}

const char* outcomeName(dns::Outcome o) {
  switch (o) {
    case dns::Outcome::kAnswered:
      return "answered";
    case dns::Outcome::kNxDomain:
      return "nxdomain";
    case dns::Outcome::kNoData:
      return "nodata";
    case dns::Outcome::kServFail:
      return "servfail";
    case dns::Outcome::kBadVersion:
      return "badvers";
    case dns::Outcome::kPassOn:
      return "passed on";
    case dns::Outcome::kMalformed:
      return "malformed";
    case dns::Outcome::kRefused:
      return "refused";
  }
  return "?";
}

}  // namespace

Result<Json> lookUpName(const dataplane::Snapshot* snapshot, const Json& args) {
  ArgReader r("dns", args);
  if (auto st = r.onlyFields({"name", "type"}); !st) return st.error();
  auto name = r.string("name");
  if (!name) return name.error();
  auto typeText = r.optionalString("type", "A");
  if (!typeText) return typeText.error();
  auto type = dns::typeFromName(*typeText);
  if (!type) return r.error("type", "'" + *typeText + "' is not A, AAAA, SRV, PTR, TXT, ...");
  if (snapshot == nullptr || !snapshot->dns)
    return makeError(ErrorCode::kUnavailable,
                     "dns: the responder is off (--no-dns-responder) or not started");
  std::vector<uint8_t> query = dns::buildQuery(*name, *type, 1, dns::kMaxUdpSize);
  if (query.empty()) return r.error("name", "'" + *name + "' is not a DNS name");
  query[2] &= 0xfe;  // no RD: what the zone holds (an alias as its CNAME, not passed on)
  std::vector<uint8_t> out(65535);
  const dns::Response answer =
      dns::respond(query.data(), query.size(), snapshot->dns->zone, true, out.data(), out.size(),
                   snapshot->dns->udpUpstream ? dns::Upstream::kPresent : dns::Upstream::kNone,
                   snapshot->dns->clusterset.get());
  Json servers = Json::array();
  for (rte_be32_t s : snapshot->dns->servers)
    servers.push_back(Ipv4Address{rte_be_to_cpu_32(s)}.toString());
  Json result = {{"name", *name},
                 {"type", dns::typeName(*type)},
                 {"outcome", outcomeName(answer.outcome)},
                 {"servers", servers},
                 {"domain", snapshot->dns->zone.config().domain},
                 {"snapshot", snapshot->generation}};
  if (answer.length == 0) {
    result["note"] = "not answered by the data plane: the query goes to the DNS Service's backends";
    return result;
  }
  auto presented = dns::present(out.data(), answer.length);
  if (!presented) return makeError(ErrorCode::kInternal, "dns: the answer does not decode");
  result["rcode"] = presented->rcode;
  result["answer"] = records(presented->answer);
  result["authority"] = records(presented->authority);
  result["additional"] = records(presented->additional);
  return result;
}

std::string describeDnsAnswer(const uint8_t* message, size_t length) {
  auto p = dns::present(message, length);
  if (!p) return {};
  std::string out = "dns " + p->rcode + (p->truncated ? " TC" : "") + " " + p->question;
  for (const auto& rr : p->answer) out += "; " + rr.type + " " + rr.data;
  return out;
}

}  // namespace nodeplane::control
