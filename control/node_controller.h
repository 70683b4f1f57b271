// The core functions behind every front end (socket handler, npctl, CNI, the agent). Every change
// goes the same way: validate it, build a candidate model (control/snapshot_assembly.h), make the
// ports it needs, assemble the candidate's snapshot off the hot path, publish it, commit the
// candidate; only after the grace period is what the old snapshot used released. A failed
// change leaves the model, the ports and the published snapshot as they were.
// Runs on the control thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "control/cluster_health.h"
#include "control/cluster_imports.h"
#include "control/cluster_keys.h"
#include "control/host_path.h"
#include "control/model.h"
#include "control/node_port_redirect.h"
#include "control/node_validation.h"
#include "control/pod_state_file.h"
#include "control/service_registry.h"
#include "control/snapshot_assembly.h"
#include "control/underlay_resolver.h"
#include "control/uplink_guard.h"
#include "core/result.h"
#include "dataplane/dataplane_backend.h"
#include "policy/model.h"
#include "policy/policy_table.h"

namespace nodeplane::control {

class NodeController {
 public:
  NodeController(NodeSettings settings, dataplane::DataplaneBackend& backend);

  // Publishes the first snapshot, opens the uplink if one is configured, and re-attaches the pods
  // of the state file whose interfaces still exist (a daemon restart keeps pods connected).
  Status start();
  // Detaches every port (for a clean stop); the workers must still be able to synchronize.
  void shutdown();

  Result<AttachedPod> attachPod(const PodAttachment& spec);
  // Adds or replaces a node of the cluster (our own entry is checked, not routed).
  Status setNode(const NodeSpec& spec);
  Status deleteNode(const std::string& name);
  std::vector<NodeSpec> nodes() const;
  // Peer clusters (cluster_links.h): adds or replaces one (its SAs made anew), or removes it.
  // Validated first (errors name the field); nothing changes on any error.
  Status setClusterPeer(const ClusterPeerSpec& spec);
  Status deleteClusterPeer(const std::string& clusterId);
  // This cluster's gateway nodes, in order of preference (empty: this node is the gateway).
  Status setClusterGateways(std::vector<std::string> nodes);
  const std::vector<std::string>& clusterGateways() const { return *model_.clusterGateways; }
  std::string activeClusterGateway() const { return activeGateway(model_, settings_); }
  const ClusterHealth& clusterHealth() const { return health_; }
  const GatewayChoice& gatewayChoice() const { return *model_.gatewayChoice; }
  // Globalnet exports (global_net.h): a service (namespace/name, existing or not yet) gets a
  // global address, `globalIp` or the one it has or the lowest free one; returned.
  Result<Ipv4Address> exportService(const std::string& service,
                                    std::optional<Ipv4Address> globalIp);
  Status unexportService(const std::string& service);
  const ExportMap& exports() const { return exports_; }
  // What the data plane translates for them (with the headless exports' endpoints).
  const GlobalIngressList& globalIngress() const { return *model_.globalIngress; }
  const ClusterImports& imports() const { return imports_; }
  const std::map<std::string, Ipv4Address>& clustersetVips() const { return clustersetVips_; }
  const PeerMap& clusterPeers() const { return *model_.peers; }
  // Services: one whole service (with its endpoints) at a time; applied atomically, flows to
  // backends that stay are not disturbed.
  Status setService(const ServiceSpec& spec);
  // Replaces every service at once (a full apply): all are validated first, conflicts included;
  // nothing changes on any error.
  Status replaceServices(const std::vector<ServiceSpec>& services);
  Status setEndpoints(const std::string& namespaceName, const std::string& name,
                      const std::vector<EndpointSpec>& endpoints);
  Status deleteService(const std::string& namespaceName, const std::string& name);
  // Ends the tracked flows of a service (ns/name) or of a backend (address:port); returns how
  // many backends' flows were flushed.
  Result<size_t> flushFlows(const std::optional<std::string>& service,
                            const std::optional<std::pair<Ipv4Address, uint16_t>>& backend);
  const ServiceRegistry& serviceRegistry() const { return services_; }
  // NetworkPolicy and L7 rules: the node's whole policy state at once (namespaces and pods as
  // identities, policies, L7 rules). Compiled off the hot path and published with one snapshot;
  // on any error nothing changes. Tracked flows are judged again on their next packet.
  Status applyPolicy(policy::PolicyState state);
  // The policy table in force (null before the first apply).
  const policy::PolicyTable* policyTable() const { return model_.policy.get(); }
  policy::PolicyRuntime* policyRuntime() const { return policyRuntime_.get(); }
  // The whole desired state (or the sections given) at once: everything is validated first and
  // every problem returned (each naming its object and field); then one snapshot with all of it
  // is built and published. Nothing changes on any error. Re-applying the same state changes
  // nothing (flows in progress are untouched).
  Result<ApplyResult> applyDesired(DesiredState state);
  uint64_t appliedGeneration() const { return appliedGeneration_; }
  // Moves denied-flow records from the workers' rings to the recent list, logging each.
  size_t drainPolicyLog();
  // The slow path: punted packets and ARP timers; republishes templates when MACs change.
  void serviceSlowPath(UnderlayResolver::TimePoint now);
  std::vector<overlay::NeighborTable::View> neighbors(UnderlayResolver::TimePoint now) const {
    return resolver_.neighbors(now);
  }
  MacAddress vtepMac() const;
  // For a remote node: the underlay next hop of its tunnel endpoint.
  Ipv4Address nextHopFor(Ipv4Address endpoint) const;
  const dataplane::Snapshot* current() const { return current_; }
  Status detachPod(const PodKey& key);
  // Finds the attachment of a pod by namespace/name (its first interface).
  std::optional<PodKey> findPod(const std::string& namespaceName, const std::string& name) const;
  std::vector<AttachedPod> pods() const;
  // Detaches pods whose host interface has disappeared (the pod's namespace was deleted without
  // a CNI DEL). Returns how many. Called periodically by the daemon.
  size_t detachVanishedPods();
  // How host interfaces are looked up (tests replace it).
  void setInterfaceProbe(std::function<bool(const std::string&)> exists) {
    interfaceExists_ = std::move(exists);
  }

