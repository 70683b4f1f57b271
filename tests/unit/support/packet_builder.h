// Builds valid Ethernet frames for tests (lengths and checksums filled in), and mbufs from them.
// Tests that need a malformed frame build a valid one and then break exactly one thing.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/ipv4.h"

namespace nodeplane::testing {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthLen = 14;
inline constexpr uint16_t kIpLen = 20;

MacAddress mac(const char* text);
Ipv4Address ip(const char* text);

class PacketBuilder {
 public:
  PacketBuilder& eth(const char* dst, const char* src);
  PacketBuilder& vlan(uint16_t tci, uint16_t tpid = 0x8100);
  PacketBuilder& ipv4(const char* src, const char* dst, uint8_t ttl = 64);
  PacketBuilder& ipOptions(size_t bytes);  // NOPs, a multiple of 4
  PacketBuilder& dontFragment();
  // Fragment offset in 8-byte units, and the more-fragments flag.
  PacketBuilder& fragment(uint16_t offsetUnits, bool moreFragments);
  PacketBuilder& tcp(uint16_t srcPort, uint16_t dstPort, uint8_t flags = 0x02);
  PacketBuilder& tcpSeq(uint32_t seq, uint32_t ack = 0);  // default 1000, 0
  PacketBuilder& udp(uint16_t srcPort, uint16_t dstPort);
  PacketBuilder& icmpEcho(uint16_t id, uint16_t seq, bool request = true);
  PacketBuilder& ipProto(uint8_t proto);  // an L4 we do not parse, e.g. GRE
  PacketBuilder& arp(uint16_t op, const char* senderMac, const char* senderIp, const char* targetIp,
                     const char* targetMac = "00:00:00:00:00:00");
  PacketBuilder& payload(size_t bytes, uint8_t fill = 0xab);
  PacketBuilder& payloadBytes(const Bytes& bytes);  // exact L4 payload (e.g. a VXLAN frame)
  PacketBuilder& padTo(size_t frameBytes);          // Ethernet padding after the IP datagram

  Bytes build() const;

 private:
  enum class L4 { kNone, kTcp, kUdp, kIcmp, kRaw };
  std::string dst_ = "02:00:00:00:00:01", src_ = "02:00:00:00:00:02";
  std::vector<std::pair<uint16_t, uint16_t>> vlans_;
  bool isArp_ = false;
  Bytes arpBody_;
  bool hasIp_ = false;
  std::string ipSrc_, ipDst_;
  uint8_t ttl_ = 64;
  size_t options_ = 0;
  uint16_t fragField_ = 0;
  L4 l4_ = L4::kNone;
  uint8_t rawProto_ = 0;
  uint16_t sport_ = 0, dport_ = 0;
  uint8_t tcpFlags_ = 0;
  uint32_t seq_ = 1000, ack_ = 0;
  bool echoRequest_ = true;
  size_t payload_ = 0;
  Bytes payloadBytes_;
  uint8_t fill_ = 0xab;
  size_t padTo_ = 0;
};

// Test-wide mbuf pool (created on first use).
rte_mempool* testPool();
// One-segment mbuf holding `bytes`, as if received on `port`.
rte_mbuf* makeMbuf(const Bytes& bytes, uint16_t port = 0);
// Two-segment mbuf: the first `firstSegment` bytes, then the rest.
rte_mbuf* makeChainedMbuf(const Bytes& bytes, uint16_t firstSegment, uint16_t port = 0);
// `bytes` in as many full mbufs as it takes (a super-packet: up to 64 KiB in 2 KiB segments).
rte_mbuf* makeSegmentedMbuf(const Bytes& bytes, uint16_t port = 0);
Bytes mbufBytes(const rte_mbuf* m);

// Big-endian fields of a frame, for checking what the stages wrote.
inline uint16_t get16(const Bytes& b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
inline uint32_t get32(const Bytes& b, size_t at) {
  return uint32_t{get16(b, at)} << 16 | get16(b, at + 2);
}

// Internet checksum of a byte range (0 when valid over a header including its checksum field).
uint16_t internetChecksum(const uint8_t* data, size_t len);

}  // namespace nodeplane::testing

namespace nodeplane::testing {
// An mbuf whose data lives in a heap buffer of exactly bytes.size(): under AddressSanitizer any
// read past the packet's end is reported (the mempool's own buffers would hide it).
rte_mbuf* makeExactMbuf(const Bytes& bytes, uint16_t port = 0);
}  // namespace nodeplane::testing
