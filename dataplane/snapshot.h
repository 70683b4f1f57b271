// The immutable configuration the workers read: built whole by the control thread, published with
// one release store, read by a worker once per loop iteration, reclaimed only after every worker
// has reported a quiescent state since the swap (rte_rcu_qsbr). Nothing in it changes once
// published; sub-tables are shared between consecutive snapshots when their input did not change.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/cluster_link.h"
#include "dataplane/route_table.h"
#include "dns/zone.h"
#include "lb/service_table.h"
#include "overlay/overlay_table.h"
#include "policy/policy_table.h"

struct rte_rcu_qsbr;
struct rte_rcu_qsbr_dq;

namespace nodeplane::dataplane {

// Port ids: DPDK's ethdev ids (the uplink; NFV pods attached by devargs) below kFirstPodPort,
// nodeplane's own pod ports (pod_port.h) from it. Snapshots, counters and TX buffers are indexed
// by these ids, so a node holds kMaxPodPorts pods whatever RTE_MAX_ETHPORTS is.
inline constexpr uint16_t kMaxEthPorts = RTE_MAX_ETHPORTS;
inline constexpr uint16_t kFirstPodPort = kMaxEthPorts;
inline constexpr uint16_t kMaxPodPorts = 1024;
// Links to other clusters' gateways (cluster_link.h): TX buffers only, never polled.
inline constexpr uint16_t kFirstLinkPort = kFirstPodPort + kMaxPodPorts;
inline constexpr uint16_t kMaxClusterLinks = 16;
inline constexpr uint16_t kMaxPorts = kMaxEthPorts + kMaxPodPorts + kMaxClusterLinks;
inline constexpr bool isPodPort(uint16_t port) {
  return port >= kFirstPodPort && port < kFirstLinkPort;
}
inline constexpr bool isLinkPort(uint16_t port) {
  return port >= kFirstLinkPort;
}

// kHost: the node's own kernel, through a veth pair nodeplane made (control/host_path.h).
enum class PortRole : uint8_t { kUnused, kPod, kUplink, kHost };

struct PortConfig {
  PortRole role = PortRole::kUnused;
  rte_ether_addr mac{};  // this port's MAC: the pods' gateway MAC, our source MAC
  rte_be32_t podIp = 0;  // kPod: the only source address accepted from this port (kHost: nodeIp)
};

struct RxQueueRef {
  uint16_t port;
  uint16_t queue;
};

struct WorkerPlan {
  std::vector<RxQueueRef> rxQueues;  // polled in order, every loop iteration
};

struct DataplaneSettings {
  uint32_t podCidr = 0;  // this node's pod CIDR (host order), and its mask
  uint32_t podCidrMask = 0;
  rte_be32_t gatewayIp = 0;  // the pods' link-local default gateway
  rte_be32_t nodeIp = 0;     // source address of ICMP errors we generate; masquerade address
  uint32_t clusterCidr = 0, clusterCidrMask = 0;  // host order; mask 0: not configured
  uint32_t serviceCidr = 0, serviceCidrMask = 0;
  bool masquerade = false;  // pod traffic leaving the cluster is SNATed to nodeIp
  bool hostPath = false;    // a host port exists: nodeIp is routed to it
  // The node's kernel has no way out but the host path (model.h NodeSettings): what the uplink
  // brings for nodeIp goes to the host port, and the host's traffic out of the cluster leaves by
  // the uplink.
  bool hostDefaultRoute = false;
  bool clusterPeers = false;  // other clusters' prefixes are routed (here or via the gateway)
  uint16_t snatPortFirst = 32768, snatPortLast = 60999;  // lb/snat_ports.h
  uint32_t icmpErrorsPerSecond = 1000;                   // per worker; token bucket refill rate
  uint32_t icmpErrorBurst = 50;                          // per worker; token bucket depth
};

// The cluster DNS responder's inputs (dataplane/dns_stage.h): the zone, and the addresses queries
// to it come to (the kube-dns Service's ClusterIPs, --cluster-dns).
struct DnsTable {
  dns::Zone zone;
  std::shared_ptr<const dns::Zone> clusterset;  // the clusterset domain's; null: none
  std::vector<rte_be32_t> servers;
  // Whether the kube-dns Service has a ready backend on UDP / TCP 53 (an upstream such as
  // CoreDNS or unbound). Without one the workers refuse what they do not answer (UDP), and
  // answer TCP themselves, statelessly.
  bool udpUpstream = false;
  bool tcpUpstream = false;
  // Whom NetworkPolicy sees a query reach (an egress-isolated pod must be allowed to reach the
  // cluster DNS to be answered): the kube-dns Service's first ready endpoint and its port, else
  // the DNS address itself on port 53.
  rte_be32_t policyServer = 0;
  rte_be16_t policyServerPortUdp = 0, policyServerPortTcp = 0;
};

struct Snapshot {
  uint64_t generation = 0;
  DataplaneSettings settings;
  std::array<PortConfig, kMaxPorts> ports{};
  std::shared_ptr<const RouteTable> routes;
  std::shared_ptr<const overlay::OverlayTable> overlay;  // null without an uplink
  std::shared_ptr<const lb::ServiceTable> services;      // null: no services
  // null: no policy applied yet (pod flows are not tracked); else every pod flow of this node is
  // tracked and carries its verdict.
  std::shared_ptr<const policy::PolicyTable> policy;
  std::shared_ptr<const DnsTable> dns;                   // null: the responder is off
  std::shared_ptr<const ClusterLinkTable> clusterLinks;  // null: no peer cluster
  std::vector<WorkerPlan> workers;                       // one per worker, by worker index
};

// Publishes snapshots to the workers and reclaims old ones after their grace period.
// publish(), synchronize() and reclaim() run on the control thread only; current() on workers.
class SnapshotPublisher {
 public:
  // `qsbr` must have every worker registered under its worker index.
  explicit SnapshotPublisher(rte_rcu_qsbr* qsbr);
  ~SnapshotPublisher();
  SnapshotPublisher(const SnapshotPublisher&) = delete;
  SnapshotPublisher& operator=(const SnapshotPublisher&) = delete;

  const Snapshot* current() const { return current_.load(std::memory_order_acquire); }

  // Makes `next` current. The previous snapshot is freed once all workers have passed a
  // quiescent point (asynchronously, from reclaim() or a later publish()).
  void publish(std::unique_ptr<Snapshot> next);
  // Blocks the caller until every worker has passed a quiescent point after this call: after it
  // returns no worker can still use anything only an older snapshot referenced.
  void synchronize();
  // Frees old snapshots whose grace period has ended; cheap when there are none.
  void reclaim();

 private:
  static void freeSnapshots(void* self, void* entries, unsigned count);

  rte_rcu_qsbr* qsbr_;
  rte_rcu_qsbr_dq* deferQueue_ = nullptr;
  std::atomic<const Snapshot*> current_{nullptr};
};

}  // namespace nodeplane::dataplane
