#include "dataplane/route_stage.h"

#include <rte_cycles.h>
#include <netinet/in.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "dataplane/checksum.h"
#include "dataplane/icmp.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpTtlExceededInTransit = 0;

// Writes a fresh untagged Ethernet header in front of the IPv4 header and drops any padding.
inline void rewriteL2(rte_mbuf* m, PacketMeta& meta, const NextHop& nh) {
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
  eth->dst_addr = nh.dstMac;
  eth->src_addr = nh.srcMac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
}

}  // namespace

void rejectWithIcmp(rte_mbuf* m, PacketMeta& meta, DropReason reason, uint8_t type, uint8_t code,
                    rte_be32_t restOfHeader, const Snapshot& snapshot, WorkerContext& ctx) {
  if (!ctx.icmpLimiter.allow(rte_rdtsc())) {
    ctx.counters->icmpRateLimited.add();
    return meta.setDrop(reason);
  }
  const rte_be32_t source =
      snapshot.settings.nodeIp != 0 ? snapshot.settings.nodeIp : snapshot.settings.gatewayIp;
  const uint16_t inPort = m->port;
  switch (buildIcmpError(m, meta, type, code, restOfHeader, source,
                         snapshot.ports[inPort].mac)) {
    case IcmpErrorResult::kBuilt:
      // The original is dropped (counted here, as the dispatcher now sees the ICMP error).
      ctx.counters->drop(reason);
      ctx.counters->icmpErrorsSent.add();
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
    const PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.l3 != L3Kind::kIpv4) continue;
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
    if (nh.kind != NextHopKind::kLocalPod) {
      meta.setDrop(nh.kind == NextHopKind::kDrop ? nh.drop : DropReason::kGatewayUnsupported);
      continue;
    }
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
    if (ip->time_to_live <= 1) {
      rejectWithIcmp(m, meta, DropReason::kIpv4TtlExpired, kIcmpTimeExceeded,
                     kIcmpTtlExceededInTransit, 0, snapshot, ctx);
      continue;
    }
    decrementTtl(ip);
    rewriteL2(m, meta, nh);
    meta.setTransmit(nh.port);
  }
}

}  // namespace nodeplane::dataplane
