#include "control/node_controller.h"

#include <net/if.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

#include "control/dns_zone.h"
#include "control/heartbeat.h"
#include "core/names.h"
#include "lb/conntrack.h"
#include "overlay/vxlan.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

// Ethernet header and one 802.1Q tag on top of the largest IP packet (a pod's MTU is at most the
// uplink's).
constexpr uint32_t kPodFrameOverhead = 18;

}  // namespace

NodeController::NodeController(NodeSettings settings, dp::DataplaneBackend& backend)
    : settings_(std::move(settings)),
      backend_(backend),
      interfaceExists_([](const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }),
      stateFile_(settings_.stateFile, settings_.nodeName),
      resolver_(backend),
      keys_(settings_, settings_.stateFile.empty()
                           ? std::string()
                           : (std::filesystem::path(settings_.stateFile).parent_path() /
                              ("esp-generation-" + settings_.nodeName))
                                 .string()),
      health_({std::chrono::milliseconds(settings_.heartbeatIntervalMs),
               std::chrono::milliseconds(settings_.gatewayDeadMs)}) {
  services_.setCounters(std::make_shared<lb::BackendCounters>(backend_.workerCount(),
                                                              lb::BackendCounters::kDefaultSlots));
  resolver_.setHeartbeatHandler(
      [this](rte_mbuf* m, uint32_t aux) { handleHeartbeat(m, aux, ClusterHealth::Clock::now()); });
  resolver_.setEspUnknownSpiHandler(
      [this](rte_mbuf* m, uint32_t link) { learnEspGeneration(m, link); });
}

void NodeController::handleHeartbeat(rte_mbuf* m, uint32_t aux, ClusterHealth::TimePoint now) {
  auto received = readHeartbeatFrame(m);
  rte_pktmbuf_free(m);
  if (!received) {
    backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
    return;
  }
  const std::string& sender =
      received->heartbeat ? received->heartbeat->clusterId : received->announcement->clusterId;
  if (aux == dp::kHeartbeatFromUnderlay && received->announcement) {
    // An import relayed by this cluster's active gateway (known by its address).
    auto gateway = model_.nodes->find(activeGateway(model_, settings_));
    if (gateway == model_.nodes->end() || gateway->second.ip != received->from ||
        sender == settings_.clusterId)
      return backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
    const ExportAnnouncement& a = *received->announcement;
    if (a.withdrawn ? imports_.withdraw(a.clusterId, a.namespaceName + "/" + a.name)
                    : imports_.announce(a, now))
      clustersetDirty_ = true;
    return;
  }
  if (aux == dp::kHeartbeatFromUnderlay) {
    // From a gateway node of this cluster, known by its address.
    if (!received->heartbeat || sender != settings_.clusterId)
      return backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
    for (const auto& [name, n] : *model_.nodes)
      if (n.ip == received->from)
        return health_.heardNode(name, received->heartbeat->sequence, now);
    return backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
  }
  // From a peer's gateway: the link it was opened on says which (its SAs are that gateway's).
  const auto links = linkIndexes(*model_.peers);
  if (aux >= links.size() || sender != links[aux].clusterId)
    return backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
  if (received->heartbeat)
    return health_.heardPeer(links[aux].clusterId, links[aux].gateway,
                             received->heartbeat->sequence, now);
  if (received->announcement->withdrawn)
    return backend_.controlCounters().drop(DropReason::kHeartbeatMalformed);
  if (imports_.announce(*received->announcement, now)) clustersetDirty_ = true;
}

void NodeController::relayToNodes(const ExportAnnouncement& a) {
  sendToNodes(encodeAnnouncement(a), backend_.controlCounters().announcementsSent);
}

void NodeController::relayImports() {
  for (const auto& [service, clusters] : imports_.services()) {
    const auto slash = service.find('/');
    for (const auto& [cluster, imported] : clusters) {
      ExportAnnouncement a;
      a.clusterId = cluster;
      a.namespaceName = service.substr(0, slash);
      a.name = service.substr(slash + 1);
      a.address = imported.address;
      a.ports = imported.ports;
      a.headless = imported.headless;
      a.endpoints = imported.endpoints;
      relayToNodes(a);
    }
  }
}

void NodeController::sendAnnouncements() {
  if (!model_.uplink || current_ == nullptr || !current_->clusterLinks) return;
  const auto links = linkIndexes(*model_.peers);
  const auto& services = services_.services();
  for (const auto& [key, globalIp] : exports_) {
    auto it = services.find(key);
    if (it == services.end() || !it->second.externalName.empty()) continue;
    ExportAnnouncement a;
    a.clusterId = settings_.clusterId;
    a.namespaceName = it->second.namespaceName;
    a.name = it->second.name;
    a.headless = it->second.clusterIps.empty();
    if (!a.headless) {
      a.address = globalIp.value != 0 ? globalIp : it->second.clusterIps.front();
    } else if (settings_.globalCidr) {  // the endpoints at their global addresses
      for (const GlobalIngress& g : *model_.globalIngress)
        if (g.endpoint && g.service == key)
          a.endpoints.push_back({g.globalIp, isDnsLabel(g.hostname) ? g.hostname : ""});
    } else {  // at their own (the clusters' CIDRs do not overlap)
      for (const EndpointSpec& e : it->second.endpoints)
        if (e.ready) a.endpoints.push_back({e.ip, isDnsLabel(e.hostname) ? e.hostname : ""});
    }
    if (a.endpoints.size() > kMaxAnnouncedEndpoints) a.endpoints.resize(kMaxAnnouncedEndpoints);
    for (const ServicePortSpec& p : it->second.ports) {
      if (a.ports.size() == kMaxAnnouncedPorts) break;
      a.ports.push_back({p.name.size() <= 15 ? p.name : "", p.protocol, p.port});
    }
    std::vector<uint8_t> payload = encodeAnnouncement(a);
    while (payload.empty() && !a.endpoints.empty()) {  // one datagram's worth of endpoints
      a.endpoints.pop_back();
      payload = encodeAnnouncement(a);
    }
    if (payload.empty()) continue;
    for (size_t i = 0; i < links.size() && i < current_->clusterLinks->links.size(); ++i) {
      rte_mbuf* f = clusterMessageFrame(backend_.mempool(), model_.uplink->mac, model_.uplink->mac,
                                        settings_.nodeIp, links[i].gateway, payload);
      if (f == nullptr) return;
      if (!backend_.inject(static_cast<uint16_t>(dp::kFirstLinkPort + i), f))
        rte_pktmbuf_free(f);
      else
        backend_.controlCounters().announcementsSent.add();
    }
  }
}

