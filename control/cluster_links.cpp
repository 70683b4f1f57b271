#include "control/cluster_links.h"

#include <algorithm>
#include <cstring>

#include "control/snapshot_assembly.h"
#include "core/ether.h"
#include "core/names.h"
#include "overlay/vxlan.h"

namespace nodeplane::control {

namespace {

bool overlaps(const Ipv4Prefix& a, const Ipv4Prefix& b) {
  return a.contains(b.address) || b.contains(a.address);
}

}  // namespace

uint64_t spiGeneration(uint32_t spi, uint64_t now) {
  constexpr uint64_t kSpan = uint64_t{1} << 27;
  const uint64_t low = spi & (kSpan - 1);
  uint64_t g = (now & ~(kSpan - 1)) | low;
  if (g > now + kSpan / 2)
    g = g >= kSpan ? g - kSpan : g;
  else if (g + kSpan / 2 < now)
    g += kSpan;
  return g;
}

std::string saContext(const std::string& from, Ipv4Address fromGateway, const std::string& to,
                      Ipv4Address toGateway, unsigned index, uint64_t generation) {
  return from + "@" + fromGateway.toString() + "->" + to + "@" + toGateway.toString() + "/" +
         std::to_string(index) + "/g" + std::to_string(generation);
}

uint64_t OutboundSas::mostSealed() const {
  uint64_t most = control ? control->sealed() : 0;
  for (const auto& sa : byWorker) most = std::max(most, sa->sealed());
  return most;
}

namespace {

Result<std::unique_ptr<overlay::EspSa>> makeSa(overlay::EspDevice& device,
                                               const std::string& secret,
                                               const std::string& context, uint32_t spi,
                                               bool outbound, Ipv4Address local,
                                               Ipv4Address remote) {
  overlay::EspSaSpec spec;
  spec.spi = spi;
  auto key = overlay::deriveEspKey(secret, context);
  if (!key) return key.error();
  spec.key = *key;
  spec.outbound = outbound;
  spec.localAddress = local;
  spec.remoteAddress = remote;
  return overlay::EspSa::create(device, spec);
}

}  // namespace

Result<std::shared_ptr<OutboundSas>> makeOutboundSas(std::shared_ptr<overlay::EspDevice> device,
                                                     const NodeSettings& settings,
                                                     const ClusterPeerSpec& peer,
                                                     Ipv4Address gateway, uint64_t generation,
                                                     unsigned workers) {
  if (device == nullptr || workers > kMaxEspWorkers)
    return invalidArgument("ESP: needs a crypto device and at most " +
                           std::to_string(kMaxEspWorkers) + " workers");
  auto out = std::make_shared<OutboundSas>();
  out->device = device;
  out->generation = generation;
  out->secret = peer.secret;
  out->started = std::chrono::steady_clock::now();
  for (unsigned i = 0; i <= workers; ++i) {
    const unsigned index = i == workers ? kControlSaIndex : i;
    auto sa = makeSa(
        *device, peer.secret,
        saContext(settings.clusterId, settings.nodeIp, peer.clusterId, gateway, index, generation),
        clusterSpi(index, generation), true, settings.nodeIp, gateway);
    if (!sa) return sa.error();
    if (i == workers)
      out->control = std::move(*sa);
    else
      out->byWorker.push_back(std::move(*sa));
  }
  return out;
}

Result<std::shared_ptr<InboundSas>> makeInboundSas(std::shared_ptr<overlay::EspDevice> device,
                                                   const NodeSettings& settings,
                                                   const std::string& peerId, Ipv4Address gateway,
                                                   uint64_t generation, const std::string& secret,
                                                   unsigned workers) {
  if (device == nullptr) return invalidArgument("ESP: needs a crypto device");
  auto in = std::make_shared<InboundSas>();
  in->device = device;
  in->generation = generation;
  in->secret = secret;
  for (unsigned index = 0; index < kSasPerPeer; ++index) {
    InboundSas::Sa sa;
    sa.spi = clusterSpi(index, generation);
    const std::string context =
        saContext(peerId, gateway, settings.clusterId, settings.nodeIp, index, generation);
    for (unsigned w = 0; w < workers; ++w) {
      auto made = makeSa(*device, secret, context, sa.spi, false, settings.nodeIp, gateway);
      if (!made) return made.error();
      sa.byWorker.push_back(std::move(*made));
    }
    in->byIndex.push_back(std::move(sa));
  }
  return in;
}

std::vector<LinkIndex> linkIndexes(const PeerMap& peers) {
  std::vector<LinkIndex> out;
  for (const auto& [id, peer] : peers) {
    const auto first = static_cast<uint16_t>(out.size());
    for (const Ipv4Address& g : peer.spec.gateways) out.push_back({id, g, first});
  }
  return out;
}

std::vector<Ipv4Prefix> routedPrefixes(const ClusterPeerSpec& peer) {
  if (peer.globalCidr) return {*peer.globalCidr};
  return peer.cidrs;
}

uint32_t clusterLinkMtu(const NodeSettings& settings, ClusterPeerSpec::Tunnel tunnel) {
  return settings.mtu - (tunnel == ClusterPeerSpec::Tunnel::kVxlan ? overlay::kOverhead
                                                                   : overlay::EspSa::kOverhead);
}

Status validatePeer(const ClusterPeerSpec& peer, const NodeSettings& settings,
                    const PeerMap& others) {
  const std::string what = "cluster peer '" + peer.clusterId + "'";
  if (settings.clusterId.empty())
    return invalidArgument("cluster.peer.set: this node has no --cluster-id");
  if (!isDnsLabel(peer.clusterId))
    return invalidArgument("clusterId: '" + peer.clusterId + "' is not a DNS label");
  if (peer.clusterId == settings.clusterId)
    return invalidArgument("clusterId: '" + peer.clusterId + "' is this cluster's own ID");
  if (peer.gateways.empty()) return invalidArgument(what + ": gatewayIps: none given");
  if (peer.gateways.size() > kMaxGatewaysPerPeer)
    return invalidArgument(what + ": gatewayIps: more than " + std::to_string(kMaxGatewaysPerPeer));
  for (size_t i = 0; i < peer.gateways.size(); ++i) {
    const Ipv4Address g = peer.gateways[i];
    if (g.value == 0 || g == settings.nodeIp)
      return invalidArgument(what + ": gatewayIps: " + g.toString() +
                             " is not another gateway's address");
    for (size_t j = 0; j < i; ++j)
      if (peer.gateways[j] == g)
        return invalidArgument(what + ": gatewayIps: " + g.toString() + " is given twice");
  }
  const bool esp = peer.tunnel == ClusterPeerSpec::Tunnel::kEsp;
  if (esp && peer.secret.size() < 16) return invalidArgument(what + ": secret: at least 16 bytes");
  if (!esp) {
    if (peer.vni == 0 || peer.vni > 0xffffff)
      return invalidArgument(what + ": vni: a VXLAN tunnel needs a VNI from 1 to 16777215");
    if (peer.vni == settings.vni)
      return invalidArgument(what + ": vni: " + std::to_string(peer.vni) +
                             " is this cluster's overlay VNI");
    for (const auto& [id, other] : others)
      if (id != peer.clusterId && other.spec.tunnel == ClusterPeerSpec::Tunnel::kVxlan &&
          other.spec.vni == peer.vni)
        return invalidArgument(what + ": vni: " + std::to_string(peer.vni) + " is cluster peer '" +
                               id + "'s");
  }
  if (settings.globalCidr && !peer.globalCidr)
    return invalidArgument(what + ": globalCidr: required, this cluster has a global CIDR (" +
                           settings.globalCidr->toString() + ")");
  if (!settings.globalCidr && peer.globalCidr)
    return invalidArgument(what + ": globalCidr: this cluster has no --cluster-global-cidr " +
                           "(every cluster of a set has a global CIDR, or none)");
  if (!peer.globalCidr && peer.cidrs.empty()) return invalidArgument(what + ": cidrs: none given");
  // What is routed to the peer must not overlap what is ours or another peer's.
  std::vector<std::pair<std::string, Ipv4Prefix>> ours = {
      {"this node's pod CIDR", settings.podCidr}};
  if (settings.clusterCidr) ours.push_back({"this cluster's CIDR", *settings.clusterCidr});
  if (settings.serviceCidr) ours.push_back({"this cluster's service CIDR", *settings.serviceCidr});
  if (settings.globalCidr) ours.push_back({"this cluster's global CIDR", *settings.globalCidr});
  for (const auto& [id, other] : others)
    if (id != peer.clusterId)
      for (const Ipv4Prefix& c : routedPrefixes(other.spec))
        ours.push_back({"cluster peer '" + id + "'", c});
  const std::string field = peer.globalCidr ? "globalCidr" : "cidrs";
  for (const Ipv4Prefix& c : routedPrefixes(peer)) {
    if (c.length == 0) return invalidArgument(what + ": " + field + ": 0.0.0.0/0 is everything");
    for (const auto& [whose, o] : ours)
      if (overlaps(c, o))
        return invalidArgument(what + ": " + field + ": " + c.toString() + " overlaps " + whose +
                               " " + o.toString());
  }
  size_t links = peer.gateways.size();
  for (const auto& [id, other] : others)
    if (id != peer.clusterId) links += other.spec.gateways.size();
  if (links > dataplane::kMaxClusterLinks)
    return makeError(ErrorCode::kResourceExhausted,
                     what + ": more than " + std::to_string(dataplane::kMaxClusterLinks) +
                         " peer gateways in all");
  return okStatus();
}

std::shared_ptr<const dataplane::ClusterLinkTable> buildClusterLinks(
    const std::shared_ptr<const PeerMap>& peers, const NodeSettings& settings,
    const dataplane::PortInfo& uplink, const UnderlayResolver& resolver,
    const GlobalIngressList& globalIngress, int socketId) {
  auto table = std::make_shared<dataplane::ClusterLinkTable>();
  table->owner = peers;
  if (settings.globalCidr) {
    table->globalNet = settings.globalCidr->address.value;
    table->globalMask = settings.globalCidr->mask();
    table->globalEgressIp = rte_cpu_to_be_32(globalEgressIp(*settings.globalCidr).value);
    for (const GlobalIngress& g : globalIngress)
      table->byGlobal.push_back(
          {rte_cpu_to_be_32(g.globalIp.value), rte_cpu_to_be_32(g.localIp.value)});
    table->byCluster = table->byGlobal;
    std::sort(table->byGlobal.begin(), table->byGlobal.end(),
              [](const auto& a, const auto& b) { return a.globalIp < b.globalIp; });
    std::sort(table->byCluster.begin(), table->byCluster.end(),
              [](const auto& a, const auto& b) { return a.clusterIp < b.clusterIp; });
  }
  uint16_t index = 0;
  for (const auto& [id, peer] : *peers) {
    for (size_t gi = 0; gi < peer.spec.gateways.size(); ++gi, ++index) {
      const Ipv4Address gateway = peer.spec.gateways[gi];
      dataplane::ClusterLink link;
      link.gatewayIp = rte_cpu_to_be_32(gateway.value);
      const Ipv4Address nextHop = underlayNextHop(settings, gateway);
      link.nextHopIp = rte_cpu_to_be_32(nextHop.value);
      if (auto mac = resolver.mac(nextHop)) {
        std::copy(mac->bytes.begin(), mac->bytes.end(), link.dstMac.addr_bytes);
        link.resolved = true;
      }
      std::copy(uplink.mac.bytes.begin(), uplink.mac.bytes.end(), link.srcMac.addr_bytes);
      link.uplinkPort = uplink.id;
      link.innerMtu = clusterLinkMtu(settings, peer.spec.tunnel);
      if (peer.spec.tunnel == ClusterPeerSpec::Tunnel::kVxlan) {
        overlay::OverlaySettings o;
        o.localIp = settings.nodeIp;
        o.udpPort = settings.vxlanPort;
        o.vni = peer.spec.vni;
        o.vtepMac = vtepMacOf(settings);
        o.uplinkPort = uplink.id;
        o.uplinkMac = uplink.mac;
        o.mtu = settings.mtu;
        overlay::RemoteNodeSpec remote;
        remote.ip = gateway;
        remote.vtepMac = fromEther(overlay::defaultVtepMac(gateway.value));
        remote.nextHop = nextHop;
        remote.nextHopMac = resolver.mac(nextHop);
        auto built = overlay::OverlayTable::build(o, {remote}, std::nullopt, socketId);
        if (built) {
          link.vxlan = std::move(*built);
          link.innerSrcMac = toEther(o.vtepMac);
          link.innerDstMac = overlay::defaultVtepMac(gateway.value);
        } else {
          link.resolved = false;  // the link drops; nothing goes out unframed
        }
      }
      const GatewaySas* sas = gi < peer.gateways.size() ? &peer.gateways[gi] : nullptr;
      if (sas != nullptr && sas->outbound)
        for (const auto& sa : sas->outbound->byWorker) link.outbound.push_back(sa.get());
      table->links.push_back(std::move(link));
      // What this gateway seals with: the newest generation learned, and the one before.
      if (sas != nullptr)
        for (const InboundSas* in : {sas->inbound.get(), sas->previous.get()}) {
          if (in == nullptr) continue;
          for (const InboundSas::Sa& sa : in->byIndex) {
            dataplane::ClusterLinkTable::Inbound entry;
            entry.spi = sa.spi;
            entry.gateway = rte_cpu_to_be_32(gateway.value);
            entry.link = index;
            for (const auto& w : sa.byWorker) entry.byWorker.push_back(w.get());
            table->inbound.push_back(std::move(entry));
          }
        }
    }
  }
  std::sort(table->inbound.begin(), table->inbound.end(), [](const auto& a, const auto& b) {
    return std::pair{a.spi, a.gateway} < std::pair{b.spi, b.gateway};
  });
  return table;
}

}  // namespace nodeplane::control
