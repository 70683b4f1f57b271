// VXLAN (RFC 7348) constants and the 50 bytes nodeplane puts in front of an inner Ethernet frame.
#pragma once

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_vxlan.h>

#include <cstdint>

namespace nodeplane::overlay {

inline constexpr uint16_t kOuterEthLength = sizeof(rte_ether_hdr);  // 14, untagged
inline constexpr uint16_t kOuterIpLength = sizeof(rte_ipv4_hdr);    // 20, no options
inline constexpr uint16_t kUdpLength = sizeof(rte_udp_hdr);         // 8
inline constexpr uint16_t kVxlanLength = sizeof(rte_vxlan_hdr);     // 8
// Outer Ethernet + IPv4 + UDP + VXLAN.
inline constexpr uint16_t kEncapLength =
    kOuterEthLength + kOuterIpLength + kUdpLength + kVxlanLength;
// What the overlay costs an inner IPv4 packet: the encap headers plus the inner Ethernet header
// (the outer IPv4 MTU must carry outer IP + UDP + VXLAN + inner Ethernet + inner IP = 50 + inner).
inline constexpr uint16_t kOverhead =
    kOuterIpLength + kUdpLength + kVxlanLength + sizeof(rte_ether_hdr);
static_assert(kEncapLength == 50 && kOverhead == 50);

inline constexpr uint8_t kVxlanFlagVni = 0x08;       // the I bit: VNI valid
inline constexpr uint16_t kEntropyPortBase = 49152;  // RFC 7348: dynamic/private range
inline constexpr uint16_t kEntropyPortMask = 0x3fff;

// The VTEP MAC a node uses by default: locally administered, unique per node IP (0e:4e:a.b.c.d).
inline rte_ether_addr defaultVtepMac(uint32_t nodeIpHostOrder) {
  return rte_ether_addr{{0x0e, 0x4e, static_cast<uint8_t>(nodeIpHostOrder >> 24),
                         static_cast<uint8_t>(nodeIpHostOrder >> 16),
                         static_cast<uint8_t>(nodeIpHostOrder >> 8),
                         static_cast<uint8_t>(nodeIpHostOrder)}};
}

}  // namespace nodeplane::overlay
