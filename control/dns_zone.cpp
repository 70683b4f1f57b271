#include "control/dns_zone.h"

#include <rte_byteorder.h>

#include <algorithm>

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
  std::vector<dns::ZoneService> zoneServices;
  zoneServices.reserve(services.size());
  for (const auto& [key, s] : services) zoneServices.push_back(zoneService(s));
  std::vector<rte_be32_t> servers;
  for (const Ipv4Address& ip : settings.clusterDns) servers.push_back(rte_cpu_to_be_32(ip.value));
  if (auto it = services.find("kube-system/kube-dns"); it != services.end())
    for (const Ipv4Address& ip : it->second.clusterIps)
      if (std::find(servers.begin(), servers.end(), rte_cpu_to_be_32(ip.value)) == servers.end())
        servers.push_back(rte_cpu_to_be_32(ip.value));
  return std::make_shared<const dataplane::DnsTable>(
      dataplane::DnsTable{dns::Zone(config, zoneServices), std::move(servers)});
}

}  // namespace nodeplane::control
