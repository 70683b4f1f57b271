#include "dataplane/uplink_ingress.h"

#include <netinet/in.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_icmp.h>

#include "core/icmp.h"
#include "dataplane/parse.h"
#include "lb/nat.h"
#include "overlay/decap.h"
#include "overlay/encap.h"

#include <cstring>

namespace nodeplane::dataplane {

namespace {

void handleUplinkArp(rte_mbuf* m, PacketMeta& meta, const overlay::OverlayTable& table,
                     WorkerContext& ctx) {
  auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, meta.l3Offset);
  const uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
  if (op == RTE_ARP_OP_REQUEST && meta.dstIp == table.localIp() && meta.srcIp != meta.dstIp) {
    buildArpReply(m, meta, table.uplinkMac());
    ctx.counters->arpReplies.add();
    return meta.setTransmit(m->port);
  }
  if (op == RTE_ARP_OP_REPLY || (op == RTE_ARP_OP_REQUEST && meta.srcIp == meta.dstIp))
    return meta.setPunt(PuntReason::kArp);  // replies and announcements teach the neighbour table
  meta.setDrop(DropReason::kArpNotAnswered);
}

// An ARP request inside the tunnel (a kernel VTEP without static neighbour entries asks for the
// gateway of our pod CIDR): answered with our VTEP MAC and sent back through the tunnel.
void handleInnerArp(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot,
                    const overlay::OverlayTable& table, int32_t node) {
  auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, meta.l3Offset);
  const uint32_t target = rte_be_to_cpu_32(meta.dstIp);
  if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) ||
      (target & snapshot.settings.podCidrMask) != snapshot.settings.podCidr)
    return meta.setDrop(DropReason::kVxlanInnerArpNotOurs);
  buildArpReply(m, meta, table.vtepMac());
  const overlay::RemoteNode& peer = table.node(static_cast<uint32_t>(node));
  if (!overlay::encapsulate(m, peer, table, 0)) return meta.setDrop(DropReason::kEncapNoHeadroom);
  if (!peer.resolved) return meta.setPunt(PuntReason::kAwaitNeighbor, peer.nextHopIp);
  meta.setTransmit(table.uplinkPort());
}

void handleVxlan(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot,
                 const overlay::OverlayTable& table, WorkerContext& ctx) {
  const overlay::DecapResult r =
      overlay::decapsulate(m, meta, table, ctx.generation, ctx.decapCache);
  if (r.drop != DropReason::kNone) return meta.setDrop(r.drop);
  parsePacket(m, meta);  // the inner frame, bounded like any other
  if (meta.action == Action::kDrop) return meta.setDrop(overlay::innerDropReason(meta.drop));
  if (meta.flags & kFlagVlanTagged) return meta.setDrop(DropReason::kVxlanInnerNotIpv4);
  auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (meta.l3 == L3Kind::kArp) {
    if (!rte_is_broadcast_ether_addr(&eth->dst_addr) &&
        !rte_is_same_ether_addr(&eth->dst_addr, &table.vtepMac()))
      return meta.setDrop(DropReason::kVxlanInnerDstMac);
    return handleInnerArp(m, meta, snapshot, table, r.node);
  }
  if (!rte_is_same_ether_addr(&eth->dst_addr, &table.vtepMac()))
    return meta.setDrop(DropReason::kVxlanInnerDstMac);
  if (meta.srcIp == table.localIp()) return meta.setDrop(DropReason::kSourceIsNode);
  meta.flags |= kFlagFromOverlay;  // the route stage takes it from here
}

// A gateway heartbeat (control/heartbeat.h) for this node.
inline bool isHeartbeat(const PacketMeta& meta, rte_be32_t nodeIp) {
  return meta.dstIp == nodeIp && meta.ipProto == IPPROTO_UDP && !(meta.flags & kFlagFragment) &&
         meta.dstPort == rte_cpu_to_be_16(kClusterHeartbeatPort);
}

