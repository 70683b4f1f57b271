// The node's control-plane model: settings from the daemon's options and the pods attached to
// this node. Plain values; NodeController validates changes to it and derives snapshots from it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "core/ipv4.h"
#include "dataplane/dataplane_backend.h"
#include "policy/model.h"

namespace nodeplane::control {

struct NodeSettings {
  std::string nodeName;
  Ipv4Address nodeIp;
  uint8_t underlayPrefixLength = 32;           // the uplink's subnet around nodeIp
  std::optional<Ipv4Address> underlayGateway;  // for tunnel endpoints outside it
  uint16_t mtu = 1500;                         // underlay IP MTU
  uint16_t vxlanPort = 4789;
  uint32_t vni = 1;
  std::optional<MacAddress> vtepMac;  // default: overlay::defaultVtepMac(nodeIp)
  Ipv4Prefix podCidr;
  std::optional<Ipv4Prefix> clusterCidr;
  std::optional<Ipv4Prefix> serviceCidr;
  Ipv4Address gatewayIp{0xa9fe0101};
  uint32_t icmpErrorsPerSecond = 1000;
  std::string uplinkDevargs;  // empty: no uplink
  std::string hostInterface;  // the host path's kernel-side interface (host_path.h); empty: none
  bool uplinkGuard = false;   // on a shared (af_packet) uplink, keep the kernel off our traffic
  // The uplink is the node's only NIC: the node address is the host interface's, with the
  // kernel's default route, and the node's own traffic to and from outside crosses nodeplane
  // (host_path.h). On an af_packet uplink the guard then keeps the kernel off it entirely.
  bool hostDefaultRoute = false;
  // SNAT source ports (lb/snat_ports.h); unset: 32768-60999, or 61000-65535 behind the uplink
  // guard (the kernel's ephemeral range stays the kernel's). See snatPortRange().
  std::optional<std::pair<uint16_t, uint16_t>> snatPorts;
  std::string stateFile;        // attachments survive a daemon restart here; empty: not kept
  uint32_t maglevSize = 16381;  // prime
  bool policyAudit = false;     // every NetworkPolicy in audit mode
  uint32_t maxPolicies = 4096;
  uint32_t l7FlowsPerWorker = 4096;
  // Cluster DNS answered by the workers (dataplane/dns_stage.h): the domain, the TTL of answers,
  // addresses queries come to besides the kube-system/kube-dns Service's ClusterIPs.
  bool dnsResponder = true;
  std::string clusterDomain = "cluster.local";
  uint32_t dnsTtl = 5;
  std::vector<Ipv4Address> clusterDns;
  // This cluster's ID among the clusters it links to (control/cluster_links.h); empty: none.
  std::string clusterId;
  // Its global CIDR (control/global_net.h): set when linked clusters' CIDRs overlap.
  std::optional<Ipv4Prefix> globalCidr;
  // Gateway heartbeats (cluster_health.h): how often, and silence for how long means gone.
  uint32_t heartbeatIntervalMs = 100;
  // ESP SA generations (cluster_links.h): a new one at least this often.
  uint32_t clusterRekeySeconds = 3600;
  uint32_t gatewayDeadMs = 500;
  // Clusterset services (cluster_imports.h) get addresses here; unset: none are made.
  std::optional<Ipv4Prefix> clustersetCidr;
  std::string clustersetDomain = "clusterset.local";
};

// A pod network interface as the CNI plugin (or an operator) describes it.
struct PodAttachment {
  std::string namespaceName;
  std::string name;
  std::string containerId;
  std::string interface = "eth0";  // the interface name inside the pod
  std::string hostInterface;       // host end of the veth pair (an af_packet port is made on it)
  std::string devargs;             // or: explicit DPDK devargs (memif, pcap, tap ...)
  std::string netns;               // informational: the pod's network namespace path
  Ipv4Address ip;
  MacAddress mac;  // the pod-side interface's MAC

