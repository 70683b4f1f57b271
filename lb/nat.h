// Address/port translation of a parsed IPv4 packet in place, with incremental checksum updates
// (RFC 1624): the IPv4 header, the TCP/UDP checksum (pseudo-header and port), or the ICMP
// checksum for an echo identifier. A partial TCP/UDP checksum (a pod's checksum offload: the
// mbuf's RTE_MBUF_F_TX_L4_MASK) holds only the pseudo-header sum: there the address is updated
// and the port left alone. Used per packet: inline, no branches beyond the protocol.
#pragma once

#include <netinet/in.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "core/checksum.h"
#include "core/packet.h"

namespace nodeplane::lb {

// The IPv4 header's source or destination address (and its checksum, and the meta's copy);
// returns the address it replaced.
inline rte_be32_t rewriteIpv4Address(rte_mbuf* m, PacketMeta& meta, bool source, rte_be32_t ip) {
  auto* iph = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  const rte_be32_t oldIp = source ? iph->src_addr : iph->dst_addr;
  if (source)
    iph->src_addr = ip;
  else
    iph->dst_addr = ip;
  iph->hdr_checksum = checksumUpdate32(iph->hdr_checksum, oldIp, ip);
  (source ? meta.srcIp : meta.dstIp) = ip;
  return oldIp;
}

// Rewrites the source (`source` true) or destination address and port. For ICMP echo the "port"
// is the identifier, whichever side is rewritten.
inline void natRewrite(rte_mbuf* m, PacketMeta& meta, bool source, rte_be32_t ip, rte_be16_t port) {
  const rte_be32_t oldIp = rewriteIpv4Address(m, meta, source, ip);
  if (meta.flags & kFlagLaterFragment) return;  // no L4 header here
  rte_be16_t& metaPort = source ? meta.srcPort : meta.dstPort;
  const rte_be16_t oldPort = metaPort;
  switch (meta.ipProto) {
    case IPPROTO_TCP: {
      auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
      if (m->ol_flags & RTE_MBUF_F_TX_L4_MASK)
        tcp->cksum = partialChecksumUpdate32(tcp->cksum, oldIp, ip);
      else
        tcp->cksum = checksumUpdate16(checksumUpdate32(tcp->cksum, oldIp, ip), oldPort, port);
      if (source)
        tcp->src_port = port;
      else
        tcp->dst_port = port;
      metaPort = port;
      return;
    }
    case IPPROTO_UDP: {
      auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, meta.l4Offset);
      if (m->ol_flags & RTE_MBUF_F_TX_L4_MASK) {
        udp->dgram_cksum = partialChecksumUpdate32(udp->dgram_cksum, oldIp, ip);
      } else if (udp->dgram_cksum != 0) {  // 0: no checksum, and it stays that way
        rte_be16_t c =
            checksumUpdate16(checksumUpdate32(udp->dgram_cksum, oldIp, ip), oldPort, port);
        udp->dgram_cksum = c == 0 ? 0xffff : c;
      }
      if (source)
        udp->src_port = port;
      else
        udp->dst_port = port;
      metaPort = port;
      return;
    }
    case IPPROTO_ICMP: {
      // Echo: the identifier is the one "port" of both directions (the parser keeps it in
      // srcPort and type/code in dstPort).
      auto* icmp = rte_pktmbuf_mtod_offset(m, rte_icmp_hdr*, meta.l4Offset);
      if (icmp->icmp_ident == port) return;
      icmp->icmp_cksum = checksumUpdate16(icmp->icmp_cksum, icmp->icmp_ident, port);
      icmp->icmp_ident = port;
      meta.srcPort = port;
      return;
    }
    default:
      return;
  }
}

// Rewrites the source or destination address only (a stateless 1:1 translation: ports and ICMP
// identifiers stay): the IPv4 header and the TCP/UDP pseudo-header sum.
inline void natRewriteAddress(rte_mbuf* m, PacketMeta& meta, bool source, rte_be32_t ip) {
  const rte_be32_t oldIp = rewriteIpv4Address(m, meta, source, ip);
  if (meta.flags & kFlagLaterFragment) return;  // no L4 header here
  const bool partial = m->ol_flags & RTE_MBUF_F_TX_L4_MASK;
  if (meta.ipProto == IPPROTO_TCP) {
    auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
    tcp->cksum = partial ? partialChecksumUpdate32(tcp->cksum, oldIp, ip)
                         : checksumUpdate32(tcp->cksum, oldIp, ip);
  } else if (meta.ipProto == IPPROTO_UDP) {
    auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, meta.l4Offset);
    if (partial) {
      udp->dgram_cksum = partialChecksumUpdate32(udp->dgram_cksum, oldIp, ip);
    } else if (udp->dgram_cksum != 0) {
      const rte_be16_t c = checksumUpdate32(udp->dgram_cksum, oldIp, ip);
      udp->dgram_cksum = c == 0 ? 0xffff : c;
    }
  }
}

}  // namespace nodeplane::lb
