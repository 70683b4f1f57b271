#include "dataplane/vnet.h"

#include <netinet/in.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

namespace nodeplane::dataplane {

namespace {

constexpr uint16_t kTcpChecksumOffset = 16;  // in the TCP header
constexpr uint16_t kUdpChecksumOffset = 6;   // in the UDP header

}  // namespace

DropReason vnetToMbuf(const VnetHeader& h, uint32_t frameLength, rte_mbuf* m) {
  const uint8_t gso = h.gsoType & ~kVnetGsoEcn;
  constexpr uint8_t kKnownFlags = kVnetNeedsCsum | kVnetDataValid;
  if ((h.flags & ~kKnownFlags) != 0) return DropReason::kPodVnetGsoUnsupported;
  if (gso != kVnetGsoNone && gso != kVnetGsoTcpv4) return DropReason::kPodVnetGsoUnsupported;
  if (gso != kVnetGsoNone && h.gsoSize == 0) return DropReason::kPodVnetGsoWithoutSize;
  if (h.hdrLen > frameLength) return DropReason::kPodVnetHeaderBeyondPacket;
  if (h.flags & kVnetNeedsCsum) {
    if (uint32_t{h.csumStart} + h.csumOffset + 2 > frameLength)
      return DropReason::kPodVnetChecksumBeyondPacket;
    if (h.csumOffset == kTcpChecksumOffset)
      m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_IPV4;
    else if (h.csumOffset == kUdpChecksumOffset)
      m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM | RTE_MBUF_F_TX_IPV4;
    else
      return DropReason::kPodVnetChecksumBeyondPacket;
  }
  if (gso == kVnetGsoTcpv4) {
    // Linux sends TCP segmentation with a partial checksum, always.
    if ((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) != RTE_MBUF_F_TX_TCP_CKSUM)
      return DropReason::kPodVnetGsoUnsupported;
    m->ol_flags |= RTE_MBUF_F_TX_TCP_SEG;
    m->tso_segsz = h.gsoSize;
  }
  return DropReason::kNone;
}

VnetHeader vnetFromMbuf(const rte_mbuf* m) {
  VnetHeader h{};
  if (!hasPartialChecksum(m) && !isTcpSuperPacket(m)) return h;
  // Where the L4 header is: the frame is untagged Ethernet/IPv4 here (the route stage wrote it;
  // the parser saw every header in the first segment).
  if (m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr)) return h;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, sizeof(rte_ether_hdr));
  const uint16_t l4 = static_cast<uint16_t>(sizeof(rte_ether_hdr) + rte_ipv4_hdr_len(ip));
  const bool tcp =
      (m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM || isTcpSuperPacket(m);
  if (m->data_len < l4 + (tcp ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr))) return h;
  h.flags = kVnetNeedsCsum;
  h.csumStart = l4;
  h.csumOffset = tcp ? kTcpChecksumOffset : kUdpChecksumOffset;
  if (isTcpSuperPacket(m)) {
    const auto* tcph = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, l4);
    h.gsoType = kVnetGsoTcpv4;
    h.gsoSize = m->tso_segsz;
    h.hdrLen = static_cast<uint16_t>(l4 + (tcph->data_off >> 4) * 4);
  }
  return h;
}

}  // namespace nodeplane::dataplane