void NodeController::syncClusterset() {
  clustersetDirty_ = false;
  if (!settings_.clustersetCidr) return;
  ServiceRegistry::Services own;
  ServiceRegistry::Changes changes;
  for (const auto& [key, s] : services_.services())
    if (isClustersetKey(key))
      changes[key] = std::nullopt;  // unless still wanted (below)
    else
      own.emplace(key, s);
  for (auto& [key, s] :
       clustersetServices(own, exports_, imports_, *settings_.clustersetCidr, clustersetVips_)) {
    auto it = services_.services().find(key);
    if (it != services_.services().end() && it->second == s)
      changes.erase(key);
    else
      changes[key] = std::move(s);
  }
  if (changes.empty()) return;
  if (auto st = applyServices(std::move(changes)); !st) {
    spdlog::error("clusterset services: {}", st.error().message);
    clustersetDirty_ = true;
  }
}

void NodeController::sendHeartbeats() {
  if (!model_.uplink) return;
  Heartbeat hb;
  hb.clusterId = settings_.clusterId;
  hb.sequence = ++heartbeatSequence_;
  hb.active = activeGateway(model_, settings_) == settings_.nodeName;
  // To every gateway of every peer, through its link (sealed there with that gateway's SAs).
  if (isGatewayNode(model_, settings_) && current_ != nullptr && current_->clusterLinks) {
    const auto links = linkIndexes(*model_.peers);
    for (size_t i = 0; i < links.size() && i < current_->clusterLinks->links.size(); ++i) {
      rte_mbuf* m = heartbeatFrame(backend_.mempool(), model_.uplink->mac, model_.uplink->mac,
                                   settings_.nodeIp, links[i].gateway, hb);
      if (m == nullptr) return;
      if (!backend_.inject(static_cast<uint16_t>(dp::kFirstLinkPort + i), m))
        rte_pktmbuf_free(m);
      else
        backend_.controlCounters().heartbeatsSent.add();
    }
    // A generation about to be sealed with: first the peer gateway learns it from heartbeats.
    for (size_t i = 0; i < links.size(); ++i) {
      const GatewaySas* g = nullptr;
      if (auto it = model_.peers->find(links[i].clusterId); it != model_.peers->end())
        if (i - links[i].first < it->second.gateways.size())
          g = &it->second.gateways[i - links[i].first];
      if (g != nullptr && g->pending && g->pending->control)
        sendSealedHeartbeat(i, links[i].gateway, *g->pending->control);
    }
  }
  // A listed gateway node tells the other nodes of its cluster that it is alive.
  const auto& listed = *model_.clusterGateways;
  if (std::find(listed.begin(), listed.end(), settings_.nodeName) != listed.end())
    sendToNodes(encodeHeartbeat(hb), backend_.controlCounters().heartbeatsSent);
}

