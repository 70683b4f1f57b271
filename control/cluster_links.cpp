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

uint32_t clusterSpi(const std::string& secret, const std::string& from, Ipv4Address fromGateway,
                    const std::string& to, Ipv4Address toGateway, unsigned index) {
  auto derived = overlay::deriveEspKey(secret, "spi " + from + "@" + fromGateway.toString() + "->" +
                                                   to + "@" + toGateway.toString());
  uint32_t bits = 0;
  if (derived) std::memcpy(&bits, derived->bytes.data(), sizeof(bits));
  return 0x10000000u | (bits & 0x0fffff00u) | (index & 0xffu);
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
  // The SPIs a peer gateway sends to this node with share their upper bits: no two may clash.
  std::map<uint32_t, std::string> bases;
  if (!esp) return okStatus();
  for (const auto& [id, other] : others)
    if (id != peer.clusterId && other.spec.tunnel == ClusterPeerSpec::Tunnel::kEsp)
      for (const Ipv4Address& g : other.spec.gateways)
        bases[clusterSpi(other.spec.secret, id, g, settings.clusterId, settings.nodeIp, 0) &
              ~0xffu] = id;
  for (const Ipv4Address& g : peer.gateways) {
    const uint32_t base =
        clusterSpi(peer.secret, peer.clusterId, g, settings.clusterId, settings.nodeIp, 0) & ~0xffu;
    if (auto it = bases.find(base); it != bases.end())
      return invalidArgument(what + ": secret: its SPIs collide with cluster peer '" + it->second +
                             "'s (choose another secret)");
    bases[base] = peer.clusterId;
  }
  return okStatus();
}

Result<std::shared_ptr<PeerSas>> makePeerSas(std::shared_ptr<overlay::EspDevice> device,
                                             const NodeSettings& settings,
                                             const ClusterPeerSpec& peer, unsigned workers) {
  const std::string& localId = settings.clusterId;
  const Ipv4Address self = settings.nodeIp;
  auto sas = std::make_shared<PeerSas>();
  sas->device = device;
  auto make = [&](const std::string& from, Ipv4Address fromGateway, const std::string& to,
                  Ipv4Address toGateway, unsigned index,
                  bool outbound) -> Result<std::unique_ptr<overlay::EspSa>> {
    overlay::EspSaSpec spec;
    spec.spi = clusterSpi(peer.secret, from, fromGateway, to, toGateway, index);
    auto key =
        overlay::deriveEspKey(peer.secret, from + "@" + fromGateway.toString() + "->" + to + "@" +
                                               toGateway.toString() + "/" + std::to_string(index));
    if (!key) return key.error();
    spec.key = *key;
    spec.outbound = outbound;
    spec.localAddress = self;
    spec.remoteAddress = outbound ? toGateway : fromGateway;
    return overlay::EspSa::create(*device, spec);
  };
  for (const Ipv4Address& gateway : peer.gateways) {
    GatewaySas g;
    g.gateway = gateway;
    if (peer.tunnel == ClusterPeerSpec::Tunnel::kVxlan) {  // no SAs: the link is VXLAN
      sas->gateways.push_back(std::move(g));
      continue;
    }
    for (unsigned w = 0; w < workers; ++w) {
      auto sa = make(localId, self, peer.clusterId, gateway, w, true);
      if (!sa) return sa.error();
      g.outbound.push_back(std::move(*sa));
    }
    for (unsigned i = 0; i < kSasPerPeer; ++i) {
      GatewaySas::Inbound in;
      in.spi = clusterSpi(peer.secret, peer.clusterId, gateway, localId, self, i);
      for (unsigned w = 0; w < workers; ++w) {
        auto sa = make(peer.clusterId, gateway, localId, self, i, false);
        if (!sa) return sa.error();
        in.byWorker.push_back(std::move(*sa));
      }
      g.inbound.push_back(std::move(in));
    }
    sas->gateways.push_back(std::move(g));
  }
  return sas;
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
          {rte_cpu_to_be_32(g.globalIp.value), rte_cpu_to_be_32(g.clusterIp.value)});
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
      for (const auto& sa : peer.sas->gateways[gi].outbound) link.outbound.push_back(sa.get());
      table->links.push_back(std::move(link));
      // What this gateway sends, with the current secret and the one before (same gateways).
      for (const PeerSas* sas : {peer.sas.get(), peer.retired.get()}) {
        if (sas == nullptr || gi >= sas->gateways.size()) continue;
        for (const GatewaySas::Inbound& in : sas->gateways[gi].inbound) {
          dataplane::ClusterLinkTable::Inbound entry;
          entry.spi = in.spi;
          entry.link = index;
          for (const auto& sa : in.byWorker) entry.byWorker.push_back(sa.get());
          table->inbound.push_back(std::move(entry));
        }
      }
    }
  }
  std::sort(table->inbound.begin(), table->inbound.end(),
            [](const auto& a, const auto& b) { return a.spi < b.spi; });
  return table;
}

}  // namespace nodeplane::control
