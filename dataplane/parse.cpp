#include "dataplane/parse.h"

#include <netinet/in.h>
#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_sctp.h>
#include <rte_tcp.h>
#include <rte_udp.h>

namespace nodeplane::dataplane {

namespace {

// Zero, multicast or broadcast: never the source of a packet. The reserved 240.0.0.0/4 is a
// source as Linux has treated it since 2.6.25: Submariner's Globalnet default (242.0.0.0/8) is
// there, and so may linked clusters' global CIDRs be (control/global_net.h).
inline bool isInvalidSource(rte_be32_t be) {
  const uint32_t a = rte_be_to_cpu_32(be);
  return a == 0 || (a >> 28) == 0xe || a == 0xffffffffu;
}

constexpr uint16_t kEtherTypeIpv4 = RTE_ETHER_TYPE_IPV4;
constexpr uint16_t kEtherTypeArp = RTE_ETHER_TYPE_ARP;
constexpr uint16_t kEtherTypeIpv6 = RTE_ETHER_TYPE_IPV6;
constexpr uint16_t kEtherTypeVlan = RTE_ETHER_TYPE_VLAN;
constexpr uint16_t kEtherTypeQinQ = RTE_ETHER_TYPE_QINQ;
constexpr int kMaxVlanTags = 2;

// The header of `need` bytes at `offset` must lie in the first segment. Returns kNone when it
// does; otherwise the reason: `truncated` when the packet is too short, kHeadersNotContiguous
// when the bytes exist but in a later segment.
inline DropReason require(const rte_mbuf* m, uint32_t offset, uint32_t need, DropReason truncated) {
  if (offset + need <= m->data_len) return DropReason::kNone;
  return offset + need <= m->pkt_len ? DropReason::kHeadersNotContiguous : truncated;
}

bool parseL4(const rte_mbuf* m, const uint8_t* data, PacketMeta& meta, uint32_t l4Len) {
  const uint32_t off = meta.l4Offset;
  // For a first fragment, the L4 header must be complete inside this fragment (RFC 1858).
  const bool firstFragment = meta.flags & kFlagFragment;
  auto fail = [&](DropReason r) {
    meta.setDrop(firstFragment && r != DropReason::kHeadersNotContiguous
                     ? DropReason::kIpv4FragmentWithoutL4
                     : r);
    return false;
  };
  switch (meta.ipProto) {
    case IPPROTO_TCP: {
      if (l4Len < sizeof(rte_tcp_hdr)) return fail(DropReason::kTcpTruncated);
      if (auto r = require(m, off, sizeof(rte_tcp_hdr), DropReason::kTcpTruncated);
          r != DropReason::kNone)
        return fail(r);
      auto* tcp = reinterpret_cast<const rte_tcp_hdr*>(data + off);
      uint32_t dataOff = (tcp->data_off >> 4) * 4u;
      if (dataOff < sizeof(rte_tcp_hdr)) return fail(DropReason::kTcpBadDataOffset);
      if (dataOff > l4Len) return fail(DropReason::kTcpTruncated);
      meta.srcPort = tcp->src_port;
      meta.dstPort = tcp->dst_port;
      meta.tcpFlags = tcp->tcp_flags;
      return true;
    }
    case IPPROTO_UDP: {
      if (l4Len < sizeof(rte_udp_hdr)) return fail(DropReason::kUdpTruncated);
      if (auto r = require(m, off, sizeof(rte_udp_hdr), DropReason::kUdpTruncated);
          r != DropReason::kNone)
        return fail(r);
      auto* udp = reinterpret_cast<const rte_udp_hdr*>(data + off);
      uint32_t udpLen = rte_be_to_cpu_16(udp->dgram_len);
      // A fragmented datagram's UDP length covers all fragments; only check the lower bound.
      if (udpLen < sizeof(rte_udp_hdr) || (!firstFragment && udpLen > l4Len)) {
        meta.setDrop(DropReason::kUdpBadLength);
        return false;
      }
      meta.srcPort = udp->src_port;
      meta.dstPort = udp->dst_port;
      return true;
    }
    case IPPROTO_ICMP: {
      if (l4Len < sizeof(rte_icmp_hdr)) return fail(DropReason::kIcmpTruncated);
      if (auto r = require(m, off, sizeof(rte_icmp_hdr), DropReason::kIcmpTruncated);
          r != DropReason::kNone)
        return fail(r);
      auto* icmp = reinterpret_cast<const rte_icmp_hdr*>(data + off);
      meta.srcPort = icmp->icmp_ident;
      meta.dstPort = rte_cpu_to_be_16(icmp->icmp_type << 8 | icmp->icmp_code);
      return true;
    }
    case IPPROTO_SCTP: {
      if (l4Len < sizeof(rte_sctp_hdr)) return fail(DropReason::kSctpTruncated);
      if (auto r = require(m, off, sizeof(rte_sctp_hdr), DropReason::kSctpTruncated);
          r != DropReason::kNone)
        return fail(r);
      auto* sctp = reinterpret_cast<const rte_sctp_hdr*>(data + off);
      meta.srcPort = sctp->src_port;
      meta.dstPort = sctp->dst_port;
      return true;
    }
    default:
      return true;  // other protocols are routed on L3 alone
  }
}

void parseIpv4(const rte_mbuf* m, const uint8_t* data, PacketMeta& meta) {
  const uint32_t off = meta.l3Offset;
  if (auto r = require(m, off, sizeof(rte_ipv4_hdr), DropReason::kIpv4Truncated);
      r != DropReason::kNone)
    return meta.setDrop(r);
  auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(data + off);
  if ((ip->version_ihl >> 4) != 4) return meta.setDrop(DropReason::kIpv4BadVersion);
  const uint32_t ihl = (ip->version_ihl & 0xf) * 4u;
  if (ihl < sizeof(rte_ipv4_hdr)) return meta.setDrop(DropReason::kIpv4BadIhl);
  if (auto r = require(m, off, ihl, DropReason::kIpv4IhlBeyondPacket); r != DropReason::kNone)
    return meta.setDrop(r);
  const uint32_t totalLength = rte_be_to_cpu_16(ip->total_length);
  if (totalLength < ihl) return meta.setDrop(DropReason::kIpv4BadTotalLength);
  if (totalLength > m->pkt_len - off) return meta.setDrop(DropReason::kIpv4TotalLengthBeyondFrame);

  const uint64_t csumFlags = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (csumFlags == RTE_MBUF_F_RX_IP_CKSUM_BAD) return meta.setDrop(DropReason::kIpv4BadChecksum);
  if (csumFlags != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, ihl) != 0xffff)
    return meta.setDrop(DropReason::kIpv4BadChecksum);
  // Here, so that every ingress checks it: pod ports, the uplink, and frames out of a tunnel.
  if (isInvalidSource(ip->src_addr)) return meta.setDrop(DropReason::kIpv4SourceInvalid);