void NodeController::sendSealedHeartbeat(size_t link, Ipv4Address gateway, overlay::EspSa& sa) {
  if (current_ == nullptr || !current_->clusterLinks ||
      link >= current_->clusterLinks->links.size())
    return;
  const dp::ClusterLink& l = current_->clusterLinks->links[link];
  if (!l.resolved) return;
  Heartbeat hb;
  hb.clusterId = settings_.clusterId;
  hb.sequence = ++heartbeatSequence_;
  hb.active = activeGateway(model_, settings_) == settings_.nodeName;
  rte_mbuf* m = heartbeatFrame(backend_.mempool(), model_.uplink->mac, model_.uplink->mac,
                               settings_.nodeIp, gateway, hb);
  if (m == nullptr) return;
  if (sa.process(&m, 1) != 1) {
    rte_pktmbuf_free(m);
    return;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = l.dstMac;
  eth->src_addr = l.srcMac;
  if (!backend_.inject(l.uplinkPort, m))
    rte_pktmbuf_free(m);
  else
    backend_.controlCounters().heartbeatsSent.add();
}

void NodeController::serviceClusterKeys() {
  const auto now = ClusterKeys::SteadyTime::clock::now();
  if (!keys_.due(*model_.peers, now)) return;
  PeerMap peers = *model_.peers;
  const uint64_t started = keys_.started();
  if (!keys_.rekey(peers, espDevice_, backend_.workerCount(), now, unixSeconds())) return;
  NodeModel next = model_;
  next.peers = std::make_shared<const PeerMap>(std::move(peers));
  if (auto st = publish(std::move(next)); !st) {
    spdlog::error("rekeying cluster links: {}", st.error().message);
    return;
  }
  backend_.controlCounters().espGenerationsStarted.add(keys_.started() - started);
}

void NodeController::learnEspGeneration(rte_mbuf* m, uint32_t link) {
  PeerMap peers = *model_.peers;
  DropReason refused = DropReason::kEspGenerationRefused;
  const bool learned = link <= UINT16_MAX &&
                       keys_.learn(peers, static_cast<uint16_t>(link), m, backend_.mempool(),
                                   espDevice_, backend_.workerCount(), unixSeconds(), &refused);
  rte_pktmbuf_free(m);  // the packet itself is not delivered: it only taught the generation
  if (!learned) return backend_.controlCounters().drop(refused);
  NodeModel next = model_;
  next.peers = std::make_shared<const PeerMap>(std::move(peers));
  if (auto st = publish(std::move(next)); !st) {
    spdlog::error("installing a learned ESP generation: {}", st.error().message);
    return;
  }
  backend_.controlCounters().espGenerationsLearned.add();
}

void NodeController::sendToNodes(const std::vector<uint8_t>& payload, Counter& sent) {
  if (payload.empty() || !model_.uplink) return;
  for (const auto& [name, n] : *model_.nodes) {
    if (name == settings_.nodeName) continue;
    auto mac = resolver_.mac(nextHopFor(n.ip));
    if (!mac) continue;  // not resolved yet (the overlay asks for it)
    rte_mbuf* m = clusterMessageFrame(backend_.mempool(), model_.uplink->mac, *mac,
                                      settings_.nodeIp, n.ip, payload);
    if (m == nullptr) return;
    if (!backend_.inject(model_.uplink->id, m))
      rte_pktmbuf_free(m);
    else
      sent.add();
  }
}

void NodeController::serviceClusterHealth(ClusterHealth::TimePoint now) {
  if (clustersetDirty_) syncClusterset();
  if (model_.peers->empty()) return;
  if (health_.sendDue(now)) {
    serviceClusterKeys();
    sendHeartbeats();
    // Exports every tenth heartbeat (every second by default), from the active gateway.
    if (++announceTick_ % kHeartbeatsPerAnnouncement == 0 &&
        activeGateway(model_, settings_) == settings_.nodeName) {
      sendAnnouncements();
      relayImports();  // what this cluster's other nodes cannot hear themselves
    }
  }
  // Imports not announced for three announcements and a half, or (on a gateway, which hears
  // the peers) of a cluster with no gateway alive, are forgotten; the active gateway tells its
  // cluster's other nodes at once.
  std::set<std::string> alive;
  const bool gateway = isGatewayNode(model_, settings_);
  for (const auto& [id, peer] : *model_.peers)
    for (const Ipv4Address& g : peer.spec.gateways)
      if (!gateway || health_.peer(id, g, now).alive) alive.insert(id);
  const auto expiry = health_.timers().interval * (kHeartbeatsPerAnnouncement * 7 / 2);
  const auto forgotten = imports_.expire(now - expiry, alive);
  if (!forgotten.empty()) {
    clustersetDirty_ = true;
    if (activeGateway(model_, settings_) == settings_.nodeName)
      for (const auto& [cluster, service] : forgotten) {
        ExportAnnouncement a;
        a.clusterId = cluster;
        a.namespaceName = service.substr(0, service.find('/'));
        a.name = service.substr(service.find('/') + 1);
        a.withdrawn = true;
        relayToNodes(a);
      }
  }
  auto choice = std::make_shared<const GatewayChoice>(
      health_.choose(*model_.peers, *model_.clusterGateways, settings_.nodeName, now));
  if (*choice == *model_.gatewayChoice) return;
  const std::string before = activeGateway(model_, settings_);
  NodeModel next = model_;
  next.gatewayChoice = choice;
  if (auto st = publish(std::move(next)); !st) {
    spdlog::error("gateway failover: {}", st.error().message);
    return;
  }
  const std::string after = activeGateway(model_, settings_);
  if (after != before) spdlog::warn("this cluster's active gateway: {} (was {})", after, before);
  for (const auto& [id, g] : choice->peers)
    spdlog::info("cluster peer {}: gateway in use {}", id, g.toString());
}

MacAddress NodeController::vtepMac() const {
  return vtepMacOf(settings_);
}

Ipv4Address NodeController::nextHopFor(Ipv4Address endpoint) const {
  return underlayNextHop(settings_, endpoint);
}

Status NodeController::publish(NodeModel next) {
  // The route table depends on the pods, the nodes, the peer clusters and the uplink only:
  // unchanged objects, the same table.
  const bool sameRoutes = routes_ && next.pods == model_.pods && next.nodes == model_.nodes &&
                          next.peers == model_.peers &&
                          next.clusterGateways == model_.clusterGateways &&
                          next.gatewayChoice == model_.gatewayChoice &&
                          next.uplink.has_value() == model_.uplink.has_value();
  const AssemblyInputs inputs{settings_, backend_.workerCount(), backend_.socketId(), resolver_};
  auto snap = assembleSnapshot(next, inputs, generation_ + 1, sameRoutes ? routes_ : nullptr);
  if (!snap) return snap.error();
  routes_ = (*snap)->routes;
  current_ = snap->get();
  model_ = std::move(next);
  backend_.publish(std::move(*snap));
  ++generation_;
  return okStatus();
}

Status NodeController::setClusterPeer(const ClusterPeerSpec& spec) {
  if (!model_.uplink)
    return invalidArgument("cluster peer '" + spec.clusterId + "': this node has no uplink");
  if (auto st = validatePeer(spec, settings_, *model_.peers); !st) return st;
  if (!espDevice_ && spec.tunnel == ClusterPeerSpec::Tunnel::kEsp) {
    auto device = overlay::EspDevice::open(backend_.socketId());
    if (!device) return device.error();
    espDevice_ = std::move(*device);
  }
  if (spec.tunnel == ClusterPeerSpec::Tunnel::kEsp && backend_.workerCount() > kMaxEspWorkers)
    return invalidArgument("cluster peer '" + spec.clusterId + "': ESP links take at most " +
                           std::to_string(kMaxEspWorkers) + " workers");
  PeerMap peers = *model_.peers;
  auto existing = peers.find(spec.clusterId);
  // Same gateway, same secret: its SAs go on; otherwise a new generation (cluster_keys.h).
  const uint64_t started = keys_.started();
  auto peer = keys_.peerFor(spec, existing != peers.end() ? &existing->second : nullptr, espDevice_,
                            backend_.workerCount(), unixSeconds());
  if (!peer) return peer.error();
  peers[spec.clusterId] = std::move(*peer);
  NodeModel next = model_;
  next.peers = std::make_shared<const PeerMap>(std::move(peers));
  if (auto st = publish(std::move(next)); !st) return st;
  updateWantedNeighbors();
  health_.watch(*model_.peers, *model_.clusterGateways, ClusterHealth::Clock::now());
  backend_.controlCounters().espGenerationsStarted.add(keys_.started() - started);
  spdlog::info("cluster peer {} set: {} gateway(s), {} prefix(es), {} new SA generation(s)",
               spec.clusterId, spec.gateways.size(), spec.cidrs.size(), keys_.started() - started);
  return okStatus();
}

Status NodeController::setClusterGateways(std::vector<std::string> nodes) {
  std::set<std::string> seen;
  for (const std::string& n : nodes) {
    if (!isDnsSubdomain(n))
      return invalidArgument("cluster gateways: nodes: '" + n + "' is not a node name");
    if (!seen.insert(n).second)
      return invalidArgument("cluster gateways: nodes: '" + n + "' is given twice");
  }
  if (nodes.size() > 8) return invalidArgument("cluster gateways: nodes: more than 8");
  if (nodes == *model_.clusterGateways) return okStatus();
  NodeModel next = model_;
  next.clusterGateways = std::make_shared<const std::vector<std::string>>(std::move(nodes));
  if (auto st = publish(std::move(next)); !st) return st;
  updateWantedNeighbors();
  health_.watch(*model_.peers, *model_.clusterGateways, ClusterHealth::Clock::now());
  spdlog::info("cluster gateways set: active {}", activeGateway(model_, settings_));
  return okStatus();
}

Status NodeController::deleteClusterPeer(const std::string& clusterId) {
  if (!model_.peers->count(clusterId))
    return makeError(ErrorCode::kNotFound, "no cluster peer '" + clusterId + "'");
  PeerMap peers = *model_.peers;
  peers.erase(clusterId);
  NodeModel next = model_;
  next.peers = std::make_shared<const PeerMap>(std::move(peers));
  if (auto st = publish(std::move(next)); !st) return st;
  updateWantedNeighbors();
  health_.watch(*model_.peers, *model_.clusterGateways, ClusterHealth::Clock::now());
  spdlog::info("cluster peer {} removed", clusterId);
  return okStatus();
}

std::shared_ptr<const GlobalIngressList> NodeController::globalIngressFor(
    const ServiceRegistry::Services& services) const {
  if (exports_.empty() && model_.globalIngress->empty()) return model_.globalIngress;
  auto list = resolveGlobalIngress(exports_, services, settings_, *model_.globalIngress);
  if (list == *model_.globalIngress) return model_.globalIngress;
  return std::make_shared<const GlobalIngressList>(std::move(list));
}

Result<Ipv4Address> NodeController::exportService(const std::string& service,
                                                  std::optional<Ipv4Address> globalIp) {
  auto ip = exportAddress(service, globalIp, settings_, exports_, *model_.globalIngress);
  if (!ip) return ip.error();
  ExportMap before = exports_;
  exports_[service] = *ip;
  NodeModel next = model_;
  next.globalIngress = globalIngressFor(services_.services());
  if (auto st = publish(std::move(next)); !st) {
    exports_ = std::move(before);
    return st.error();
  }
  clustersetDirty_ = true;
  spdlog::info("service {} exported{} ({})", service,
               ip->value ? " at global address " + ip->toString() : "",
               exportState(service, services_.services(), settings_));
  return *ip;
}

Status NodeController::unexportService(const std::string& service) {
  auto it = exports_.find(service);
  if (it == exports_.end())
    return makeError(ErrorCode::kNotFound, "service " + service + " is not exported");
  const Ipv4Address ip = it->second;
  exports_.erase(it);
  NodeModel next = model_;
  next.globalIngress = globalIngressFor(services_.services());
  if (auto st = publish(std::move(next)); !st) {
    exports_[service] = ip;
    return st;
  }
  clustersetDirty_ = true;
  spdlog::info("service {} no longer exported", service);
  return okStatus();
}

NodeModel NodeController::withPods(PodMap pods) const {
  NodeModel next = model_;
  next.pods = std::make_shared<const PodMap>(std::move(pods));
  return next;
}

NodeModel NodeController::withNodes(NodeMap nodes) const {
  NodeModel next = model_;
  next.nodes = std::make_shared<const NodeMap>(std::move(nodes));
  return next;
}

Status NodeController::start() {
  model_.dns = buildDnsTable({}, settings_, false, 0);  // SERVFAIL until services are applied
  if (auto st = publish(model_); !st) return st;
  if (!settings_.uplinkDevargs.empty()) {
    std::string devargs = settings_.uplinkDevargs;
    // An af_packet uplink needs a socket (queue pair) per worker; fill it in when not given.
    if (devargs.rfind("net_af_packet", 0) == 0 && devargs.find("qpairs=") == std::string::npos)
      devargs += ",qpairs=" + std::to_string(backend_.workerCount());
    auto port = backend_.openPort(devargs);
    if (!port) return makeError(port.error().code, "uplink: " + port.error().message);
    NodeModel next = model_;
    next.uplink = *port;
    if (auto st = publish(std::move(next)); !st) {
      backend_.closePort(port->id);
      return st;
    }
    resolver_.setUplink(UnderlayResolver::Uplink{port->id, port->mac, settings_.nodeIp});
    updateWantedNeighbors();  // the underlay gateway, when there is one
    startUplinkGuard();
  }
  if (!settings_.hostInterface.empty())
    if (auto st = startHostPath(); !st) return st;
  restorePods();
  return okStatus();
}

void NodeController::syncNodePortRedirects() {
  if (!model_.host) return;  // without the host path a ClusterIP has no way in from the node
  auto wanted = nodePortRedirects(services_.services());
  if (nodePortRedirects_ == wanted) return;
  if (auto st = hostPathOps_.redirectNodePorts(wanted); !st) {
    spdlog::error("{}", st.error().message);
    nodePortRedirects_.reset();  // tried again on the next change
    return;
  }
  spdlog::info("NodePorts from the node: {} redirected to their ClusterIPs", wanted.size());
  nodePortRedirects_ = std::move(wanted);
}

void NodeController::startUplinkGuard() {
  if (!settings_.uplinkGuard) return;
  auto iface = sharedUplinkInterface(settings_.uplinkDevargs);
  if (!iface) return;  // not shared with the kernel
  UplinkGuardConfig guard;
  guard.interface = *iface;
  guard.nodeIp = settings_.nodeIp;
  guard.vxlanPort = settings_.vxlanPort;
  // The node address on the host path: the kernel has nothing on the uplink at all.
  guard.whole = settings_.hostDefaultRoute && !settings_.hostInterface.empty();
  const auto [snatFirst, snatLast] = snatPortRange(settings_);
  // Only ports the kernel does not use itself: guarding its ephemeral range would cut the node's
  // own connections off their replies.
  const auto kernel = kernelEphemeralPorts();
  const bool overlaps = snatFirst <= kernel.second && kernel.first <= snatLast;
  if (overlaps && !guard.whole) {
    spdlog::warn(
        "SNAT ports {}-{} overlap the kernel's ephemeral range {}-{} on the shared uplink {}: "
        "their replies are not guarded, and the kernel may reset masqueraded connections",
        snatFirst, snatLast, kernel.first, kernel.second, *iface);
  } else {
    guard.snatPortFirst = snatFirst;
    guard.snatPortLast = snatLast;
  }
  if (auto st = installUplinkGuard(guard); !st) {
    // The node still forwards; only what the kernel answers as well (NodePorts, VXLAN) is at
    // risk. Said loudly, and in npctl status.
    uplinkGuardState_ = "failed: " + st.error().message;
    spdlog::error("{}", st.error().message);
    return;
  }
  if (guard.whole) {
    uplinkGuardState_ = "installed on " + *iface + " (all of it: the host path is the node's way)";
    spdlog::info("uplink guard: nftables table netdev nodeplane keeps the kernel off {} entirely",
                 *iface);
    return;
  }
  uplinkGuardState_ = "installed on " + *iface;
  spdlog::info(
      "uplink guard: nftables table netdev nodeplane on {} keeps the kernel off VXLAN, "
      "NodePorts and masqueraded flows' replies (ports {}-{}) to {}",
      *iface, snatFirst, snatLast, settings_.nodeIp.toString());
}

HostPathConfig NodeController::hostPathConfig() const {
  HostPathConfig c;
  c.kernelInterface = settings_.hostInterface;
  // The pods' MTU: the overlay's inner MTU when there is an uplink.
  c.mtu = settings_.uplinkDevargs.empty() ? settings_.mtu : settings_.mtu - overlay::kOverhead;
  c.nodeIp = settings_.nodeIp;
  c.gatewayIp = settings_.gatewayIp;
  // The whole cluster's pods when known (other nodes' pods through the overlay), else ours.
  c.prefixes.push_back(settings_.clusterCidr ? *settings_.clusterCidr : settings_.podCidr);
  if (settings_.serviceCidr) c.prefixes.push_back(*settings_.serviceCidr);
  c.defaultRoute = settings_.hostDefaultRoute;
  return c;
}

Status NodeController::startHostPath() {
  const HostPathConfig config = hostPathConfig();
  auto links = hostPathOps_.create(config);
  if (!links) return links.error();
  auto port = backend_.openPodPort(links->ourInterface, config.mtu + kPodFrameOverhead);
  if (!port) {
    hostPathOps_.remove(config.kernelInterface);
    return makeError(port.error().code, "host path: " + port.error().message);
  }
  NodeModel next = model_;
  next.host = HostPort{*port, links->kernelMac};
  if (auto st = publish(std::move(next)); !st) {
    backend_.closePort(port->id);
    hostPathOps_.remove(config.kernelInterface);
    return st;
  }
  // Routes last: the kernel sends nothing our way before we serve the port.
  if (auto st = hostPathOps_.addRoutes(config); !st) return st;
  syncNodePortRedirects();
  spdlog::info("host path: {} (kernel) <-> {} (port {}), routes {} via {}", links->kernelInterface,
               links->ourInterface, port->id, config.prefixes.size(), config.gatewayIp.toString());
  return okStatus();
}

void NodeController::savePods() const {
  std::vector<PodAttachment> specs;
  for (const auto& [key, pod] : *model_.pods) specs.push_back(pod.spec);
  stateFile_.save(specs);
}

void NodeController::restorePods() {
  const auto saved = stateFile_.load();
  if (!saved) return;
  size_t restored = 0;
  for (const PodAttachment& spec : *saved) {
    if (!spec.hostInterface.empty() && !interfaceExists_(spec.hostInterface)) {
      spdlog::info("{}: interface {} is gone, not re-attached", describePod(spec),
                   spec.hostInterface);
      continue;
    }
    if (auto r = attachPod(spec); !r)
      spdlog::warn("re-attaching from the state file: {}", r.error().message);
    else
      ++restored;
  }
  savePods();  // drop what was not restored
  spdlog::info("state file {}: {} pod(s) re-attached", stateFile_.path(), restored);
}

size_t NodeController::detachVanishedPods() {
  std::vector<PodKey> gone;
  for (const auto& [key, pod] : *model_.pods)
    if (!pod.spec.hostInterface.empty() && !interfaceExists_(pod.spec.hostInterface))
      gone.push_back(key);
  for (const PodKey& key : gone) {
    const PodAttachment& spec = model_.pods->at(key).spec;
    spdlog::warn("{}: host interface {} disappeared without a CNI DEL: detaching",
                 describePod(spec), spec.hostInterface);
    (void)detachPod(key);
  }
  return gone.size();
}

void NodeController::shutdown() {
  std::vector<uint16_t> ports;
  for (const auto& [key, pod] : *model_.pods) ports.push_back(pod.port.id);
  if (model_.uplink) ports.push_back(model_.uplink->id);
  const bool hostPath = model_.host.has_value();
  if (hostPath) ports.push_back(model_.host->port.id);
  if (ports.empty()) return;
  NodeModel empty;
  empty.services = model_.services;
  empty.policy = model_.policy;
  if (auto st = publish(std::move(empty)); !st)
    spdlog::error("publishing the snapshot without ports: {}", st.error().message);
  backend_.synchronize();
  for (uint16_t p : ports) backend_.closePort(p);
  if (hostPath) hostPathOps_.remove(settings_.hostInterface);
  if (nodePortRedirects_) {
    hostPathOps_.removeNodePortRedirects();
    nodePortRedirects_.reset();
  }
  if (uplinkGuardState_.rfind("installed", 0) == 0) {
    removeUplinkGuard();
    uplinkGuardState_ = "removed";
  }
}

Result<AttachedPod> NodeController::attachPod(const PodAttachment& spec) {
  if (auto st = validatePod(spec, settings_); !st) return st.error();
  const PodKey key{spec.containerId, spec.interface};
  const PodMap& pods = *model_.pods;
  if (auto it = pods.find(key); it != pods.end()) {
    if (it->second.spec == spec) return it->second;  // a retried ADD: nothing to do
    return makeError(ErrorCode::kAlreadyExists,
                     describePod(spec) + ": container " + spec.containerId + " interface " +
                         spec.interface + " is already attached with different settings");
  }
  for (const auto& [k, pod] : pods) {
    if (pod.spec.ip == spec.ip)
      return makeError(ErrorCode::kAlreadyExists, describePod(spec) +
                                                      ": field 'ip': " + spec.ip.toString() +
                                                      " already used by " + describePod(pod.spec));
    if (!spec.hostInterface.empty() && pod.spec.hostInterface == spec.hostInterface)
      return makeError(ErrorCode::kAlreadyExists,
                       describePod(spec) + ": field 'hostInterface': " + spec.hostInterface +
                           " already attached for " + describePod(pod.spec));
  }

  // A veth's host end gets a pod port of our own; anything else (memif, vhost-user, pcap) is a
  // DPDK vdev named by its devargs.
  auto port = spec.devargs.empty()
                  ? backend_.openPodPort(spec.hostInterface, settings_.mtu + kPodFrameOverhead)
                  : backend_.openPort(spec.devargs);
  if (!port) return makeError(port.error().code, describePod(spec) + ": " + port.error().message);

  PodMap next = pods;
  const AttachedPod attached{spec, *port};
  next[key] = attached;
  if (auto st = publish(withPods(std::move(next))); !st) {
    backend_.closePort(port->id);  // never published: no worker can be polling it
    return makeError(st.error().code, describePod(spec) + ": " + st.error().message);
  }
  savePods();
  spdlog::info("{} attached: {} on port {} ({}), generation {}", describePod(spec),
               spec.ip.toString(), port->id, port->name, generation_);
  return attached;
}

Status NodeController::detachPod(const PodKey& key) {
  auto it = model_.pods->find(key);
  if (it == model_.pods->end())
    return makeError(ErrorCode::kNotFound, "no pod attached for container " + key.containerId +
                                               " interface " + key.interface);
  const AttachedPod gone = it->second;
  PodMap next = *model_.pods;
  next.erase(key);
  if (auto st = publish(withPods(std::move(next))); !st) return st;
  savePods();
  // No worker polls or sends to the port once every worker has passed a quiescent point.
  backend_.synchronize();
  backend_.closePort(gone.port.id);
  spdlog::info("{} detached, generation {}", describePod(gone.spec), generation_);
  return okStatus();
}

std::optional<PodKey> NodeController::findPod(const std::string& namespaceName,
                                              const std::string& name) const {
  for (const auto& [key, pod] : *model_.pods)
    if (pod.spec.namespaceName == namespaceName && pod.spec.name == name) return key;
  return std::nullopt;
}

std::vector<AttachedPod> NodeController::pods() const {
  std::vector<AttachedPod> out;
  for (const auto& [key, pod] : *model_.pods) out.push_back(pod);
  return out;
}

Status NodeController::setNode(const NodeSpec& spec) {
  const NodeMap& nodes = *model_.nodes;
  if (auto st = validateNode(spec, nodes, settings_, model_.uplink.has_value()); !st) return st;
  if (auto it = nodes.find(spec.name); it != nodes.end() && it->second == spec) return okStatus();
  NodeMap next = nodes;
  next[spec.name] = spec;
  if (auto st = publish(withNodes(std::move(next))); !st) return st;
  updateWantedNeighbors();
  spdlog::info("node {} set: {} behind {}, generation {}", spec.name,
               spec.podCidrs.empty() ? "-" : spec.podCidrs.front().toString(), spec.ip.toString(),
               generation_);
  return okStatus();
}

Status NodeController::deleteNode(const std::string& name) {
  if (!model_.nodes->count(name)) return makeError(ErrorCode::kNotFound, "no node named " + name);
  NodeMap next = *model_.nodes;
  next.erase(name);
  if (auto st = publish(withNodes(std::move(next))); !st) return st;
  updateWantedNeighbors();
  spdlog::info("node {} deleted, generation {}", name, generation_);
  return okStatus();
}

std::vector<NodeSpec> NodeController::nodes() const {
  std::vector<NodeSpec> out;
  for (const auto& [name, n] : *model_.nodes) out.push_back(n);
  return out;
}

Status NodeController::applyServices(ServiceRegistry::Changes changes,
                                     const std::set<uint32_t>& flushSlots) {
  auto prepared =
      services_.prepareChanges(std::move(changes), settings_, backend_.socketId(), flushSlots);
  if (!prepared) return prepared.error();
  NodeModel next = model_;
  next.services = prepared->table;
  ServiceRegistry::Services specs = services_.services();
  for (const auto& [key, change] : prepared->changes)
    if (change)
      specs[key] = *change;
    else
      specs.erase(key);
  next.dns = buildDnsTable(specs, settings_, true, static_cast<uint32_t>(generation_ + 1));
  next.globalIngress = globalIngressFor(specs);
  if (auto st = publish(std::move(next)); !st) return st;
  services_.commit(std::move(*prepared));
  syncNodePortRedirects();
  return okStatus();
}

namespace {

// Only the endpoints differ: no address, port or protocol changes, so no conflict is possible.
bool sameFrontend(const ServiceSpec& a, const ServiceSpec& b) {
  return a.type == b.type && a.clusterIps == b.clusterIps && a.externalIps == b.externalIps &&
         a.loadBalancerIps == b.loadBalancerIps && a.ports == b.ports;
}

}  // namespace

Status NodeController::setService(const ServiceSpec& spec) {
  auto it = services_.services().find(spec.key());
  if (it != services_.services().end() && it->second == spec) return okStatus();
  const bool frontendKept = it != services_.services().end() && sameFrontend(it->second, spec);
  if (auto st = ServiceRegistry::validate(
          spec, settings_, frontendKept ? ServiceRegistry::Services{} : services_.services());
      !st)
    return st;
  if (auto st = applyServices({{spec.key(), spec}}); !st) return st;
  clustersetDirty_ = true;
  spdlog::debug("service {} set: {} port(s), {} endpoint(s), generation {}", spec.key(),
                spec.ports.size(), spec.endpoints.size(), generation_);
  return okStatus();
}

Status NodeController::replaceServices(const std::vector<ServiceSpec>& services) {
  ServiceRegistry::Services next;
  for (const auto& s : services) {
    if (auto st = ServiceRegistry::validate(s, settings_, {}); !st) return st;
    if (!next.emplace(s.key(), s).second)
      return makeError(ErrorCode::kAlreadyExists, "service " + s.key() + " given twice");
  }
  if (auto st = ServiceRegistry::checkConflicts(next, settings_); !st) return st;
  for (const auto& [key, s] : services_.services())  // kept; brought up to date next tick
    if (isClustersetKey(key)) next.emplace(key, s);
  clustersetDirty_ = true;
  auto dns = buildDnsTable(next, settings_, true, static_cast<uint32_t>(generation_ + 1));
  auto globalIngress = globalIngressFor(next);
  auto prepared = services_.prepare(std::move(next), settings_, backend_.socketId());
  if (!prepared) return prepared.error();
  NodeModel candidate = model_;
  candidate.services = prepared->table;
  candidate.dns = std::move(dns);
  candidate.globalIngress = std::move(globalIngress);
  if (auto st = publish(std::move(candidate)); !st) return st;
  services_.commit(std::move(*prepared));
  syncNodePortRedirects();
  spdlog::info("{} services applied, generation {}", services.size(), generation_);
  return okStatus();
}

Status NodeController::setEndpoints(const std::string& ns, const std::string& name,
                                    const std::vector<EndpointSpec>& endpoints) {
  auto it = services_.services().find(ns + "/" + name);
  if (it == services_.services().end())
    return makeError(ErrorCode::kNotFound, "no service " + ns + "/" + name);
  ServiceSpec spec = it->second;
  spec.endpoints = endpoints;
  return setService(spec);
}

Status NodeController::deleteService(const std::string& ns, const std::string& name) {
  if (!services_.services().count(ns + "/" + name))
    return makeError(ErrorCode::kNotFound, "no service " + ns + "/" + name);
  if (auto st = applyServices({{ns + "/" + name, std::nullopt}}); !st) return st;
  clustersetDirty_ = true;
  spdlog::info("service {}/{} deleted, generation {}", ns, name, generation_);
  return okStatus();
}

Result<std::shared_ptr<const policy::PolicyTable>> NodeController::buildPolicyTable(
    policy::PolicyState state) {
  if (!policyRuntime_) {
    const lb::ConnTracker* ct = backend_.conntrack();
    auto runtime =
        policy::PolicyRuntime::create(backend_.workerCount(), settings_.maxPolicies,
                                      ct ? ct->shard(0).slots() : 0, backend_.socketId());
    if (!runtime) return runtime.error();
    policyRuntime_ = std::move(*runtime);
  }
  state.audit = state.audit || settings_.policyAudit;
  auto shared = std::make_shared<const policy::PolicyState>(std::move(state));
  policy::PolicyTableOptions options{backend_.workerCount(), settings_.l7FlowsPerWorker,
                                     backend_.socketId()};
  auto table = policy::PolicyTable::build(shared, settings_.podCidr, policyGeneration_ + 1,
                                          policyRuntime_, options);
  if (!table) {
    policyRuntime_->retain(policyKeysOf(model_.policy.get()));  // slots the failed build assigned
    return table.error();
  }
  return std::shared_ptr<const policy::PolicyTable>(std::move(*table));
}

void NodeController::commitPolicyTable() {
  const policy::PolicyTable& table = *model_.policy;
  policyGeneration_ = table.generation();
  policyRuntime_->retain(policyKeysOf(&table));
  const auto& c = table.compiled();
  spdlog::info(
      "policy applied: {} NetworkPolicies, {} L7 rule objects; {} classifier rules, "
      "{} pods isolated for ingress, {} for egress; policy generation {}",
      table.state().policies.size(), table.state().l7Rules.size(), c.rules.size(),
      c.isolatedIngress, c.isolatedEgress, policyGeneration_);
}

Status NodeController::applyPolicy(policy::PolicyState state) {
  auto table = buildPolicyTable(std::move(state));
  if (!table) return table.error();
  NodeModel next = model_;
  next.policy = std::move(*table);
  if (auto st = publish(std::move(next)); !st) {
    policyRuntime_->retain(policyKeysOf(model_.policy.get()));
    return st;
  }
  commitPolicyTable();
  return okStatus();
}

Result<ApplyResult> NodeController::applyDesired(DesiredState state) {
  std::vector<std::string> problems;
  auto note = [&](const Error& e) { problems.push_back(e.message); };

  // Nodes: the list replaces the table.
  NodeMap nextNodes;
  if (state.nodes) {
    for (const NodeSpec& n : *state.nodes)
      if (!nextNodes.emplace(n.name, n).second)
        note(invalidArgument("node " + n.name + ": listed twice"));
    for (const auto& [name, n] : nextNodes)
      if (auto st = validateNode(n, nextNodes, settings_, model_.uplink.has_value()); !st)
        note(st.error());
  }
  const bool nodesChanged = state.nodes && nextNodes != *model_.nodes;

  // Services: every one validated, then conflicts between them.
  ServiceRegistry::Services nextServices;
  if (state.services) {
    for (const ServiceSpec& sv : *state.services) {
      if (auto st = ServiceRegistry::validate(sv, settings_, {}); !st)
        note(st.error());
      else if (!nextServices.emplace(sv.key(), sv).second)
        note(invalidArgument("service " + sv.key() + ": listed twice"));
    }
    if (problems.empty())
      if (auto st = ServiceRegistry::checkConflicts(nextServices, settings_); !st) note(st.error());
    for (const auto& [key, s] : services_.services())  // kept; brought up to date next tick
      if (isClustersetKey(key)) nextServices.emplace(key, s);
  }
  const bool servicesChanged = state.services && nextServices != services_.services();
  if (servicesChanged) clustersetDirty_ = true;
  // The first services section makes the zone ready even when it changes nothing.
  const bool dnsChanged =
      state.services && (servicesChanged || (model_.dns && !model_.dns->zone.config().ready));

  // Policy: rebuilt only when it changed (a rebuild makes every flow be judged again and restarts
  // L7 scanning).
  const bool policyChanged = state.policy && (!model_.policy || !(model_.policy->state() == [&] {
                               policy::PolicyState p = *state.policy;
                               p.audit = p.audit || settings_.policyAudit;
                               return p;
                             }()));
  std::shared_ptr<const policy::PolicyTable> nextPolicy;
  if (policyChanged && problems.empty()) {
    auto table = buildPolicyTable(std::move(*state.policy));
    if (!table)
      note(table.error());
    else
      nextPolicy = std::move(*table);
  }
  // Exports (MCS ServiceExport): the list replaces them; each keeps its global address.
  ExportMap nextExports;
  if (state.exports) {
    for (const auto& [key, ip] : exports_)
      if (std::find(state.exports->begin(), state.exports->end(), key) != state.exports->end())
        nextExports[key] = ip;
    for (const std::string& key : *state.exports) {
      if (nextExports.count(key)) continue;
      auto ip = exportAddress(key, std::nullopt, settings_, nextExports, *model_.globalIngress);
      if (!ip)
        note(invalidArgument("serviceexport " + key + ": " + ip.error().message));
      else
        nextExports[key] = *ip;
    }
  }
  const bool exportsChanged = state.exports && nextExports != exports_;

  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
    return invalidArgument("apply: " + message);
  }

  ApplyResult result;
  result.exportsChanged = exportsChanged;
  ExportMap previousExports = exports_;
  if (exportsChanged) {
    exports_ = std::move(nextExports);
    clustersetDirty_ = true;
  }
  result.nodesChanged = nodesChanged;
  result.servicesChanged = servicesChanged;
  result.policyChanged = policyChanged;
  if (nodesChanged || servicesChanged || policyChanged || dnsChanged || exportsChanged) {
    NodeModel candidate = nodesChanged ? withNodes(std::move(nextNodes)) : model_;
    if (dnsChanged)
      candidate.dns =
          buildDnsTable(nextServices, settings_, true, static_cast<uint32_t>(generation_ + 1));
    if (exportsChanged && !servicesChanged)
      candidate.globalIngress = globalIngressFor(services_.services());
    std::optional<ServiceRegistry::Prepared> prepared;
    if (servicesChanged) {
      candidate.globalIngress = globalIngressFor(nextServices);
      auto p = services_.prepare(std::move(nextServices), settings_, backend_.socketId());
      if (!p) {
        exports_ = std::move(previousExports);
        return p.error();
      }
      prepared = std::move(*p);
      candidate.services = prepared->table;
    }
    if (policyChanged) candidate.policy = nextPolicy;
    if (auto st = publish(std::move(candidate)); !st) {
      if (policyRuntime_) policyRuntime_->retain(policyKeysOf(model_.policy.get()));
      exports_ = std::move(previousExports);
      return st.error();
    }
    if (prepared) {
      services_.commit(std::move(*prepared));
      syncNodePortRedirects();
    }
    if (nodesChanged) updateWantedNeighbors();
    if (policyChanged) commitPolicyTable();
  }
  if (state.generation != 0) appliedGeneration_ = state.generation;
  result.generation = appliedGeneration_;
  result.snapshot = generation_;
  spdlog::info("apply {}: nodes {}, services {}, policy {}, exports {}; snapshot {}",
               appliedGeneration_, nodesChanged ? "changed" : "unchanged",
               servicesChanged ? "changed" : "unchanged", policyChanged ? "changed" : "unchanged",
               exportsChanged ? "changed" : "unchanged", generation_);
  return result;
}

