#include "control/snapshot_assembly.h"

#include <algorithm>

#include "control/uplink_guard.h"
#include "core/ether.h"
#include "overlay/vxlan.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

Result<std::shared_ptr<const overlay::OverlayTable>> buildOverlay(const NodeModel& model,
                                                                  const AssemblyInputs& in) {
  const NodeSettings& settings = in.settings;
  overlay::OverlaySettings o;
  o.localIp = settings.nodeIp;
  o.udpPort = settings.vxlanPort;
  o.vni = settings.vni;
  o.vtepMac = vtepMacOf(settings);
  o.uplinkPort = model.uplink->id;
  o.uplinkMac = model.uplink->mac;
  o.mtu = settings.mtu;
  o.txIpChecksumOffload = model.uplink->txIpv4ChecksumOffload;
  std::vector<overlay::RemoteNodeSpec> remotes;
  for (const auto& [name, n] : *model.nodes) {
    if (name == settings.nodeName) continue;
    overlay::RemoteNodeSpec r;
    r.ip = n.ip;
    r.vtepMac = n.vtepMac ? *n.vtepMac : fromEther(overlay::defaultVtepMac(n.ip.value));
    r.nextHop = underlayNextHop(settings, n.ip);
    r.nextHopMac = in.resolver.mac(r.nextHop);
    remotes.push_back(r);
  }
  std::optional<overlay::GatewaySpec> gateway;
  if (settings.underlayGateway)
    gateway =
        overlay::GatewaySpec{*settings.underlayGateway, in.resolver.mac(*settings.underlayGateway)};
  return overlay::OverlayTable::build(o, remotes, gateway, in.socketId);
}

