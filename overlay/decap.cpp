#include "overlay/decap.h"

#include <rte_udp.h>
#include <rte_vxlan.h>

namespace nodeplane::overlay {

DecapResult decapsulate(rte_mbuf* m, const PacketMeta& outer, const OverlayTable& table,
                        uint64_t generation, DecapCache& cache) {
  if (outer.flags & kFlagFragment) return {DropReason::kVxlanOuterFragment};
  const uint32_t l4Length = outer.ipTotalLength - (outer.l4Offset - outer.l3Offset);
  auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, outer.l4Offset);
  const uint32_t udpLength = rte_be_to_cpu_16(udp->dgram_len);
  if (udpLength != l4Length) return {DropReason::kVxlanBadUdpLength};
  if (udpLength < kUdpLength + kVxlanLength) return {DropReason::kVxlanTruncated};
  const uint32_t vxlanOffset = outer.l4Offset + kUdpLength;
  if (vxlanOffset + kVxlanLength > m->data_len) return {DropReason::kHeadersNotContiguous};
  auto* vxlan = rte_pktmbuf_mtod_offset(m, const rte_vxlan_hdr*, vxlanOffset);
  if (!(rte_be_to_cpu_32(vxlan->vx_flags) >> 24 & kVxlanFlagVni)) return {DropReason::kVxlanNoIBit};
  if ((vxlan->vx_vni & rte_cpu_to_be_32(0xffffff00)) != table.vniField())
    return {DropReason::kVxlanUnknownVni};

  int32_t node;
  if (cache.generation == generation && cache.ip == outer.srcIp) {
    node = cache.node;
  } else {
    node = table.findBySource(outer.srcIp);
    cache = DecapCache{generation, outer.srcIp, node};
  }
  if (node < 0) return {DropReason::kVxlanUnknownSource};

  const uint32_t innerLength = udpLength - kUdpLength - kVxlanLength;
  if (innerLength < sizeof(rte_ether_hdr)) return {DropReason::kVxlanInnerTruncated};
  // Strip the outer headers and any Ethernet padding after the datagram.
  rte_pktmbuf_adj(m, static_cast<uint16_t>(vxlanOffset + kVxlanLength));
  if (m->pkt_len > innerLength && m->nb_segs == 1) {
    m->pkt_len = innerLength;
    m->data_len = static_cast<uint16_t>(innerLength);
  }
  m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_VLAN_STRIPPED);
  return {DropReason::kNone, node};
}

DropReason innerDropReason(DropReason r) {
  switch (r) {
    case DropReason::kEthTruncated:
    case DropReason::kIpv4Truncated:
    case DropReason::kIpv4IhlBeyondPacket:
    case DropReason::kIpv4TotalLengthBeyondFrame:
    case DropReason::kTcpTruncated:
    case DropReason::kUdpTruncated:
    case DropReason::kIcmpTruncated:
    case DropReason::kSctpTruncated:
    case DropReason::kArpMalformed:
      return DropReason::kVxlanInnerTruncated;
    case DropReason::kEthertypeUnsupported:
    case DropReason::kIpv6Unsupported:
      return DropReason::kVxlanInnerNotIpv4;
    default:
      return r;
  }
}

}  // namespace nodeplane::overlay