  meta.l3 = L3Kind::kIpv4;
  meta.srcIp = ip->src_addr;
  meta.dstIp = ip->dst_addr;
  meta.ipProto = ip->next_proto_id;
  meta.ipTotalLength = static_cast<uint16_t>(totalLength);
  meta.l4Offset = static_cast<uint16_t>(off + ihl);

  const uint16_t fragField = rte_be_to_cpu_16(ip->fragment_offset);
  const uint16_t fragOffset = fragField & RTE_IPV4_HDR_OFFSET_MASK;
  if (fragField & RTE_IPV4_HDR_DF_FLAG) meta.flags |= kFlagDontFragment;
  if (fragOffset != 0 || (fragField & RTE_IPV4_HDR_MF_FLAG)) meta.flags |= kFlagFragment;
  if (fragOffset != 0) {
    // A TCP fragment at offset 8 bytes would overwrite the ports and flags (RFC 1858).
    if (fragOffset == 1 && meta.ipProto == IPPROTO_TCP)
      return meta.setDrop(DropReason::kIpv4FragmentWithoutL4);
    meta.flags |= kFlagLaterFragment;
    return;
  }
  parseL4(m, data, meta, totalLength - ihl);
}

void parseArp(const rte_mbuf* m, PacketMeta& meta) {
  if (auto r = require(m, meta.l3Offset, sizeof(rte_arp_hdr), DropReason::kArpMalformed);
      r != DropReason::kNone)
    return meta.setDrop(r);
  auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, meta.l3Offset);
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
      arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4)
    return meta.setDrop(DropReason::kArpMalformed);
  meta.l3 = L3Kind::kArp;
  meta.srcIp = arp->arp_data.arp_sip;
  meta.dstIp = arp->arp_data.arp_tip;
}

}  // namespace

void parsePacket(const rte_mbuf* m, PacketMeta& meta) {
  meta = PacketMeta{};
  const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
  if (auto r = require(m, 0, sizeof(rte_ether_hdr), DropReason::kEthTruncated);
      r != DropReason::kNone)
    return meta.setDrop(r);

  uint32_t offset = offsetof(rte_ether_hdr, ether_type);
  uint16_t etherType = rte_be_to_cpu_16(reinterpret_cast<const rte_ether_hdr*>(data)->ether_type);
  offset += 2;
  if (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) meta.flags |= kFlagVlanTagged;
  for (int tags = 0; etherType == kEtherTypeVlan || etherType == kEtherTypeQinQ; ++tags) {
    if (tags == kMaxVlanTags) return meta.setDrop(DropReason::kEthVlanTooDeep);
    if (auto r = require(m, offset, sizeof(rte_vlan_hdr), DropReason::kEthTruncated);
        r != DropReason::kNone)
      return meta.setDrop(r);
    auto* vlan = reinterpret_cast<const rte_vlan_hdr*>(data + offset);
    etherType = rte_be_to_cpu_16(vlan->eth_proto);
    offset += sizeof(rte_vlan_hdr);
    meta.flags |= kFlagVlanTagged;
  }
  meta.l3Offset = static_cast<uint16_t>(offset);

  switch (etherType) {
    case kEtherTypeIpv4:
      return parseIpv4(m, data, meta);
    case kEtherTypeArp:
      return parseArp(m, meta);
    case kEtherTypeIpv6:
      return meta.setDrop(DropReason::kIpv6Unsupported);
    default:
      return meta.setDrop(DropReason::kEthertypeUnsupported);
  }
}

}  // namespace nodeplane::dataplane