  bool operator==(const PodAttachment&) const = default;
};

struct AttachedPod {
  PodAttachment spec;
  dataplane::PortInfo port;
};

// A node of the cluster: where its tunnel endpoint is and which pod CIDRs live behind it.
struct NodeSpec {
  std::string name;
  Ipv4Address ip;  // underlay address: the VXLAN tunnel endpoint
  std::vector<Ipv4Prefix> podCidrs;
  std::optional<MacAddress> vtepMac;  // its VTEP's MAC; default derived from ip
  bool operator==(const NodeSpec&) const = default;
};

// A Service as nodeplane needs it (the agent fills it from Service and EndpointSlice objects).
struct ServicePortSpec {
  std::string name;            // may be empty for a single-port service
  uint8_t protocol = 6;        // IPPROTO_TCP or IPPROTO_UDP
  uint16_t port = 0;           // on the cluster, external and load-balancer IPs
  uint16_t targetPort = 0;     // a number (0: the same as port) ...
  std::string targetPortName;  // ... or a name, resolved per endpoint
  uint16_t nodePort = 0;       // NodePort / LoadBalancer services
  bool operator==(const ServicePortSpec&) const = default;
};

struct EndpointSpec {
  Ipv4Address ip;
  std::string nodeName;  // empty: local if inside this node's pod CIDR
  bool ready = true;     // EndpointSlice conditions
  bool serving = true;
  bool terminating = false;
  // Port numbers by name: EndpointSlice ports (named as the service ports) or the pod's named
  // container ports (for a targetPort given by name).
  std::map<std::string, uint16_t> ports;
  uint32_t weight = 1;   // Maglev weight
  std::string hostname;  // EndpointSlice endpoints[].hostname (DNS of headless services)
  bool operator==(const EndpointSpec&) const = default;
};

struct ServiceSpec {
  std::string namespaceName;
  std::string name;
  std::string type = "ClusterIP";       // ClusterIP, NodePort, LoadBalancer or ExternalName
  std::string externalName;             // ExternalName: the CNAME target (DNS only)
  std::vector<Ipv4Address> clusterIps;  // empty (clusterIP None) and no other address: headless
  std::vector<Ipv4Address> externalIps;
  std::vector<Ipv4Address> loadBalancerIps;
  std::vector<ServicePortSpec> ports;
  bool affinityClientIp = false;
  uint32_t affinityTimeoutSeconds = 10800;
  bool externalTrafficLocal = false;
  bool internalTrafficLocal = false;
  std::vector<EndpointSpec> endpoints;
  bool operator==(const ServiceSpec&) const = default;

  std::string key() const { return namespaceName + "/" + name; }
  // No address to balance on: only DNS knows it (headless, ExternalName).
  bool dnsOnly() const {
    return clusterIps.empty() && externalIps.empty() && loadBalancerIps.empty();
  }
};

// (containerId, interface) identifies an attachment, as CNI does.
struct PodKey {
  std::string containerId;
  std::string interface;
  auto operator<=>(const PodKey&) const = default;
};

// The node's whole desired state, as the agent computes it from cluster state (op `apply`).
// A section that is absent is left as it is; a present one replaces what the node has (mark and
// sweep: what it does not list is removed).
struct DesiredState {
  uint64_t generation = 0;  // the agent's, echoed by status; 0: not given
  std::optional<std::vector<NodeSpec>> nodes;
  std::optional<std::vector<ServiceSpec>> services;
  std::optional<policy::PolicyState> policy;
  // Exported services (MCS ServiceExport), namespace/name; replaces the exports when given.
  std::optional<std::vector<std::string>> exports;
};

// What an apply changed.
struct ApplyResult {
  uint64_t generation = 0;  // the agent's generation now in force
  uint64_t snapshot = 0;    // the data plane snapshot generation
  bool nodesChanged = false, servicesChanged = false, policyChanged = false, exportsChanged = false;
};

}  // namespace nodeplane::control