Result<std::shared_ptr<const dp::RouteTable>> buildRoutes(const NodeModel& model,
                                                          const AssemblyInputs& in) {
  const NodeSettings& settings = in.settings;
  dp::RouteTableBuilder routes;
  // This node's pod CIDR without a pod behind an address: dropped as an unknown pod.
  dp::NextHop unknownPod;
  unknownPod.drop = DropReason::kPodUnknown;
  routes.addRoute(settings.podCidr, routes.addNextHop(unknownPod));
  dp::NextHop gateway;
  gateway.kind = dp::NextHopKind::kGateway;
  routes.addRoute(Ipv4Prefix{settings.gatewayIp, 32}, routes.addNextHop(gateway));
  for (const auto& cidr : {settings.serviceCidr, settings.clustersetCidr})
    if (cidr) {  // a service address no service answers on
      dp::NextHop unknown;
      unknown.drop = DropReason::kServiceUnknown;
      routes.addRoute(*cidr, routes.addNextHop(unknown));
    }
  if (model.uplink && settings.underlayGateway) {  // out of the cluster (masqueraded)
    dp::NextHop out;
    out.kind = dp::NextHopKind::kUplink;
    out.drop = DropReason::kNone;
    routes.addRoute(Ipv4Prefix{Ipv4Address{0}, 0}, routes.addNextHop(out));
  }
  for (const auto& [key, pod] : *model.pods) {
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kLocalPod;
    nh.drop = DropReason::kNone;
    nh.port = pod.port.id;
    nh.dstMac = toEther(pod.spec.mac);
    nh.srcMac = toEther(pod.port.mac);
    routes.addRoute(Ipv4Prefix{pod.spec.ip, 32}, routes.addNextHop(nh));
  }
  if (model.host) {  // the node's own address: its kernel, through the host path
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kHost;
    nh.drop = DropReason::kNone;
    nh.port = model.host->port.id;
    nh.dstMac = toEther(model.host->kernelMac);
    nh.srcMac = toEther(model.host->port.mac);
    routes.addRoute(Ipv4Prefix{settings.nodeIp, 32}, routes.addNextHop(nh));
  }
  // Remote nodes, indexed as buildOverlay() lays them out (map order, ourselves skipped).
  uint32_t index = 0;
  const std::string gatewayNode = activeGateway(model, settings);
  std::optional<uint32_t> gatewayIndex;
  for (const auto& [name, n] : *model.nodes) {
    if (name == settings.nodeName) continue;
    if (name == gatewayNode) gatewayIndex = index;
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kRemoteNode;
    nh.drop = DropReason::kNone;
    nh.remoteNode = index++;
    const uint32_t nhIndex = routes.addNextHop(nh);
    for (const Ipv4Prefix& c : n.podCidrs) routes.addRoute(c, nhIndex);
    // With a host path, the other node's address goes through the overlay to its host path too,
    // so that its kernel (kubelet, API server) and ours see pods and nodes unmasqueraded.
    if (model.host) routes.addRoute(Ipv4Prefix{n.ip, 32}, nhIndex);
  }
  // Other clusters' prefixes: on this cluster's gateway, to their gateways (cluster_links.h; link
  // index = map order); on its other nodes, through the overlay to the gateway.
  if (model.uplink && !model.peers->empty() && gatewayNode != settings.nodeName) {
    dp::NextHop nh;
    if (gatewayIndex) {
      nh.kind = dp::NextHopKind::kRemoteNode;
      nh.drop = DropReason::kNone;
      nh.remoteNode = *gatewayIndex;
      nh.viaClusterGateway = true;
    } else {
      nh.drop = DropReason::kClusterGatewayUnknown;
    }
    const uint32_t nhIndex = routes.addNextHop(nh);
    for (const auto& [id, peer] : *model.peers)
      for (const Ipv4Prefix& c : routedPrefixes(peer.spec)) routes.addRoute(c, nhIndex);
  } else if (model.uplink) {
    for (const LinkIndex& link : linkIndexes(*model.peers)) {
      if (link.gateway != model.peers->at(link.clusterId).spec.gateways.front()) continue;
      dp::NextHop nh;
      nh.kind = dp::NextHopKind::kRemoteCluster;
      nh.drop = DropReason::kNone;
      nh.remoteNode = activePeerLink(model, link.clusterId, link.first);
      const uint32_t nhIndex = routes.addNextHop(nh);
      for (const Ipv4Prefix& c : routedPrefixes(model.peers->at(link.clusterId).spec))
        routes.addRoute(c, nhIndex);
    }
  }
  // This cluster's global addresses are reached only through the gateway's links (their
  // translations are there); anything routed to them here goes nowhere else either.
  if (model.uplink && !model.peers->empty() && settings.globalCidr) {
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kDrop;
    nh.drop = DropReason::kGlobalAddressUnknown;
    routes.addRoute(*settings.globalCidr, routes.addNextHop(nh));
  }
  return std::move(routes).build(in.socketId);
}

dp::DataplaneSettings dataplaneSettings(const NodeModel& model, const NodeSettings& settings) {
  dp::DataplaneSettings s;
  s.podCidr = settings.podCidr.address.value;
  s.podCidrMask = settings.podCidr.mask();
  s.gatewayIp = rte_cpu_to_be_32(settings.gatewayIp.value);
  s.nodeIp = rte_cpu_to_be_32(settings.nodeIp.value);
  s.icmpErrorsPerSecond = settings.icmpErrorsPerSecond;
  if (settings.clusterCidr) {
    s.clusterCidr = settings.clusterCidr->address.value;
    s.clusterCidrMask = settings.clusterCidr->mask();
  }
  if (settings.serviceCidr) {
    s.serviceCidr = settings.serviceCidr->address.value;
    s.serviceCidrMask = settings.serviceCidr->mask();
  }
  s.masquerade = model.uplink.has_value() && settings.underlayGateway.has_value();
  s.hostPath = model.host.has_value();
  s.hostDefaultRoute = s.hostPath && settings.hostDefaultRoute;
  s.clusterPeers = model.uplink.has_value() && !model.peers->empty();
  std::tie(s.snatPortFirst, s.snatPortLast) = snatPortRange(settings);
  return s;
}

}  // namespace

