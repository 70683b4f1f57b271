// The node's model as the data plane sees it, and the one function that turns it into a
// snapshot. NodeController works in five steps for every change: validate, build a candidate
// model (a copy of the current one with the changed section replaced), assemble its snapshot
// here, publish it, then commit the candidate as the current model. Nothing is swapped in and
// rolled back: a candidate that fails to assemble is dropped and the current model stays.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "control/cluster_links.h"
#include "control/model.h"
#include "control/underlay_resolver.h"
#include "core/result.h"
#include "dataplane/dataplane_backend.h"
#include "dataplane/route_table.h"
#include "dataplane/snapshot.h"
#include "lb/service_table.h"
#include "overlay/overlay_table.h"
#include "policy/policy_table.h"

namespace nodeplane::control {

using PodMap = std::map<PodKey, AttachedPod>;
using NodeMap = std::map<std::string, NodeSpec>;

// Every section is immutable and shared: a candidate that changes one section costs a pointer
// copy for the others, and "unchanged" is "the same object".
// Nodeplane's end of the host path, and the MAC of the kernel's end (where the node's traffic
// goes).
struct HostPort {
  dataplane::PortInfo port;
  MacAddress kernelMac;
};

// The gateways in use, as heartbeats tell (cluster_health.h): this cluster's (empty: the first
// listed) and each peer's (by cluster ID; absent: its first).
struct GatewayChoice {
  std::string local;
  std::map<std::string, Ipv4Address> peers;
  bool operator==(const GatewayChoice&) const = default;
};

struct NodeModel {
  std::shared_ptr<const PodMap> pods = std::make_shared<const PodMap>();
  std::shared_ptr<const NodeMap> nodes = std::make_shared<const NodeMap>();
  std::optional<dataplane::PortInfo> uplink;
  std::optional<HostPort> host;  // the host path (control/host_path.h), when configured
  std::shared_ptr<const lb::ServiceTable> services;   // null: no service applied yet
  std::shared_ptr<const policy::PolicyTable> policy;  // null: no policy applied yet
  std::shared_ptr<const dataplane::DnsTable> dns;     // null: the DNS responder is off
  std::shared_ptr<const PeerMap> peers = std::make_shared<const PeerMap>();  // cluster_links.h
  // This cluster's gateway nodes, in order of preference (cluster_links.h); empty: this node.
  std::shared_ptr<const std::vector<std::string>> clusterGateways =
      std::make_shared<const std::vector<std::string>>();
  std::shared_ptr<const GatewayChoice> gatewayChoice = std::make_shared<const GatewayChoice>();
  // The exported services' global addresses (global_net.h), resolved against the services.
  std::shared_ptr<const GlobalIngressList> globalIngress =
      std::make_shared<const GlobalIngressList>();
};

// The node this cluster's traffic to other clusters leaves through: the first of the cluster's
// gateways, or this node when none is named.
std::string activeGateway(const NodeModel& model, const NodeSettings& settings);
// Whether this node is one of its cluster's gateways (active or standby): it has the links.
bool isGatewayNode(const NodeModel& model, const NodeSettings& settings);
// The link the traffic to a peer goes on (linkIndexes() order): its chosen gateway's.
uint16_t activePeerLink(const NodeModel& model, const std::string& clusterId, uint16_t first);

// What else goes into a snapshot: the daemon's settings, the engine's shape, the underlay MACs
// resolved so far.
struct AssemblyInputs {
  const NodeSettings& settings;
  unsigned workers;
  int socketId;
  const UnderlayResolver& resolver;
};

// The VTEP MAC of this node (its setting, or the one derived from its address).
MacAddress vtepMacOf(const NodeSettings& settings);
// The underlay next hop for a tunnel endpoint: itself inside the uplink's subnet, else the
// underlay gateway (when there is one).
Ipv4Address underlayNextHop(const NodeSettings& settings, Ipv4Address endpoint);

// The snapshot of `model`, numbered `generation`. `routes`: the route table to use when the
// caller knows the pods, nodes and uplink it was built from are those of `model`; null: built
// here.
Result<std::unique_ptr<dataplane::Snapshot>> assembleSnapshot(
    const NodeModel& model, const AssemblyInputs& inputs, uint64_t generation,
    std::shared_ptr<const dataplane::RouteTable> routes);

}  // namespace nodeplane::control