void fromCluster(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot,
                 const ClusterLinkTable& table, uint16_t link, WorkerContext& ctx);

// ESP from another cluster's gateway: opened with this worker's SA for its SPI; the inner packet
// goes on as if from the overlay (routed to a local pod by the route stage), its destination
// translated first when the clusters use Globalnet.
void handleEsp(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot, WorkerContext& ctx) {
  const ClusterLinkTable* links = snapshot.clusterLinks.get();
  if (meta.flags & kFlagFragment) return meta.setDrop(DropReason::kEspReplayed);
  rte_be32_t spiWire;
  if (links == nullptr || meta.l3Offset != sizeof(rte_ether_hdr) ||
      rte_pktmbuf_data_len(m) < meta.l4Offset + 8u)
    return meta.setDrop(DropReason::kEspUnknownSpi);
  std::memcpy(&spiWire, rte_pktmbuf_mtod_offset(m, const uint8_t*, meta.l4Offset), 4);
  const ClusterLinkTable::Inbound* in = links->findSpi(meta.srcIp, rte_be_to_cpu_32(spiWire));
  if (in == nullptr || in->byWorker.size() <= ctx.workerIndex) {
    // From a peer gateway: perhaps its next generation of SAs, which the control thread learns
    // from this packet (control/cluster_links.h). Counted as dropped here either way; at most
    // a few a second go to the control thread.
    const int32_t link = links->espLinkFrom(meta.srcIp);
    if (link < 0 || ctx.dryRun || !ctx.espLearnLimiter.allow(rte_rdtsc()))
      return meta.setDrop(DropReason::kEspUnknownSpi);
    ctx.counters->drop(DropReason::kEspUnknownSpi);
    return meta.setPunt(PuntReason::kEspUnknownSpi, static_cast<uint32_t>(link));
  }
  if (ctx.dryRun) return meta.setDrop(DropReason::kEspUnknownSpi);  // a trace opens nothing
  uint16_t replayed = 0;
  rte_mbuf* one[1] = {m};
  if (in->byWorker[ctx.workerIndex]->process(one, 1, &replayed) != 1)
    return meta.setDrop(replayed ? DropReason::kEspReplayed : DropReason::kEspBadIcv);
  ctx.counters->espOpened.add();
  parsePacket(m, meta);  // the inner packet, bounded like any other
  if (meta.action == Action::kDrop) return;
  if (meta.l3 != L3Kind::kIpv4) return meta.setDrop(DropReason::kVxlanInnerNotIpv4);
  fromCluster(m, meta, snapshot, *links, in->link, ctx);
}

// A VXLAN link's frame from another cluster's gateway: decapsulated with the link's own VNI and
// template, then as if opened from ESP.
void handleClusterVxlan(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot,
                        const ClusterLinkTable& links, uint16_t link, WorkerContext& ctx) {
  const overlay::OverlayTable& table = *links.links[link].vxlan;
  overlay::DecapCache none{};
  const overlay::DecapResult r = overlay::decapsulate(m, meta, table, ~uint64_t{0}, none);
  if (r.drop != DropReason::kNone) return meta.setDrop(r.drop);
  parsePacket(m, meta);
  if (meta.action == Action::kDrop) return meta.setDrop(overlay::innerDropReason(meta.drop));
  if (meta.l3 != L3Kind::kIpv4) return meta.setDrop(DropReason::kVxlanInnerNotIpv4);
  auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (!rte_is_same_ether_addr(&eth->dst_addr, &table.vtepMac()))
    return meta.setDrop(DropReason::kVxlanInnerDstMac);
  fromCluster(m, meta, snapshot, links, link, ctx);
}

