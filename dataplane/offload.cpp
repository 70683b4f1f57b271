#include "dataplane/offload.h"

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_gro.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <rte_vxlan.h>

#include <algorithm>
#include <cstring>

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/vnet.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint16_t kEthLength = sizeof(rte_ether_hdr);
constexpr uint16_t kMinIpLength = sizeof(rte_ipv4_hdr);
// What rte_gso counts as a VXLAN packet's l2_len: outer UDP, VXLAN and the inner Ethernet header.
constexpr uint16_t kVxlanTunnelLength = sizeof(rte_udp_hdr) + sizeof(rte_vxlan_hdr) + kEthLength;

// Where a packet's (inner, for VXLAN) headers are; all of them lie in the first segment.
struct Headers {
  bool tunnel = false;  // VXLAN, as the overlay marked it
  uint16_t outerL3 = 0;
  uint16_t outerL3Length = 0;
  uint16_t l3 = 0;
  uint16_t l3Length = 0;
  uint16_t l4 = 0;
  uint16_t l4Length = 0;  // TCP: with options; UDP: 8
  uint8_t protocol = 0;
};

bool ipv4At(const rte_mbuf* m, uint16_t offset, uint16_t& length) {
  if (offset + kMinIpLength > m->data_len) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, offset);
  if ((ip->version_ihl >> 4) != 4) return false;
  length = static_cast<uint16_t>(rte_ipv4_hdr_len(ip));
  return length >= kMinIpLength && offset + length <= m->data_len;
}

bool locate(const rte_mbuf* m, Headers& h) {
  uint16_t offset = 0;
  h.tunnel = (m->ol_flags & RTE_MBUF_F_TX_TUNNEL_MASK) == RTE_MBUF_F_TX_TUNNEL_VXLAN;
  if (h.tunnel) {
    h.outerL3 = kEthLength;
    if (!ipv4At(m, h.outerL3, h.outerL3Length)) return false;
    offset = static_cast<uint16_t>(h.outerL3 + h.outerL3Length + sizeof(rte_udp_hdr) +
                                   sizeof(rte_vxlan_hdr));
  }
  if (offset + kEthLength > m->data_len) return false;
  const auto* eth = rte_pktmbuf_mtod_offset(m, const rte_ether_hdr*, offset);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return false;
  h.l3 = static_cast<uint16_t>(offset + kEthLength);
  if (!ipv4At(m, h.l3, h.l3Length)) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, h.l3);
  h.protocol = ip->next_proto_id;
  h.l4 = static_cast<uint16_t>(h.l3 + h.l3Length);
  if (h.protocol == IPPROTO_UDP) {
    h.l4Length = sizeof(rte_udp_hdr);
  } else if (h.protocol == IPPROTO_TCP) {
    if (h.l4 + sizeof(rte_tcp_hdr) > m->data_len) return false;
    const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, h.l4);
    h.l4Length = static_cast<uint16_t>((tcp->data_off >> 4) * 4);
    if (h.l4Length < sizeof(rte_tcp_hdr)) return false;
  } else {
    return false;
  }
  return h.l4 + h.l4Length <= m->data_len;
}

void setIpChecksum(rte_mbuf* m, uint16_t offset) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, offset);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

// The complete TCP or UDP checksum over the whole datagram (every segment of `m`).
// The TCP/UDP checksum of a packet whose L4 part may span several segments. Not DPDK's
// rte_ipv4_udptcp_cksum_mbuf: in 22.11 it byte-swaps a segment's sum unfolded when the segment
// starts at an odd offset of the L4 data, losing the carries, so a GSO segment whose payload
// spans pieces of odd length (a chained super-packet's) went out with a wrong checksum. Each
// piece is folded to 16 bits here before the swap.
uint16_t l4ChecksumOfChain(const rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t l4Offset) {
  const uint32_t ipHeader = (ip->version_ihl & 0xf) * 4u;
  uint32_t remaining = rte_be_to_cpu_16(ip->total_length) - ipHeader;
  uint32_t sum = rte_ipv4_phdr_cksum(ip, 0);
  uint32_t done = 0;
  uint32_t offset = l4Offset;
  for (const rte_mbuf* seg = m; seg != nullptr && remaining != 0; seg = seg->next) {
    if (offset >= seg->data_len) {
      offset -= seg->data_len;
      continue;
    }
    const uint32_t n = std::min<uint32_t>(seg->data_len - offset, remaining);
    uint32_t part = __rte_raw_cksum_reduce(
        __rte_raw_cksum(rte_pktmbuf_mtod_offset(seg, const void*, offset), n, 0));
    if (done & 1) part = rte_bswap16(static_cast<uint16_t>(part));
    sum += part;
    done += n;
    remaining -= n;
    offset = 0;
  }
  const uint16_t c = static_cast<uint16_t>(~__rte_raw_cksum_reduce(sum));
  return c == 0 ? 0xffff : c;
}

