// VXLAN encapsulation of an inner Ethernet frame for one remote node: copy the node's template,
// fill in the lengths, the outer IPv4 checksum (from the template's precomputed partial sum, or
// left to the NIC) and the entropy source port. Inline: it runs once per overlay packet.
#pragma once

#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include <cstring>

#include "core/packet.h"
#include "overlay/overlay_table.h"

namespace nodeplane::overlay {

// A hash of the inner flow (addresses, ports, protocol): the same flow always gets the same outer
// source port, different flows spread over ECMP paths and RSS queues.
inline uint16_t flowEntropy(const PacketMeta& meta) {
  const uint64_t addresses = static_cast<uint64_t>(meta.srcIp) << 32 | meta.dstIp;
  const uint32_t ports = static_cast<uint32_t>(meta.srcPort) << 16 | meta.dstPort;
  uint32_t h = rte_hash_crc_8byte(addresses, ports ^ meta.ipProto);
  return static_cast<uint16_t>(h ^ (h >> 16));
}

// Prepends the outer headers for `node` to the inner frame `m` (whose inner Ethernet header is
// already set). False when the mbuf lacks the headroom (the caller drops the packet).
inline bool encapsulate(rte_mbuf* m, const RemoteNode& node, const OverlayTable& table,
                        uint16_t entropy) {
  const uint32_t innerLength = m->pkt_len;
  auto* outer = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kEncapLength));
  if (unlikely(outer == nullptr)) return false;
  std::memcpy(outer, node.outer, kEncapLength);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(outer + kOuterEthLength);
  const uint16_t ipLength = static_cast<uint16_t>(innerLength + kEncapLength - kOuterEthLength);
  ip->total_length = rte_cpu_to_be_16(ipLength);
  if (m->ol_flags & (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)) {
    // The inner packet has offloads left to do (a pod's TSO or checksum): mark it VXLAN for the
    // segmentation on the way out (dataplane/offload.h), which writes every IPv4 checksum.
    m->ol_flags |= RTE_MBUF_F_TX_TUNNEL_VXLAN | RTE_MBUF_F_TX_OUTER_IPV4;
    m->outer_l2_len = kOuterEthLength;
    m->outer_l3_len = kOuterIpLength;
  } else if (table.txIpChecksumOffload()) {
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    m->l2_len = kOuterEthLength;
    m->l3_len = kOuterIpLength;
  } else {
    uint32_t sum = node.ipSumNoLength + ip->total_length;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip->hdr_checksum = static_cast<uint16_t>(~sum);
  }
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(kEntropyPortBase | (entropy & kEntropyPortMask));
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(ipLength - kOuterIpLength));
  return true;
}

}  // namespace nodeplane::overlay
