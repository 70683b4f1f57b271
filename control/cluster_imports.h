// Services of other clusters (issue 13, Multi-Cluster Services semantics): what each peer's
// gateway announces it exports (heartbeat.h), kept while it is announced again within the expiry
// and its cluster has a gateway alive; and the clusterset services built from them and this
// cluster's own exports: one service per exported name, `ns/name@clusterset`, at an address of
// --clusterset-cidr, whose backends are this cluster's endpoints (when it exports the name) and
// every other exporting cluster's address for it (its global address with Globalnet, else its
// ClusterIP). Local first: while this cluster has a ready endpoint, the other clusters' are only
// serving (EndpointSlice semantics: they take new flows when no local one is ready), so Maglev
// balances over the local endpoints and falls over to the other clusters. A name exported as a
// headless service (by this cluster, else by the first cluster that announces it) makes a
// headless clusterset service instead: no address, every exporting cluster's ready endpoints (at
// their global addresses with Globalnet) with their hostnames, for DNS; clusters that export the
// name as the other kind are left out of it. Control thread only.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/global_net.h"
#include "control/heartbeat.h"
#include "control/model.h"

namespace nodeplane::control {

struct ImportedService {
  Ipv4Address address;  // none when headless
  std::vector<AnnouncedPort> ports;
  bool headless = false;
  std::vector<AnnouncedEndpoint> endpoints;  // headless: its ready endpoints
  std::chrono::steady_clock::time_point lastSeen;
};

class ClusterImports {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // By service (namespace/name), then by cluster ID.
  using Map = std::map<std::string, std::map<std::string, ImportedService>>;

  // True when what is imported changed (a new service or cluster, another address or ports).
  bool announce(const ExportAnnouncement& a, TimePoint now);
  // Forgets one cluster's import of a service. True when it was there.
  bool withdraw(const std::string& clusterId, const std::string& service);
  // Forgets what was not announced since `oldest` and everything of the clusters not in
  // `alive`; returns what it forgot (cluster ID, service).
  std::vector<std::pair<std::string, std::string>> expire(TimePoint oldest,
                                                          const std::set<std::string>& alive);
  const Map& services() const { return services_; }

 private:
  Map services_;
};

inline constexpr const char* kClustersetSuffix = "@clusterset";
bool isClustersetKey(const std::string& key);

// The clusterset services for the cluster's services (`services`: this node's, clusterset ones
// ignored), its exports and the imports. `vips`: the addresses given so far, by namespace/name
// (kept for names that remain, freed for the others, new ones the lowest free of `cidr`).
std::map<std::string, ServiceSpec> clustersetServices(
    const std::map<std::string, ServiceSpec>& services, const ExportMap& exports,
    const ClusterImports& imports, const Ipv4Prefix& cidr,
    std::map<std::string, Ipv4Address>& vips);

}  // namespace nodeplane::control