void setL4Checksum(rte_mbuf* m, const Headers& h) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, h.l3);
  if (h.protocol == IPPROTO_TCP) {
    auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, h.l4);
    tcp->cksum = 0;
    tcp->cksum = l4ChecksumOfChain(m, ip, h.l4);
  } else {
    auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, h.l4);
    udp->dgram_cksum = 0;
    udp->dgram_cksum = l4ChecksumOfChain(m, ip, h.l4);
  }
}

}  // namespace

rte_gso_ctx makeGsoContext(rte_mempool* direct, rte_mempool* indirect) {
  rte_gso_ctx ctx{};
  ctx.direct_pool = direct;
  ctx.indirect_pool = indirect;
  ctx.gso_types = RTE_ETH_TX_OFFLOAD_TCP_TSO | RTE_ETH_TX_OFFLOAD_VXLAN_TNL_TSO;
  ctx.gso_size = RTE_ETHER_MAX_LEN;  // per packet: its headers + its own segment size
  return ctx;
}

uint16_t prepareForWire(rte_mbuf* m, rte_mbuf** out, const rte_gso_ctx& gso,
                        WorkerCounters& counters) {
  if (!hasPartialChecksum(m) && !isTcpSuperPacket(m)) {
    out[0] = m;
    return 1;
  }
  Headers h;
  if (!locate(m, h) || (isTcpSuperPacket(m) && h.protocol != IPPROTO_TCP)) {
    counters.drop(DropReason::kOffloadHeadersUnreadable);
    rte_pktmbuf_free(m);
    return 0;
  }
  uint16_t count = 1;
  out[0] = m;
  if (isTcpSuperPacket(m)) {
    const uint32_t headers = h.l4 + h.l4Length;
    const uint32_t payload = m->pkt_len > headers ? m->pkt_len - headers : 0;
    if (payload > static_cast<uint32_t>(m->tso_segsz) * kMaxGsoSegments) {
      counters.drop(DropReason::kGsoTooManySegments);
      rte_pktmbuf_free(m);
      return 0;
    }
    // rte_gso's view of the headers (for VXLAN: the outer ones apart, the tunnel's in l2_len).
    m->ol_flags |= RTE_MBUF_F_TX_IPV4;
    if (h.tunnel) {
      m->ol_flags |= RTE_MBUF_F_TX_OUTER_IPV4;
      m->outer_l2_len = kEthLength;
      m->outer_l3_len = h.outerL3Length;
      m->l2_len = kVxlanTunnelLength;
    } else {
      m->l2_len = kEthLength;
    }
    m->l3_len = h.l3Length;
    m->l4_len = h.l4Length;
    rte_gso_ctx ctx = gso;
    ctx.gso_size = static_cast<uint16_t>(std::clamp<uint32_t>(
        headers + static_cast<uint32_t>(m->tso_segsz), RTE_GSO_SEG_SIZE_MIN, UINT16_MAX));
    const int made = rte_gso_segment(m, &ctx, out, kMaxGsoSegments);
    if (made < 0) {
      counters.drop(DropReason::kGsoNoMbuf);
      rte_pktmbuf_free(m);
      return 0;
    }
    if (made > 0) {  // the segments hold references to m's data
      rte_pktmbuf_free(m);
      count = static_cast<uint16_t>(made);
      counters.gsoSuperPackets.add();
      counters.gsoSegments.add(count);
    }
  } else {
    counters.checksumsCompleted.add();
  }
  for (uint16_t i = 0; i < count; ++i) {
    rte_mbuf* s = out[i];
    if (h.tunnel) setIpChecksum(s, h.outerL3);  // the overlay left it to us
    if (count > 1) setIpChecksum(s, h.l3);      // rte_gso rewrote lengths and IDs, not checksums
    setL4Checksum(s, h);
    clearOffloads(s);
  }
  return count;
}

void completeChecksum(rte_mbuf* m, uint16_t l3Offset, uint16_t l4Offset, uint8_t protocol) {
  if (hasPartialChecksum(m) && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP)) {
    Headers h;
    h.l3 = l3Offset;
    h.l4 = l4Offset;
    h.protocol = protocol;
    setL4Checksum(m, h);
  }
  clearOffloads(m);
}

