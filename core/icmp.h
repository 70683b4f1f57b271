// Replies the data plane builds itself, in place in the received mbuf (no allocation):
// ARP replies, ICMP echo replies for the gateway address, ICMP errors back to a sender.
#pragma once

#include <rte_ether.h>

#include "core/packet.h"

namespace nodeplane {

// ICMP types and codes (RFC 792) the data plane sends or looks at (DPDK 22.11 names only echo).
inline constexpr uint8_t kIcmpDestinationUnreachable = 3;
inline constexpr uint8_t kIcmpCodeFragmentationNeeded = 4;  // of destination unreachable
inline constexpr uint8_t kIcmpCodePortUnreachable = 3;      // of destination unreachable
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpCodeTtlExceededInTransit = 0;  // of time exceeded
inline constexpr uint8_t kIcmpParameterProblem = 12;
inline constexpr uint8_t kIcmpTimestamp = 13;
inline constexpr uint8_t kIcmpTimestampReply = 14;

// Turns an ARP request into the reply "targetIp is at ourMac", addressed to the requester.
void buildArpReply(rte_mbuf* m, const PacketMeta& meta, const rte_ether_addr& ourMac);

// Turns an ICMP echo request into the echo reply, sent back where it came from.
void buildEchoReply(rte_mbuf* m, PacketMeta& meta, const rte_ether_addr& ourMac);

enum class IcmpErrorResult : uint8_t {
  kBuilt,        // m now holds the ICMP error, addressed to the original sender
  kNotAllowed,   // RFC 1812 4.3.2.7: never answer ICMP errors, later fragments, broadcasts
  kUnbuildable,  // not enough headroom, or the quote not in the first segment
};

// Turns a (parsed, valid IPv4) packet into an ICMP error about it: type/code, the 32-bit
// "rest of header" (next-hop MTU for fragmentation-needed, else 0) and our source address.
// Quotes the original datagram up to 576 bytes in all (RFC 1812 4.3.2.3).
IcmpErrorResult buildIcmpError(rte_mbuf* m, PacketMeta& meta, uint8_t type, uint8_t code,
                               rte_be32_t restOfHeader, rte_be32_t ourIp,
                               const rte_ether_addr& ourMac);

// Turns a TCP segment into the reset that refuses it (RFC 9293 3.10.7.1): addressed back to its
// sender, from the address and port it was sent to; ACKs the segment when it carried no ACK.
// Options and payload are dropped. False for a segment that itself is a reset (never answered).
bool buildTcpReset(rte_mbuf* m, PacketMeta& meta);

}  // namespace nodeplane
