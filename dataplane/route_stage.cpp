#include "dataplane/route_stage.h"

#include <netinet/in.h>
#include <rte_cycles.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>

#include "core/checksum.h"
#include "core/icmp.h"
#include "dataplane/offload.h"
#include "dataplane/vnet.h"
#include "lb/icmp_nat.h"
#include "lb/nat.h"
#include "overlay/encap.h"
#include "overlay/mss_clamp.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint16_t kTcpIpHeaders = 40;  // IPv4 + TCP without options: MSS = MTU - 40

// The IPv4 length of the largest packet `m` puts on a wire: a TCP super-packet's segments (its
// headers and the sender's segment size), else the packet itself.
uint32_t wireLength(const rte_mbuf* m, const PacketMeta& meta) {
  if (!isTcpSuperPacket(m) || meta.l4Offset + sizeof(rte_tcp_hdr) > m->data_len)
    return meta.ipTotalLength;
  const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, meta.l4Offset);
  return uint32_t{meta.l4Offset} - meta.l3Offset + (tcp->data_off >> 4) * 4 + m->tso_segsz;
}

}  // namespace

void rewriteEthernet(rte_mbuf* m, PacketMeta& meta, const rte_ether_addr& dst,
                     const rte_ether_addr& src) {
  const uint16_t l2Extra = meta.l3Offset - sizeof(rte_ether_hdr);
  if (l2Extra != 0) {  // 802.1Q tags: the next hop is untagged
    rte_pktmbuf_adj(m, l2Extra);
    meta.l3Offset -= l2Extra;
    meta.l4Offset -= l2Extra;
  }
  const uint32_t frameLength = meta.l3Offset + meta.ipTotalLength;
  if (m->pkt_len > frameLength && m->nb_segs == 1) {
    m->pkt_len = frameLength;
    m->data_len = static_cast<uint16_t>(frameLength);
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = dst;
  eth->src_addr = src;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
}

namespace {

// To a pod on another node: TTL, MTU (ICMP fragmentation-needed with DF, else the control thread
// fragments), MSS clamp, inner MACs as the kernel's vxlan driver expects (our VTEP -> theirs),
// then VXLAN. An unresolved underlay next hop sends the encapsulated packet to wait in the
// control thread's neighbour queue.
void toRemoteNode(rte_mbuf* m, PacketMeta& meta, const NextHop& nh, const Snapshot& snapshot,
                  WorkerContext& ctx) {
  const overlay::OverlayTable& table = *snapshot.overlay;
  // From another node, not back to one; from another cluster (a gateway), on to this cluster's.
  if ((meta.flags & (kFlagFromOverlay | kFlagFromCluster)) == kFlagFromOverlay)
    return meta.setDrop(DropReason::kOverlayLoop);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1)
    return rejectWithIcmp(m, meta, DropReason::kIpv4TtlExpired, kIcmpTimeExceeded,
                          kIcmpCodeTtlExceededInTransit, 0, snapshot, ctx);
  if (wireLength(m, meta) > table.innerMtu()) {
    if ((meta.flags & kFlagDontFragment) || isTcpSuperPacket(m))
      return rejectWithIcmp(m, meta, DropReason::kFragmentationNeeded, kIcmpDestinationUnreachable,
                            kIcmpCodeFragmentationNeeded, rte_cpu_to_be_32(table.innerMtu()),
                            snapshot, ctx);
    // The control thread fragments what no offload is left on.
    completeChecksum(m, meta.l3Offset, meta.l4Offset, meta.ipProto);
    return meta.setPunt(PuntReason::kFragment);
  }
  decrementTtl(ip);
  overlay::clampMss(m, meta, table.innerMtu() - kTcpIpHeaders);
  const overlay::RemoteNode& node = table.node(nh.remoteNode);
  rewriteEthernet(m, meta, node.vtepMac, table.vtepMac());
  if (!overlay::encapsulate(m, node, table, overlay::flowEntropy(meta)))
    return meta.setDrop(DropReason::kEncapNoHeadroom);
  if (unlikely(!node.resolved)) return meta.setPunt(PuntReason::kAwaitNeighbor, node.nextHopIp);
  meta.setTransmit(table.uplinkPort());
}

// Globalnet: what leaves for a peer has a global source, this cluster's egress address (set by
// the service stage's SNAT) or an exported service's (translated here from its ClusterIP), never
// a cluster-local one. False: dropped.
bool toGlobalSource(rte_mbuf* m, PacketMeta& meta, const ClusterLinkTable& links,
                    WorkerContext& ctx) {
  if (!links.globalnet() || links.isGlobal(meta.srcIp)) return true;
  const GlobalTranslation* t = links.toGlobal(meta.srcIp);
  if (t == nullptr) {
    meta.setDrop(DropReason::kGlobalSourceUntranslated);
    return false;
  }
  lb::natRewriteAddress(m, meta, true, t->globalIp);
  ctx.counters->globalEgressTranslated.add();
  return true;
}

// To another cluster: checked here (TTL, size, MSS) and queued on the link's TX buffer, which
// seals it with ESP as it is flushed (tx_buffers.h, cluster_link.h).
void toRemoteCluster(rte_mbuf* m, PacketMeta& meta, const NextHop& nh, const Snapshot& snapshot,
                     WorkerContext& ctx) {
  const ClusterLinkTable* links = snapshot.clusterLinks.get();
  if (links == nullptr || nh.remoteNode >= links->links.size())
    return meta.setDrop(DropReason::kNoRoute);
  // What came from another cluster is not relayed to a cluster again; what came from another
  // node of this cluster (not the gateway) is.
  if (meta.flags & (kFlagFromCluster | kFlagFromUplink))
    return meta.setDrop(DropReason::kOverlayLoop);
  if (meta.l3Offset != sizeof(rte_ether_hdr)) return meta.setDrop(DropReason::kEspEncapFailed);
  const ClusterLink& link = links->links[nh.remoteNode];
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1)
    return rejectWithIcmp(m, meta, DropReason::kIpv4TtlExpired, kIcmpTimeExceeded,
                          kIcmpCodeTtlExceededInTransit, 0, snapshot, ctx);
  if (wireLength(m, meta) > link.innerMtu) {
    if ((meta.flags & kFlagDontFragment) || isTcpSuperPacket(m))
      return rejectWithIcmp(m, meta, DropReason::kFragmentationNeeded, kIcmpDestinationUnreachable,
                            kIcmpCodeFragmentationNeeded, rte_cpu_to_be_32(link.innerMtu), snapshot,
                            ctx);
    // The control thread fragments it and hands the fragments to the link to seal.
    if (!toGlobalSource(m, meta, *links, ctx)) return;
    completeChecksum(m, meta.l3Offset, meta.l4Offset, meta.ipProto);
    return meta.setPunt(PuntReason::kFragment);
  }
  if (!toGlobalSource(m, meta, *links, ctx)) return;
  decrementTtl(ip);
  overlay::clampMss(m, meta, link.innerMtu - kTcpIpHeaders);
  meta.setTransmit(static_cast<uint16_t>(kFirstLinkPort + nh.remoteNode));
}

