#include "core/icmp.h"

#include <netinet/in.h>
#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>

#include <algorithm>
#include <cstring>

namespace nodeplane {

namespace {

constexpr uint16_t kIcmpErrorMaxLength = 576;  // RFC 1812 4.3.2.3
constexpr uint8_t kDefaultTtl = 64;
constexpr uint16_t kEthHeaderLength = sizeof(rte_ether_hdr);

// Queries and their replies; everything else may be an error message, and errors are never sent
// about those (RFC 1812 4.3.2.7), unknown types included.
bool isIcmpQuery(uint8_t type) {
  return type == RTE_IP_ICMP_ECHO_REPLY || type == RTE_IP_ICMP_ECHO_REQUEST ||
         type == kIcmpTimestamp || type == kIcmpTimestampReply;
}

// A reply built in the received mbuf is a packet of our own: whole (a super-packet's later
// segments are freed: its headers are in the first), its checksums complete, no offload left.
void becomeOwnPacket(rte_mbuf* m) {
  if (m->next != nullptr) {
    rte_pktmbuf_free(m->next);
    m->next = nullptr;
    m->nb_segs = 1;
    m->pkt_len = m->data_len;
  }
  m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
  m->tso_segsz = 0;
}

bool isMartianSource(rte_be32_t be) {
  uint32_t a = rte_be_to_cpu_32(be);
  return a == 0 || a == 0xffffffffu || (a >> 28) == 0xe;
}

}  // namespace

void buildArpReply(rte_mbuf* m, const PacketMeta& meta, const rte_ether_addr& ourMac) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, meta.l3Offset);
  rte_ether_addr requester = arp->arp_data.arp_sha;
  rte_be32_t requesterIp = arp->arp_data.arp_sip;
  rte_be32_t targetIp = arp->arp_data.arp_tip;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_sha = ourMac;
  arp->arp_data.arp_sip = targetIp;
  arp->arp_data.arp_tha = requester;
  arp->arp_data.arp_tip = requesterIp;
  eth->dst_addr = requester;
  eth->src_addr = ourMac;
}

void buildEchoReply(rte_mbuf* m, PacketMeta& meta, const rte_ether_addr& ourMac) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  auto* icmp = rte_pktmbuf_mtod_offset(m, rte_icmp_hdr*, meta.l4Offset);
  eth->dst_addr = eth->src_addr;
  eth->src_addr = ourMac;
  const rte_be32_t requester = ip->src_addr;
  ip->src_addr = ip->dst_addr;
  ip->dst_addr = requester;
  meta.dstIp = requester;
  meta.srcIp = ip->src_addr;
  ip->time_to_live = kDefaultTtl;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  // Type 8 -> 0 changes the first 16-bit word from 0x0800 to 0x0000.
  uint32_t sum = static_cast<uint16_t>(icmp->icmp_cksum) + rte_cpu_to_be_16(0x0800);
  sum = (sum & 0xffff) + (sum >> 16);
  icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
  icmp->icmp_cksum = static_cast<uint16_t>(sum);
}

