#include "overlay/mss_clamp.h"

#include <netinet/in.h>
#include <rte_tcp.h>

#include "core/checksum.h"

namespace nodeplane::overlay {

namespace {
constexpr uint8_t kOptionEnd = 0;
constexpr uint8_t kOptionNop = 1;
constexpr uint8_t kOptionMss = 2;
}  // namespace

bool clampMss(rte_mbuf* m, const PacketMeta& meta, uint16_t maxMss) {
  if (meta.ipProto != IPPROTO_TCP || !(meta.tcpFlags & RTE_TCP_SYN_FLAG) ||
      (meta.flags & kFlagLaterFragment))
    return false;
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
  const uint32_t headerLength = (tcp->data_off >> 4) * 4u;
  if (meta.l4Offset + headerLength > m->data_len) return false;  // options in a later segment
  auto* base = reinterpret_cast<uint8_t*>(tcp);
  uint32_t i = sizeof(rte_tcp_hdr);
  while (i < headerLength) {
    const uint8_t kind = base[i];
    if (kind == kOptionEnd) return false;
    if (kind == kOptionNop) {
      ++i;
      continue;
    }
    if (i + 1 >= headerLength) return false;
    const uint8_t length = base[i + 1];
    if (length < 2 || i + length > headerLength) return false;  // malformed options: leave them
    if (kind == kOptionMss && length == 4) {
      const uint16_t mss = static_cast<uint16_t>(base[i + 2] << 8 | base[i + 3]);
      if (mss <= maxMss) return false;
      // The two bytes may straddle 16-bit words of the header: update each word touched.
      const uint32_t firstWord = (i + 2) & ~1u;
      const uint32_t lastWord = (i + 3) & ~1u;
      rte_be16_t before[2] = {*reinterpret_cast<rte_be16_t*>(base + firstWord),
                              *reinterpret_cast<rte_be16_t*>(base + lastWord)};
      base[i + 2] = static_cast<uint8_t>(maxMss >> 8);
      base[i + 3] = static_cast<uint8_t>(maxMss);
      // A partial checksum (the sender's offload) covers the options when it is finished.
      if (m->ol_flags & RTE_MBUF_F_TX_L4_MASK) return true;
      tcp->cksum =
          checksumUpdate16(tcp->cksum, before[0], *reinterpret_cast<rte_be16_t*>(base + firstWord));
      if (lastWord != firstWord)
        tcp->cksum = checksumUpdate16(tcp->cksum, before[1],
                                      *reinterpret_cast<rte_be16_t*>(base + lastWord));
      return true;
    }
    i += length;
  }
  return false;
}

}  // namespace nodeplane::overlay