namespace {

// A TCP segment from a wire that GRO may merge: one segment, untagged IPv4 without fragmenting,
// ACK alone among the flags, some payload, a checksum that verifies. Marks it for rte_gro and
// remembers its payload length (the merged packet's segment size) in tso_segsz.
bool markForGro(rte_mbuf* m, WorkerCounters& counters) {
  if (isPodPort(m->port) || m->nb_segs != 1 ||
      (m->ol_flags & (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)))
    return false;
  if (m->data_len < kEthLength + kMinIpLength + sizeof(rte_tcp_hdr)) return false;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, kEthLength);
  uint16_t ipLength = 0;
  if (!ipv4At(m, kEthLength, ipLength) || ip->next_proto_id != IPPROTO_TCP ||
      (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
    return false;
  const uint16_t total = rte_be_to_cpu_16(ip->total_length);
  const uint16_t l4 = kEthLength + ipLength;
  if (l4 + sizeof(rte_tcp_hdr) > m->data_len || kEthLength + total > m->data_len) return false;
  const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, l4);
  const uint16_t tcpLength = static_cast<uint16_t>((tcp->data_off >> 4) * 4);
  if (tcp->tcp_flags != RTE_TCP_ACK_FLAG || tcpLength < sizeof(rte_tcp_hdr) ||
      ipLength + tcpLength >= total)
    return false;
  if (rte_ipv4_udptcp_cksum_verify(ip, tcp) != 0) {
    counters.groChecksumBad.add();
    return false;
  }
  m->packet_type = RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_TCP;
  m->l2_len = kEthLength;
  m->l3_len = ipLength;
  m->l4_len = tcpLength;
  m->tso_segsz = static_cast<uint16_t>(total - ipLength - tcpLength);
  return true;
}

// Runs rte_gro over `run` (all marked) in place; turns what it merged into TCP super-packets.
uint16_t mergeRun(rte_mbuf** run, uint16_t n, WorkerCounters& counters) {
  uint16_t out = n;
  if (n > 1) {
    rte_gro_param param{};
    param.gro_types = RTE_GRO_TCP_IPV4;
    param.max_flow_num = n;  // room for every packet: none is left unprocessed (reordered)
    param.max_item_per_flow = n;
    out = rte_gro_reassemble_burst(run, n, &param);
  }
  uint16_t merged = 0;
  for (uint16_t i = 0; i < out; ++i) {
    rte_mbuf* m = run[i];
    m->packet_type = 0;
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthLength);
    const uint32_t payload = rte_be_to_cpu_16(ip->total_length) - m->l3_len - m->l4_len;
    if (m->nb_segs == 1 || payload <= m->tso_segsz) {
      m->tso_segsz = 0;
      continue;
    }
    ++merged;
    // rte_gro set the new total length, not the checksums: the IPv4 one complete, the TCP one
    // partial (the pseudo-header sum, as a sender with TSO leaves it).
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, kEthLength + m->l3_len);
    tcp->cksum = rte_ipv4_phdr_cksum(ip, 0);
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_TCP_SEG;
  }
  if (merged != 0) {
    counters.groSuperPackets.add(merged);
    counters.groSegments.add(n - out + merged);
  }
  return out;
}

}  // namespace

uint16_t coalesceForPod(rte_mbuf** pkts, uint16_t n, WorkerCounters& counters) {
  if (n < 2) return n;
  rte_mbuf* result[kMaxBurst];
  rte_mbuf* run[kMaxBurst];
  uint16_t count = 0;
  uint16_t runLength = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (markForGro(pkts[i], counters)) {
      run[runLength++] = pkts[i];
      continue;
    }
    // Anything else ends the run first: it keeps its place after what came before it.
    if (runLength != 0) {
      const uint16_t merged = mergeRun(run, runLength, counters);
      std::memcpy(result + count, run, merged * sizeof(rte_mbuf*));
      count = static_cast<uint16_t>(count + merged);
      runLength = 0;
    }
    result[count++] = pkts[i];
  }
  if (runLength != 0) {
    const uint16_t merged = mergeRun(run, runLength, counters);
    std::memcpy(result + count, run, merged * sizeof(rte_mbuf*));
    count = static_cast<uint16_t>(count + merged);
  }
  std::memcpy(pkts, result, count * sizeof(rte_mbuf*));
  return count;
}

}  // namespace nodeplane::dataplane
