// The virtio-net header that travels with each frame of a pod port (PACKET_VNET_HDR), and the
// mbuf offload flags nodeplane carries the same facts in between ports:
//
//   NEEDS_CSUM (csum_offset 16 / 6)  <->  RTE_MBUF_F_TX_TCP_CKSUM / RTE_MBUF_F_TX_UDP_CKSUM: the
//                                         L4 checksum field holds the pseudo-header sum, the rest
//                                         is summed by whoever finally transmits (DPDK's
//                                         convention and Linux's CHECKSUM_PARTIAL alike)
//   GSO TCPV4, gso_size              <->  RTE_MBUF_F_TX_TCP_SEG, tso_segsz: a TCP super-packet
//                                         (up to 64 KiB) that is segmented only where a wire
//                                         needs it
//
// Reading a header checks it against the frame, and refuses what nodeplane does not carry
// (UDP or IPv6 GSO, unknown flags) with a named drop reason; nothing past the frame is read.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "core/drop_reason.h"

namespace nodeplane::dataplane {

// struct virtio_net_hdr of <linux/virtio_net.h>, which C++ cannot include (a member named
// `class`). Native byte order (the legacy header, as PACKET_VNET_HDR uses it).
struct VnetHeader {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
};
static_assert(sizeof(VnetHeader) == 10);
inline constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr uint8_t kVnetDataValid = 2;  // VIRTIO_NET_HDR_F_DATA_VALID
inline constexpr uint8_t kVnetGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
inline constexpr uint8_t kVnetGsoTcpv4 = 1;   // VIRTIO_NET_HDR_GSO_TCPV4
inline constexpr uint8_t kVnetGsoEcn = 0x80;  // VIRTIO_NET_HDR_GSO_ECN

// The offload flags nodeplane uses on a packet between ports.
inline constexpr uint64_t kPartialChecksumFlags =
    RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;  // RTE_MBUF_F_TX_L4_MASK values
inline bool hasPartialChecksum(const rte_mbuf* m) {
  return (m->ol_flags & RTE_MBUF_F_TX_L4_MASK) != 0;
}
inline bool isTcpSuperPacket(const rte_mbuf* m) {
  return m->ol_flags & RTE_MBUF_F_TX_TCP_SEG;
}
inline void clearOffloads(rte_mbuf* m) {
  m->ol_flags &= ~(RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_IPV4 |
                   RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TUNNEL_MASK | RTE_MBUF_F_TX_OUTER_IPV4 |
                   RTE_MBUF_F_TX_OUTER_IP_CKSUM);
  m->tso_segsz = 0;
}

// Sets `m`'s offload flags from the header of a frame of `frameLength` bytes; kNone, or why the
// frame is refused.
DropReason vnetToMbuf(const VnetHeader& h, uint32_t frameLength, rte_mbuf* m);

// The header for sending `m` (an untagged Ethernet/IPv4 frame, headers in its first segment) to
// a pod: from its offload flags, with offsets taken from the frame itself.
VnetHeader vnetFromMbuf(const rte_mbuf* m);

}  // namespace nodeplane::dataplane