IcmpErrorResult buildIcmpError(rte_mbuf* m, PacketMeta& meta, uint8_t type, uint8_t code,
                               rte_be32_t restOfHeader, rte_be32_t ourIp,
                               const rte_ether_addr& ourMac) {
  if (meta.flags & kFlagLaterFragment) return IcmpErrorResult::kNotAllowed;
  if (isMartianSource(meta.srcIp) || isMartianSource(meta.dstIp))
    return IcmpErrorResult::kNotAllowed;
  if (meta.ipProto == IPPROTO_ICMP) {
    auto* orig = rte_pktmbuf_mtod_offset(m, const rte_icmp_hdr*, meta.l4Offset);
    if (!isIcmpQuery(orig->icmp_type)) return IcmpErrorResult::kNotAllowed;
  }
  constexpr uint16_t kNewHeaders =
      kEthHeaderLength + sizeof(rte_ipv4_hdr) + sizeof(rte_icmp_hdr);  // 42
  constexpr uint16_t kMaxQuote = kIcmpErrorMaxLength - sizeof(rte_ipv4_hdr) - sizeof(rte_icmp_hdr);
  const uint16_t quote = std::min<uint16_t>(meta.ipTotalLength, kMaxQuote);
  // The quote must lie in the first segment (a super-packet's does); the rest is let go.
  if (meta.l3Offset + quote > m->data_len) return IcmpErrorResult::kUnbuildable;
  const int shift = kNewHeaders - meta.l3Offset;  // the quoted datagram moves to offset 42
  if (shift > 0 && rte_pktmbuf_headroom(m) < shift) return IcmpErrorResult::kUnbuildable;

  becomeOwnPacket(m);
  auto* oldEth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  const rte_ether_addr senderMac = oldEth->src_addr;
  const rte_be32_t senderIp = meta.srcIp;

  // Re-seat the data so the original IPv4 header starts right after the new headers.
  if (shift > 0) {
    rte_pktmbuf_prepend(m, static_cast<uint16_t>(shift));
  } else if (shift < 0) {
    auto* base = rte_pktmbuf_mtod(m, uint8_t*);
    std::memmove(base + kNewHeaders, base + meta.l3Offset, quote);
  }
  const uint16_t newLength = kNewHeaders + quote;
  m->data_len = newLength;
  m->pkt_len = newLength;

  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = senderMac;
  eth->src_addr = ourMac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);

  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHeaderLength);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0xc0;  // internetwork control
  ip->total_length = rte_cpu_to_be_16(newLength - kEthHeaderLength);
  ip->packet_id = 0;
  ip->fragment_offset = 0;
  ip->time_to_live = kDefaultTtl;
  ip->next_proto_id = IPPROTO_ICMP;
  ip->src_addr = ourIp;
  ip->dst_addr = senderIp;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);

  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(ip + 1);
  icmp->icmp_type = type;
  icmp->icmp_code = code;
  icmp->icmp_cksum = 0;
  std::memcpy(&icmp->icmp_ident, &restOfHeader, sizeof(restOfHeader));
  icmp->icmp_cksum = static_cast<uint16_t>(~rte_raw_cksum(icmp, sizeof(*icmp) + quote));

  meta.l3Offset = kEthHeaderLength;
  meta.l4Offset = kEthHeaderLength + sizeof(rte_ipv4_hdr);
  meta.ipTotalLength = newLength - kEthHeaderLength;
  meta.ipProto = IPPROTO_ICMP;
  meta.srcIp = ourIp;
  meta.dstIp = senderIp;
  meta.flags = 0;
  return IcmpErrorResult::kBuilt;
}

bool buildTcpReset(rte_mbuf* m, PacketMeta& meta) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
  if (tcp->tcp_flags & RTE_TCP_RST_FLAG) return false;
  const uint32_t headerLength = (tcp->data_off >> 4) * 4u;
  const uint32_t payload = meta.ipTotalLength - (meta.l4Offset - meta.l3Offset) - headerLength;
  const uint8_t flags = tcp->tcp_flags;
  const uint32_t seq = rte_be_to_cpu_32(tcp->sent_seq);
  const uint32_t ack = rte_be_to_cpu_32(tcp->recv_ack);
  const rte_be16_t sport = tcp->src_port, dport = tcp->dst_port;
  const rte_be32_t src = ip->src_addr, dst = ip->dst_addr;

  if (meta.l4Offset + sizeof(rte_tcp_hdr) > m->data_len) return false;
  becomeOwnPacket(m);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  std::swap(eth->src_addr, eth->dst_addr);
  // A fresh 20-byte IPv4 header and 20-byte TCP header right after it.
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_TCP;
  ip->src_addr = dst;
  ip->dst_addr = src;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* rst = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
  rst->src_port = dport;
  rst->dst_port = sport;
  if (flags & RTE_TCP_ACK_FLAG) {
    rst->sent_seq = rte_cpu_to_be_32(ack);
    rst->recv_ack = 0;
    rst->tcp_flags = RTE_TCP_RST_FLAG;
  } else {
    const uint32_t consumed =
        payload + ((flags & RTE_TCP_SYN_FLAG) ? 1 : 0) + ((flags & RTE_TCP_FIN_FLAG) ? 1 : 0);
    rst->sent_seq = 0;
    rst->recv_ack = rte_cpu_to_be_32(seq + consumed);
    rst->tcp_flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
  }
  rst->data_off = 5 << 4;
  rst->rx_win = 0;
  rst->tcp_urp = 0;
  rst->cksum = 0;
  rst->cksum = rte_ipv4_udptcp_cksum(ip, rst);
  const uint32_t length = meta.l3Offset + sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr);
  m->data_len = static_cast<uint16_t>(length);
  m->pkt_len = length;
  meta.l4Offset = meta.l3Offset + sizeof(rte_ipv4_hdr);
  meta.ipTotalLength = sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr);
  std::swap(meta.srcIp, meta.dstIp);
  std::swap(meta.srcPort, meta.dstPort);
  meta.flags = 0;
  return true;
}

}  // namespace nodeplane
