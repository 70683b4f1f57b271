// The routing decision for a (post-NAT) IPv4 destination: DPDK rte_fib (DIR-24-8, 2-byte next
// hops) mapping prefixes to indices into a next-hop array. Built whole on the control thread,
// immutable afterwards, shared by snapshots until the routes change, freed after a grace period.
#pragma once

#include <rte_ether.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/drop_reason.h"
#include "core/ipv4.h"
#include "core/result.h"

struct rte_fib;

namespace nodeplane::dataplane {

enum class NextHopKind : uint8_t {
  kDrop,           // no usable route: dropped with NextHop::drop
  kLocalPod,       // a pod on this node: rewrite MACs, send on its port
  kGateway,        // the pods' link-local gateway address (answered by the data plane)
  kRemoteNode,     // a pod CIDR of another node: VXLAN to it (remoteNode: index in the overlay)
  kUplink,         // out of the cluster: to the underlay gateway on the uplink
  kHost,           // the node's own address: to the node's kernel on the host port (like kLocalPod)
  kRemoteCluster,  // another cluster's prefix: sealed to its gateway (remoteNode: link index)
};

struct NextHop {
  NextHopKind kind = NextHopKind::kDrop;
  DropReason drop = DropReason::kNoRoute;
  uint16_t port = 0;        // output port (kLocalPod)
  rte_ether_addr dstMac{};  // destination MAC (the pod's interface)
  rte_ether_addr srcMac{};  // source MAC (our port's MAC)
  uint32_t remoteNode = 0;  // kRemoteNode: index into the snapshot's overlay table
  // kRemoteNode: that node is this cluster's gateway and the prefix another cluster's (the source
  // is kept: the gateway translates, if anything).
  bool viaClusterGateway = false;
};

class RouteTable {
 public:
  static constexpr uint32_t kMaxNextHops = 32767;  // 2-byte next hops, one bit reserved by fib
  static constexpr uint32_t kNoRouteIndex = 0;

  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // Bulk lookup; ips in host byte order. Never fails for n <= the burst size.
  void lookup(const uint32_t* ips, uint64_t* nextHopIndex, unsigned n) const;
  const NextHop& nextHop(uint64_t index) const { return nextHops_[index]; }
  size_t routeCount() const { return routeCount_; }
  size_t nextHopCount() const { return nextHops_.size(); }

 private:
  friend class RouteTableBuilder;
  RouteTable() = default;

  rte_fib* fib_ = nullptr;
  std::vector<NextHop> nextHops_;  // index 0: no route
  size_t routeCount_ = 0;
};

// Collects routes, then builds the fib in one go. Runs on the control thread only.
class RouteTableBuilder {
 public:
  RouteTableBuilder();
  // Adds a next hop and returns its index (for several prefixes sharing one next hop).
  uint32_t addNextHop(const NextHop& nh);
  void addRoute(Ipv4Prefix prefix, uint32_t nextHopIndex);
  Result<std::shared_ptr<const RouteTable>> build(int socketId) &&;

 private:
  struct Route {
    Ipv4Prefix prefix;
    uint32_t nextHop;
  };
  std::vector<NextHop> nextHops_;
  std::vector<Route> routes_;
};

}  // namespace nodeplane::dataplane