std::set<std::string> NodeController::policyKeysOf(const policy::PolicyTable* table) const {
  std::set<std::string> keys;
  if (table)
    for (const auto& p : table->state().policies) keys.insert(p.key());
  return keys;
}

size_t NodeController::drainPolicyLog() {
  if (!policyRuntime_) return 0;
  const size_t n = policyRuntime_->drain();
  const auto& recent = policyRuntime_->recent();
  for (size_t i = recent.size() - std::min(n, recent.size()); i < recent.size(); ++i) {
    const auto& e = recent[i];
    const auto& r = e.record;
    spdlog::info("policy {}: {} {}:{} -> {}:{}{}", policy::policyEventName(r.event),
                 policy::protocolName(r.protocol), Ipv4Address{rte_be_to_cpu_32(r.src)}.toString(),
                 rte_be_to_cpu_16(r.sport), Ipv4Address{rte_be_to_cpu_32(r.dst)}.toString(),
                 rte_be_to_cpu_16(r.dport),
                 e.policy.empty() ? "" : " (networkpolicy " + e.policy + ")");
  }
  return n;
}

Result<size_t> NodeController::flushFlows(
    const std::optional<std::string>& service,
    const std::optional<std::pair<Ipv4Address, uint16_t>>& backend) {
  std::set<uint32_t> slots;
  if (service) {
    if (!services_.services().count(*service))
      return makeError(ErrorCode::kNotFound, "no service " + *service);
    slots = services_.slotsOf(*service);
  }
  if (backend) {
    auto more = services_.slotsOf(backend->first, backend->second);
    if (more.empty())
      return makeError(ErrorCode::kNotFound, "no backend " + backend->first.toString() + ":" +
                                                 std::to_string(backend->second));
    slots.insert(more.begin(), more.end());
  }
  if (slots.empty()) return size_t{0};
  if (auto st = applyServices({}, slots); !st) return st.error();
  return slots.size();
}

void NodeController::updateWantedNeighbors() {
  std::set<Ipv4Address> wanted;
  for (const auto& [name, n] : *model_.nodes)
    if (name != settings_.nodeName) wanted.insert(nextHopFor(n.ip));
  if (model_.uplink && settings_.underlayGateway) wanted.insert(*settings_.underlayGateway);
  if (isGatewayNode(model_, settings_))
    for (const auto& [id, peer] : *model_.peers)
      for (const Ipv4Address& g : peer.spec.gateways) wanted.insert(underlayNextHop(settings_, g));
  if (resolver_.setWanted(wanted, UnderlayResolver::TimePoint::clock::now())) (void)publish(model_);
}

void NodeController::serviceSlowPath(UnderlayResolver::TimePoint now) {
  serviceClusterHealth(now);
  if (resolver_.service(now, current_)) {
    if (auto st = publish(model_); !st)
      spdlog::error("republishing encap templates: {}", st.error().message);
  }
}

}  // namespace nodeplane::control
