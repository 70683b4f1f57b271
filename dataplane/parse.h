// Stage 1: parse and validate Ethernet (+802.1Q/802.1ad), ARP, IPv4, TCP, UDP, ICMP, SCTP.
// Pure: reads only the packet (never past data_len of the first segment or pkt_len), writes
// PacketMeta. Malformed packets get Action::kDrop with their own DropReason.
#pragma once

#include "core/packet.h"

namespace nodeplane::dataplane {

void parsePacket(const rte_mbuf* m, PacketMeta& meta);

inline void parseBurst(Burst& burst) {
  for (uint16_t i = 0; i < burst.count; ++i) {
    if (i + 1 < burst.count) rte_prefetch0(rte_pktmbuf_mtod(burst.pkts[i + 1], void*));
    parsePacket(burst.pkts[i], burst.meta[i]);
  }
}

}  // namespace nodeplane::dataplane
