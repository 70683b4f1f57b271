// Per-packet metadata the stages pass along a burst, and the burst itself.
// Metadata lives in a parallel array on the worker's stack, not in the mbuf: stages stay pure
// functions over (mbufs, metadata, snapshot) and a burst's metadata fits in a few cache lines.
#pragma once

#include <rte_byteorder.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "core/drop_reason.h"

namespace nodeplane {

inline constexpr uint16_t kMaxBurst = 64;

// What a stage decided so far for one packet.
enum class Action : uint8_t {
  kContinue,  // parsed and valid; the next stage decides
  kDrop,      // freed by the dispatcher and counted under meta.drop
  kTransmit,  // ready to send on meta.outPort
  kPunt,      // handed to the control thread (meta.punt says why, meta.aux what for)
};

// Why a packet goes to the control thread's slow path.
enum class PuntReason : uint8_t {
  kNone,
  kArp,            // an ARP reply on the uplink: learn the underlay neighbour
  kAwaitNeighbor,  // encapsulated, waiting for the next hop's MAC (aux: next-hop IPv4, wire order)
  kFragment,       // inner packet larger than the overlay MTU without DF: fragment it
  kHeartbeat,      // a gateway heartbeat (aux: the cluster link it came on, or the underlay)
  kEspUnknownSpi,  // ESP from a peer gateway with an SPI of no SA yet (aux: the link): learn it?
};

enum class L3Kind : uint8_t { kNone, kIpv4, kArp };

// Flags in PacketMeta::flags.
inline constexpr uint16_t kFlagFragment = 0x01;       // MF set or offset != 0
inline constexpr uint16_t kFlagLaterFragment = 0x02;  // offset != 0: no L4 header in this packet
inline constexpr uint16_t kFlagVlanTagged = 0x04;     // at least one 802.1Q/802.1ad tag
inline constexpr uint16_t kFlagDontFragment = 0x08;   // DF set
inline constexpr uint16_t kFlagFromOverlay = 0x10;    // decapsulated: arrived from another node
inline constexpr uint16_t kFlagFromUplink = 0x20;     // arrived on the uplink (not decapsulated)
inline constexpr uint16_t kFlagTranslated = 0x40;     // a tracked flow's NAT was applied
inline constexpr uint16_t kFlagFromHost = 0x80;       // from the node's own kernel (host port)
// Opened from another cluster's ESP (with kFlagFromOverlay): this gateway may pass it on into
// its own overlay, never to a cluster again.
inline constexpr uint16_t kFlagFromCluster = 0x100;

// meta.aux of a packet that is not punted: a stage already wrote its flow-log record.
inline constexpr uint32_t kAuxFlowLogged = 1;

struct PacketMeta {
  rte_be32_t srcIp;  // IPv4 addresses as on the wire (network order)
  rte_be32_t dstIp;
  rte_be16_t srcPort;  // TCP/UDP/SCTP ports as on the wire; ICMP echo: identifier in srcPort
  rte_be16_t dstPort;
  uint16_t l3Offset;       // IPv4 or ARP header offset in the first segment
  uint16_t l4Offset;       // L4 header offset (valid when not kFlagLaterFragment)
  uint16_t ipTotalLength;  // IPv4 total length (host order)
  uint16_t outPort;        // valid when action == kTransmit
  uint8_t ipProto;
  uint8_t tcpFlags;
  uint16_t flags;
  L3Kind l3;
  Action action;
  DropReason drop;
  PuntReason punt;
  uint32_t aux;  // kPunt: the punt detail; else kAuxFlowLogged or 0 (dataplane/flow_log.h)

  void setDrop(DropReason r) {
    action = Action::kDrop;
    drop = r;
  }
  void setTransmit(uint16_t port) {
    action = Action::kTransmit;
    outPort = port;
  }
  void setPunt(PuntReason reason, uint32_t detail = 0) {
    action = Action::kPunt;
    punt = reason;
    aux = detail;
  }
};
static_assert(sizeof(PacketMeta) <= 32, "keep a burst's metadata in few cache lines");

// A received burst as it moves through the stages.
struct Burst {
  uint16_t count = 0;
  uint16_t inPort = 0;
  rte_mbuf* pkts[kMaxBurst];
  PacketMeta meta[kMaxBurst];
};

}  // namespace nodeplane