std::string activeGateway(const NodeModel& model, const NodeSettings& settings) {
  const auto& listed = *model.clusterGateways;
  if (listed.empty()) return settings.nodeName;
  const std::string& chosen = model.gatewayChoice->local;
  if (!chosen.empty() && std::find(listed.begin(), listed.end(), chosen) != listed.end())
    return chosen;
  return listed.front();
}

bool isGatewayNode(const NodeModel& model, const NodeSettings& settings) {
  const auto& listed = *model.clusterGateways;
  return listed.empty() ||
         std::find(listed.begin(), listed.end(), settings.nodeName) != listed.end();
}

uint16_t activePeerLink(const NodeModel& model, const std::string& clusterId, uint16_t first) {
  auto peer = model.peers->find(clusterId);
  auto chosen = model.gatewayChoice->peers.find(clusterId);
  if (peer == model.peers->end() || chosen == model.gatewayChoice->peers.end()) return first;
  const auto& gateways = peer->second.spec.gateways;
  auto it = std::find(gateways.begin(), gateways.end(), chosen->second);
  return it == gateways.end() ? first : static_cast<uint16_t>(first + (it - gateways.begin()));
}

MacAddress vtepMacOf(const NodeSettings& settings) {
  if (settings.vtepMac) return *settings.vtepMac;
  return fromEther(overlay::defaultVtepMac(settings.nodeIp.value));
}

Ipv4Address underlayNextHop(const NodeSettings& settings, Ipv4Address endpoint) {
  const Ipv4Prefix subnet{
      Ipv4Address{settings.nodeIp.value & Ipv4Prefix{{}, settings.underlayPrefixLength}.mask()},
      settings.underlayPrefixLength};
  if (!settings.underlayGateway || subnet.contains(endpoint)) return endpoint;
  return *settings.underlayGateway;
}

Result<std::unique_ptr<dp::Snapshot>> assembleSnapshot(
    const NodeModel& model, const AssemblyInputs& in, uint64_t generation,
    std::shared_ptr<const dp::RouteTable> routes) {
  auto snap = std::make_unique<dp::Snapshot>();
  snap->generation = generation;
  snap->settings = dataplaneSettings(model, in.settings);
  snap->services = model.services;
  snap->policy = model.policy;
  snap->dns = model.dns;
  snap->workers.resize(in.workers);

  auto addPort = [&](const dp::PortInfo& port, dp::PortConfig config) {
    config.mac = toEther(port.mac);
    snap->ports[port.id] = config;
    // Queue q of a multi-queue port is polled by worker q (modulo: a port may have more RX
    // queues); single-queue ports (pod ports) are spread over the workers by id.
    const size_t workers = snap->workers.size();
    for (uint16_t q = 0; q < port.rxQueues; ++q) {
      const size_t worker = port.rxQueues == 1 ? port.id % workers : q % workers;
      snap->workers[worker].rxQueues.push_back(dp::RxQueueRef{port.id, q});
    }
  };
  for (const auto& [key, pod] : *model.pods)
    addPort(pod.port, dp::PortConfig{dp::PortRole::kPod, {}, rte_cpu_to_be_32(pod.spec.ip.value)});
  if (model.host)
    addPort(model.host->port,
            dp::PortConfig{dp::PortRole::kHost, {}, rte_cpu_to_be_32(in.settings.nodeIp.value)});
  if (model.uplink) {
    addPort(*model.uplink, dp::PortConfig{dp::PortRole::kUplink, {}, 0});
    auto overlay = buildOverlay(model, in);
    if (!overlay) return overlay.error();
    snap->overlay = std::move(*overlay);
    if (!model.peers->empty() && isGatewayNode(model, in.settings))
      snap->clusterLinks = buildClusterLinks(model.peers, in.settings, *model.uplink, in.resolver,
                                             *model.globalIngress, in.socketId);
  }
  if (!routes) {
    auto built = buildRoutes(model, in);
    if (!built) return built.error();
    routes = std::move(*built);
  }
  snap->routes = std::move(routes);
  return snap;
}

}  // namespace nodeplane::control