// Out of the cluster (masqueraded pod traffic): to the underlay gateway.
void toUplink(rte_mbuf* m, PacketMeta& meta, const Snapshot& snapshot, WorkerContext& ctx) {
  const overlay::OverlayTable& table = *snapshot.overlay;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1)
    return rejectWithIcmp(m, meta, DropReason::kIpv4TtlExpired, kIcmpTimeExceeded,
                          kIcmpCodeTtlExceededInTransit, 0, snapshot, ctx);
  decrementTtl(ip);
  rewriteEthernet(m, meta, table.gatewayMac(), table.uplinkMac());
  if (unlikely(!table.gatewayResolved()))
    return meta.setPunt(PuntReason::kAwaitNeighbor, table.gatewayIp());
  meta.setTransmit(table.uplinkPort());
}

}  // namespace

void rejectWithIcmp(rte_mbuf* m, PacketMeta& meta, DropReason reason, uint8_t type, uint8_t code,
                    rte_be32_t restOfHeader, const Snapshot& snapshot, WorkerContext& ctx,
                    rte_be32_t source) {
  if (!ctx.icmpLimiter.allow(rte_rdtsc())) {
    ctx.counters->icmpRateLimited.add();
    return meta.setDrop(reason);
  }
  if (source == 0)
    source = snapshot.settings.nodeIp != 0 ? snapshot.settings.nodeIp : snapshot.settings.gatewayIp;
  const uint16_t inPort = m->port;
  const bool translated = meta.flags & kFlagTranslated;
  const bool fromOverlay = meta.flags & kFlagFromOverlay;
  switch (buildIcmpError(m, meta, type, code, restOfHeader, source, snapshot.ports[inPort].mac)) {
    case IcmpErrorResult::kBuilt:
      // The original is dropped (counted here, as the dispatcher now sees the ICMP error).
      ctx.counters->drop(reason);
      ctx.counters->icmpErrorsSent.add();
      // It quotes the packet as translated; the sender must see it about what it sent.
      if (translated && ctx.conntrack != nullptr &&
          lb::translateIcmpError(m, meta, *ctx.conntrack, ctx.workerIndex))
        ctx.counters->icmpTranslated.add();
      // About a packet another node sent through the overlay (to a gateway): back through it.
      if (fromOverlay && snapshot.overlay) {
        const uint32_t dst = rte_be_to_cpu_32(meta.dstIp);
        uint64_t nh;
        snapshot.routes->lookup(&dst, &nh, 1);
        const NextHop& back = snapshot.routes->nextHop(nh);
        if (back.kind == NextHopKind::kRemoteNode)
          return toRemoteNode(m, meta, back, snapshot, ctx);
        return meta.setDrop(DropReason::kNoRoute);
      }
      return meta.setTransmit(inPort);
    case IcmpErrorResult::kNotAllowed:
      return meta.setDrop(reason);
    case IcmpErrorResult::kUnbuildable:
      ctx.counters->icmpErrorUnbuildable.add();
      return meta.setDrop(reason);
  }
}

void routeStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  uint32_t ips[kMaxBurst];
  uint64_t nextHops[kMaxBurst];
  uint16_t index[kMaxBurst];
  unsigned n = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.l3 != L3Kind::kIpv4) continue;
    // The node routes only what comes from pods or the overlay, and what a tracked flow claimed
    // (and, when the host path is the node's only way out, what the uplink brings the node).
    if ((meta.flags & kFlagFromUplink) && !(meta.flags & kFlagTranslated) &&
        !(meta.dstIp == snapshot.settings.nodeIp && snapshot.settings.hostDefaultRoute)) {
      meta.setDrop(meta.dstIp != snapshot.settings.nodeIp ? DropReason::kUplinkNotForNode
                   : snapshot.settings.hostPath           ? DropReason::kUplinkForHostKernel
                                                          : DropReason::kHostPathUnavailable);
      continue;
    }
    ips[n] = rte_be_to_cpu_32(meta.dstIp);
    index[n++] = i;
  }
  if (n == 0) return;
  snapshot.routes->lookup(ips, nextHops, n);

  for (unsigned j = 0; j < n; ++j) {
    const uint16_t i = index[j];
    PacketMeta& meta = burst.meta[i];
    rte_mbuf* m = burst.pkts[i];
    const NextHop& nh = snapshot.routes->nextHop(nextHops[j]);
    if (nh.kind == NextHopKind::kRemoteNode) {
      toRemoteNode(m, meta, nh, snapshot, ctx);
      continue;
    }
    if (nh.kind == NextHopKind::kRemoteCluster) {
      toRemoteCluster(m, meta, nh, snapshot, ctx);
      continue;
    }
    if (nh.kind == NextHopKind::kUplink) {
      if ((meta.flags & kFlagFromHost) && !snapshot.settings.hostDefaultRoute)
        meta.setDrop(DropReason::kHostNoRoute);
      else if (snapshot.overlay && snapshot.overlay->hasGateway() &&
               !(meta.flags & kFlagFromUplink))
        toUplink(m, meta, snapshot, ctx);
      else
        meta.setDrop(DropReason::kNoRoute);
      continue;
    }
    if (nh.kind != NextHopKind::kLocalPod && nh.kind != NextHopKind::kHost) {
      meta.setDrop(nh.kind == NextHopKind::kDrop ? nh.drop : DropReason::kGatewayUnsupported);
      continue;
    }
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
    if (ip->time_to_live <= 1) {
      rejectWithIcmp(m, meta, DropReason::kIpv4TtlExpired, kIcmpTimeExceeded,
                     kIcmpCodeTtlExceededInTransit, 0, snapshot, ctx);
      continue;
    }
    decrementTtl(ip);
    // Into the pod: a SYN from the overlay gets the same clamp as one going out.
    if ((meta.flags & kFlagFromOverlay) && snapshot.overlay)
      overlay::clampMss(m, meta, snapshot.overlay->innerMtu() - kTcpIpHeaders);
    rewriteEthernet(m, meta, nh.dstMac, nh.srcMac);
    meta.setTransmit(nh.port);
  }
}

}  // namespace nodeplane::dataplane
