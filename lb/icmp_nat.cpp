#include "lb/icmp_nat.h"

#include <cstring>

#include <netinet/in.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "core/checksum.h"
#include "core/icmp.h"
#include "lb/nat.h"

namespace nodeplane::lb {

bool isIcmpError(uint8_t type) {
  return type == kIcmpDestinationUnreachable || type == kIcmpTimeExceeded ||
         type == kIcmpParameterProblem;
}

bool translateIcmpError(rte_mbuf* m, PacketMeta& meta, ConnTracker& conntrack, unsigned worker) {
  if (meta.ipProto != IPPROTO_ICMP || (meta.flags & kFlagFragment)) return false;
  const uint32_t icmpLength = meta.ipTotalLength - (meta.l4Offset - meta.l3Offset);
  auto* icmp = rte_pktmbuf_mtod_offset(m, rte_icmp_hdr*, meta.l4Offset);
  if (!isIcmpError(icmp->icmp_type) || icmpLength < sizeof(rte_icmp_hdr) + sizeof(rte_ipv4_hdr))
    return false;
  const uint32_t quoteOffset = meta.l4Offset + sizeof(rte_icmp_hdr);
  if (meta.l4Offset + icmpLength > m->data_len) return false;  // quote not contiguous
  auto* q = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, quoteOffset);
  const uint32_t qihl = (q->version_ihl & 0xf) * 4u;
  const uint32_t quoteLength = icmpLength - sizeof(rte_icmp_hdr);
  if ((q->version_ihl >> 4) != 4 || qihl < sizeof(rte_ipv4_hdr) || quoteLength < qihl + 8)
    return false;
  const uint8_t proto = q->next_proto_id;
  uint8_t* l4 = reinterpret_cast<uint8_t*>(q) + qihl;

  // The quoted packet's tuple, as FlowKey spells it, reversed: that is how a reply to it looks.
  FlowKey quoted;
  quoted.src = q->src_addr;
  quoted.dst = q->dst_addr;
  quoted.proto = proto;
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    std::memcpy(&quoted.sport, l4, 2);
    std::memcpy(&quoted.dport, l4 + 2, 2);
  } else if (proto == IPPROTO_ICMP && (l4[0] == RTE_IP_ICMP_ECHO_REQUEST || l4[0] == 0)) {
    rte_be16_t id;
    std::memcpy(&id, l4 + 4, 2);
    (l4[0] == RTE_IP_ICMP_ECHO_REQUEST ? quoted.sport : quoted.dport) = id;
  } else {
    return false;
  }
  const FlowKey lookup = quoted.reversed();
  const FlowKey* keys[] = {&lookup};
  ConnRef ref;
  if (!conntrack.lookupBulk(worker, keys, 1, &ref)) return false;
  const ConnEntry& e = conntrack.entry(ref);
  if (!(e.flags() & (kConnDnat | kConnSnat))) return false;

  // The quoted packet before translation, and who must receive the error.
  //   matched the reply tuple: the quote is an original-direction packet -> it was `orig`
  //   matched the orig tuple: the quote is a reply-direction packet -> it was `reply`
  const FlowKey& before = ref.reply ? e.orig : e.reply;
  const FlowKey& after = ref.reply ? e.reply : e.orig;  // its counterpart (wire form reversed)

  // Quoted IPv4 header: addresses, then its checksum (recomputed: cheap, and errors are rare).
  q->src_addr = before.src;
  q->dst_addr = before.dst;
  q->hdr_checksum = 0;
  q->hdr_checksum = rte_ipv4_cksum(q);
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    rte_be16_t oldSport, oldDport;
    std::memcpy(&oldSport, l4, 2);
    std::memcpy(&oldDport, l4 + 2, 2);
    std::memcpy(l4, &before.sport, 2);
    std::memcpy(l4 + 2, &before.dport, 2);
    // The quoted L4 checksum, where the quote is long enough to hold it.
    const uint32_t csumAt = proto == IPPROTO_TCP ? 16 : 6;
    if (quoteLength >= qihl + csumAt + 2) {
      rte_be16_t c;
      std::memcpy(&c, l4 + csumAt, 2);
      if (proto == IPPROTO_TCP || c != 0) {
        c = checksumUpdate32(c, quoted.src, before.src);
        c = checksumUpdate32(c, quoted.dst, before.dst);
        c = checksumUpdate16(c, oldSport, before.sport);
        c = checksumUpdate16(c, oldDport, before.dport);
        std::memcpy(l4 + csumAt, &c, 2);
      }
    }
  } else {  // ICMP echo: the identifier
    const rte_be16_t id = l4[0] == RTE_IP_ICMP_ECHO_REQUEST ? before.sport : before.dport;
    std::memcpy(l4 + 4, &id, 2);
  }
  icmp->icmp_cksum = 0;
  icmp->icmp_cksum = static_cast<uint16_t>(~rte_raw_cksum(icmp, icmpLength));

  // The error itself: to whoever sent the quoted packet before translation; from the address
  // that packet was sent to, if the error came from the translated one.
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  const rte_be32_t newDst = before.src;
  const rte_be32_t newSrc = ip->src_addr == after.src ? before.dst : ip->src_addr;
  ip->hdr_checksum = checksumUpdate32(ip->hdr_checksum, ip->dst_addr, newDst);
  ip->dst_addr = newDst;
  ip->hdr_checksum = checksumUpdate32(ip->hdr_checksum, ip->src_addr, newSrc);
  ip->src_addr = newSrc;
  meta.dstIp = newDst;
  meta.srcIp = newSrc;
  meta.flags |= kFlagTranslated;
  return true;
}

}  // namespace nodeplane::lb