// What another cluster's gateway sent, opened: a heartbeat for the control thread, or a packet
// that goes on as if from the overlay (translated first with Globalnet).
void fromCluster(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot,
                 const ClusterLinkTable& table, uint16_t link, WorkerContext& ctx) {
  const ClusterLinkTable* links = &table;
  if (meta.srcIp == snapshot.settings.nodeIp) return meta.setDrop(DropReason::kSourceIsNode);
  if (isHeartbeat(meta, snapshot.settings.nodeIp))
    return meta.setPunt(PuntReason::kHeartbeat, link);
  meta.flags |= kFlagFromOverlay | kFlagFromCluster;
  if (!links->globalnet()) return;
  // Globalnet: only this cluster's global addresses are reached from peers — its egress address
  // (replies, translated back by conntrack) and the exported services' (to their ClusterIPs).
  if (!links->isGlobal(meta.dstIp)) return meta.setDrop(DropReason::kGlobalAddressUnknown);
  if (meta.dstIp == links->globalEgressIp) return;
  const GlobalTranslation* t = links->toCluster(meta.dstIp);
  if (t == nullptr) return meta.setDrop(DropReason::kGlobalAddressUnknown);
  lb::natRewriteAddress(m, meta, false, t->clusterIp);
  ctx.counters->globalIngressTranslated.add();
}

}  // namespace

void uplinkIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  const overlay::OverlayTable* table = snapshot.overlay.get();
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue) continue;
    rte_mbuf* m = burst.pkts[i];
    if (table == nullptr) {
      meta.setDrop(DropReason::kPortNotServed);
      continue;
    }
    // A promiscuous uplink sees frames for other hosts: only ours, broadcast and multicast.
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (!rte_is_same_ether_addr(&eth->dst_addr, &table->uplinkMac()) &&
        !rte_is_multicast_ether_addr(&eth->dst_addr)) {
      meta.setDrop(DropReason::kEthDstNotLocal);
      continue;
    }
    if (meta.flags & kFlagVlanTagged) {
      meta.setDrop(DropReason::kUplinkVlanTagged);
      continue;
    }
    if (meta.l3 == L3Kind::kArp) {
      handleUplinkArp(m, meta, *table, ctx);
      continue;
    }
    // Only the host path may speak as the node (NetworkPolicy lets the node reach its pods).
    if (meta.srcIp == table->localIp()) {
      meta.setDrop(DropReason::kSourceIsNode);
      continue;
    }
    meta.flags |= kFlagFromUplink;  // only a service or a tracked flow may claim it (service stage)
    if (meta.dstIp != table->localIp()) continue;  // an external / load-balancer service IP?
    if (meta.ipProto == IPPROTO_UDP && !(meta.flags & kFlagLaterFragment) &&
        meta.dstPort == table->udpPort()) {
      meta.flags &= ~kFlagFromUplink;
      const ClusterLinkTable* links = snapshot.clusterLinks.get();
      const int32_t link = links != nullptr ? links->vxlanLinkFrom(meta.srcIp) : -1;
      if (link >= 0)
        handleClusterVxlan(m, meta, snapshot, *links, static_cast<uint16_t>(link), ctx);
      else
        handleVxlan(m, meta, snapshot, *table, ctx);
      continue;
    }
    if (meta.ipProto == IPPROTO_ESP) {
      meta.flags &= ~kFlagFromUplink;
      handleEsp(m, meta, snapshot, ctx);
      continue;
    }
    if (snapshot.settings.clusterPeers && isHeartbeat(meta, table->localIp())) {
      meta.setPunt(PuntReason::kHeartbeat, kHeartbeatFromUnderlay);
      continue;
    }
    if (meta.ipProto == IPPROTO_ICMP && !(meta.flags & kFlagFragment) &&
        rte_be_to_cpu_16(meta.dstPort) == (RTE_IP_ICMP_ECHO_REQUEST << 8)) {
      buildEchoReply(m, meta, table->uplinkMac());  // the node answers ping on its address
      ctx.counters->icmpEchoReplies.add();
      meta.setTransmit(m->port);
      continue;
    }
    // Anything else for the node's address: a NodePort or the reply of a masqueraded flow, or
    // (the service stage decides) traffic with no host path.
  }
}

}  // namespace nodeplane::dataplane
