#include "dataplane/pod_ingress.h"

#include <netinet/in.h>
#include <rte_arp.h>
#include <rte_icmp.h>

#include "core/icmp.h"

namespace nodeplane::dataplane {

namespace {

inline bool isMulticastOrBroadcast(rte_be32_t be) {
  uint32_t a = rte_be_to_cpu_32(be);
  return (a >> 28) == 0xe || a == 0xffffffffu;
}

void handleArp(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, WorkerContext& ctx) {
  auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, meta.l3Offset);
  // Answer requests for any address but the pod's own (that is a duplicate-address probe or a
  // gratuitous announcement, which must stay unanswered).
  if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) || meta.dstIp == port.podIp ||
      meta.dstIp == meta.srcIp)
    return meta.setDrop(DropReason::kArpNotAnswered);
  buildArpReply(m, meta, port.mac);
  ctx.counters->arpReplies.add();
  meta.setTransmit(m->port);
}

void handleToGateway(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, WorkerContext& ctx) {
  // Not a ping: a reply of a tracked flow may be addressed here; the stages after decide.
  if (meta.ipProto != IPPROTO_ICMP || (meta.flags & kFlagFragment) ||
      rte_be_to_cpu_16(meta.dstPort) != (RTE_IP_ICMP_ECHO_REQUEST << 8))
    return;
  buildEchoReply(m, meta, port.mac);
  ctx.counters->icmpEchoReplies.add();
  meta.setTransmit(m->port);
}

// The first hop of a port facing a kernel (a pod's, or the node's through the host path):
// untagged frames to our MAC, ARP and gateway pings answered, the port's own address as the only
// source (`spoofed` otherwise), no multicast; what passes is marked with `mark`.
void kernelPortIngress(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx,
                       DropReason spoofed, uint8_t mark) {
  const PortConfig& port = snapshot.ports[burst.inPort];
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue) continue;
    rte_mbuf* m = burst.pkts[i];
    if (meta.flags & kFlagVlanTagged) {
      meta.setDrop(DropReason::kPodVlanTagged);
      continue;
    }
    if (meta.l3 == L3Kind::kArp) {
      handleArp(m, meta, port, ctx);
      continue;
    }
    auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (!rte_is_same_ether_addr(&eth->dst_addr, &port.mac)) {
      meta.setDrop(rte_is_multicast_ether_addr(&eth->dst_addr) ? DropReason::kIpv4DstMulticast
                                                               : DropReason::kEthDstNotLocal);
      continue;
    }
    if (meta.srcIp != port.podIp) {  // (invalid sources were dropped by the parser)
      meta.setDrop(spoofed);
      continue;
    }
    if (meta.dstIp == snapshot.settings.gatewayIp) {
      handleToGateway(m, meta, port, ctx);
      continue;
    }
    if (isMulticastOrBroadcast(meta.dstIp)) {
      meta.setDrop(DropReason::kIpv4DstMulticast);
      continue;
    }
    meta.flags |= mark;
  }
}

}  // namespace

void hostIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  kernelPortIngress(burst, snapshot, ctx, DropReason::kHostSourceNotNode, kFlagFromHost);
}

void podIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  kernelPortIngress(burst, snapshot, ctx, DropReason::kPodSourceSpoofed, 0);
}

}  // namespace nodeplane::dataplane