  // How the host path's links are made (tests replace it; the real one is rtnetlink).
  struct HostPathOps {
    std::function<Result<HostPathLinks>(const HostPathConfig&)> create = createHostPathLinks;
    std::function<Status(const HostPathConfig&)> addRoutes = addHostPathRoutes;
    std::function<void(const std::string&)> remove = removeHostPath;
    std::function<Status(const std::vector<NodePortRedirect>&)> redirectNodePorts =
        installNodePortRedirects;
    std::function<void()> removeNodePortRedirects = control::removeNodePortRedirects;
  };
  void setHostPathOps(HostPathOps ops) { hostPathOps_ = std::move(ops); }
  const std::optional<HostPort>& hostPort() const { return model_.host; }
  // "installed on IF", "failed: ...", "removed", or empty (no shared uplink / not asked for).
  const std::string& uplinkGuardState() const { return uplinkGuardState_; }

  const NodeSettings& settings() const { return settings_; }
  uint64_t generation() const { return generation_; }
  const std::optional<dataplane::PortInfo>& uplink() const { return model_.uplink; }

 private:
  // Assembles and publishes the snapshot of `next`, then makes it the current model. On an
  // error nothing is published and the current model stays.
  Status publish(NodeModel next);
  // The current model with one section replaced: the candidate of a change.
  NodeModel withPods(PodMap pods) const;
  NodeModel withNodes(NodeMap nodes) const;
  Status applyServices(ServiceRegistry::Changes changes, const std::set<uint32_t>& flushSlots = {});
  void updateWantedNeighbors();
  // Gateway heartbeats (cluster_health.h): sent every interval, taken from the punt queue; a
  // change of the gateways in use is published.
  void serviceClusterHealth(ClusterHealth::TimePoint now);
  void sendHeartbeats();
  void handleHeartbeat(rte_mbuf* m, uint32_t aux, ClusterHealth::TimePoint now);
  // ESP SA generations (cluster_keys.h): rekeys when due; learns a peer gateway's new one.
  void serviceClusterKeys();
  void learnEspGeneration(rte_mbuf* m, uint32_t link);
  // A heartbeat to peer gateway `link`'s sealed by the control thread with `sa`, on the uplink.
  void sendSealedHeartbeat(size_t link, Ipv4Address gateway, overlay::EspSa& sa);
  // Exports announced to the peers' gateways; the clusterset services kept in step with the
  // services, the exports and the imports (cluster_imports.h).
  void sendAnnouncements();
  void relayImports();
  void relayToNodes(const ExportAnnouncement& announcement);
  // A cluster message (heartbeat.h) to every other node of this cluster on the underlay.
  void sendToNodes(const std::vector<uint8_t>& payload, Counter& sent);
  void syncClusterset();
  // The exports' translations for these services (every change of either rebuilds them).
  std::shared_ptr<const GlobalIngressList> globalIngressFor(
      const ServiceRegistry::Services& services) const;
  std::set<std::string> policyKeysOf(const policy::PolicyTable* table) const;
  Result<std::shared_ptr<const policy::PolicyTable>> buildPolicyTable(policy::PolicyState state);
  void commitPolicyTable();  // after publishing a model with a new policy table
  HostPathConfig hostPathConfig() const;
  Status startHostPath();
  void startUplinkGuard();
  // Keeps the node's NodePort redirects (node_port_redirect.h) in step with the services.
  void syncNodePortRedirects();
  void savePods() const;
  void restorePods();

  NodeSettings settings_;
  dataplane::DataplaneBackend& backend_;
  NodeModel model_;  // what the current snapshot was assembled from
  std::shared_ptr<const dataplane::RouteTable> routes_;  // of the current snapshot
  uint64_t generation_ = 0;
  std::function<bool(const std::string&)> interfaceExists_;
  HostPathOps hostPathOps_;
  std::string uplinkGuardState_;
  std::optional<std::vector<NodePortRedirect>> nodePortRedirects_;  // as installed
  PodStateFile stateFile_;
  UnderlayResolver resolver_;
  ServiceRegistry services_;
  std::shared_ptr<policy::PolicyRuntime> policyRuntime_;
  std::shared_ptr<overlay::EspDevice> espDevice_;  // opened for the first peer cluster
  ClusterKeys keys_;                               // SA generations
  ClusterHealth health_;                           // gateway heartbeats heard
  ClusterImports imports_;                         // what peers export
  std::map<std::string, Ipv4Address> clustersetVips_;
  bool clustersetDirty_ = false;  // recomputed on the next tick
  uint32_t announceTick_ = 0;
  static constexpr uint32_t kHeartbeatsPerAnnouncement = 10;
  uint32_t heartbeatSequence_ = 0;
  ExportMap exports_;  // Globalnet exports, by namespace/name
  uint32_t policyGeneration_ = 0;
  uint64_t appliedGeneration_ = 0;                // the agent's, from the last apply
  const dataplane::Snapshot* current_ = nullptr;  // the last one published
};

}  // namespace nodeplane::control
