#include "tests/unit/support/packet_builder.h"

#include <arpa/inet.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace nodeplane::testing {

namespace {

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}
void putMac(Bytes& b, size_t at, const std::string& text) {
  MacAddress m = mac(text.c_str());
  std::memcpy(&b[at], m.bytes.data(), 6);
}

}  // namespace

MacAddress mac(const char* text) {
  auto m = MacAddress::parse(text);
  if (!m) throw std::invalid_argument(std::string("bad MAC ") + text);
  return *m;
}

Ipv4Address ip(const char* text) {
  auto a = Ipv4Address::parse(text);
  if (!a) throw std::invalid_argument(std::string("bad IP ") + text);
  return *a;
}

uint16_t internetChecksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(data[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

PacketBuilder& PacketBuilder::eth(const char* dst, const char* src) {
  dst_ = dst;
  src_ = src;
  return *this;
}
PacketBuilder& PacketBuilder::vlan(uint16_t tci, uint16_t tpid) {
  vlans_.emplace_back(tpid, tci);
  return *this;
}
PacketBuilder& PacketBuilder::ipv4(const char* src, const char* dst, uint8_t ttl) {
  hasIp_ = true;
  ipSrc_ = src;
  ipDst_ = dst;
  ttl_ = ttl;
  return *this;
}
PacketBuilder& PacketBuilder::ipOptions(size_t bytes) {
  options_ = bytes;
  return *this;
}
PacketBuilder& PacketBuilder::dontFragment() {
  fragField_ |= 0x4000;
  return *this;
}
PacketBuilder& PacketBuilder::fragment(uint16_t offsetUnits, bool moreFragments) {
  fragField_ = static_cast<uint16_t>((fragField_ & 0x4000) | (moreFragments ? 0x2000 : 0) |
                                     (offsetUnits & 0x1fff));
  return *this;
}
PacketBuilder& PacketBuilder::tcp(uint16_t s, uint16_t d, uint8_t flags) {
  l4_ = L4::kTcp;
  sport_ = s;
  dport_ = d;
  tcpFlags_ = flags;
  return *this;
}
PacketBuilder& PacketBuilder::tcpSeq(uint32_t seq, uint32_t ack) {
  seq_ = seq;
  ack_ = ack;
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t s, uint16_t d) {
  l4_ = L4::kUdp;
  sport_ = s;
  dport_ = d;
  return *this;
}
PacketBuilder& PacketBuilder::icmpEcho(uint16_t id, uint16_t seq, bool request) {
  l4_ = L4::kIcmp;
  sport_ = id;
  dport_ = seq;
  echoRequest_ = request;
  return *this;
}
PacketBuilder& PacketBuilder::ipProto(uint8_t proto) {
  l4_ = L4::kRaw;
  rawProto_ = proto;
  return *this;
}
PacketBuilder& PacketBuilder::arp(uint16_t op, const char* senderMac, const char* senderIp,
                                  const char* targetIp, const char* targetMac) {
  isArp_ = true;
  arpBody_.assign(28, 0);
  put16(arpBody_, 0, 1);
  put16(arpBody_, 2, 0x0800);
  arpBody_[4] = 6;
  arpBody_[5] = 4;
  put16(arpBody_, 6, op);
  putMac(arpBody_, 8, senderMac);
  put32(arpBody_, 14, ip(senderIp).value);
  putMac(arpBody_, 18, targetMac);
  put32(arpBody_, 24, ip(targetIp).value);
  return *this;
}
PacketBuilder& PacketBuilder::payload(size_t bytes, uint8_t fill) {
  payload_ = bytes;
  fill_ = fill;
  return *this;
}
PacketBuilder& PacketBuilder::payloadBytes(const Bytes& bytes) {
  payloadBytes_ = bytes;
  return *this;
}
PacketBuilder& PacketBuilder::padTo(size_t frameBytes) {
  padTo_ = frameBytes;
  return *this;
}

Bytes PacketBuilder::build() const {
  Bytes b(12, 0);
  putMac(b, 0, dst_);
  putMac(b, 6, src_);
  for (auto [tpid, tci] : vlans_) {
    b.resize(b.size() + 4);
    put16(b, b.size() - 4, tpid);
    put16(b, b.size() - 2, tci);
  }
  b.resize(b.size() + 2);
  const size_t etherTypeAt = b.size() - 2;
  if (isArp_) {
    put16(b, etherTypeAt, 0x0806);
    b.insert(b.end(), arpBody_.begin(), arpBody_.end());
  } else if (hasIp_) {
    put16(b, etherTypeAt, 0x0800);
    const size_t ipAt = b.size();
    const size_t ihl = kIpLen + options_;
    b.resize(b.size() + ihl, 1);  // options: NOP (1)
    Bytes l4;
    uint8_t proto = 0;
    switch (l4_) {
      case L4::kTcp:
        proto = 6;
        l4.assign(20, 0);
        put16(l4, 0, sport_);
        put16(l4, 2, dport_);
        put32(l4, 4, seq_);
        put32(l4, 8, ack_);
        l4[12] = 5 << 4;
        l4[13] = tcpFlags_;
        put16(l4, 14, 65535);
        break;
      case L4::kUdp:
        proto = 17;
        l4.assign(8, 0);
        put16(l4, 0, sport_);
        put16(l4, 2, dport_);
        break;
      case L4::kIcmp:
        proto = 1;
        l4.assign(8, 0);
        l4[0] = echoRequest_ ? 8 : 0;
        put16(l4, 4, sport_);
        put16(l4, 6, dport_);
        break;
      case L4::kRaw:
        proto = rawProto_;
        break;
      case L4::kNone:
        proto = 253;  // experimental
        break;
    }
    for (size_t i = 0; i < payload_; ++i) l4.push_back(fill_);
    l4.insert(l4.end(), payloadBytes_.begin(), payloadBytes_.end());
    if (l4_ == L4::kUdp) put16(l4, 4, static_cast<uint16_t>(l4.size()));
    b.insert(b.end(), l4.begin(), l4.end());
    // IPv4 header.
    b[ipAt] = static_cast<uint8_t>(0x40 | (ihl / 4));
    b[ipAt + 1] = 0;
    put16(b, ipAt + 2, static_cast<uint16_t>(ihl + l4.size()));
    put16(b, ipAt + 4, 0x1234);
    put16(b, ipAt + 6, fragField_);
    b[ipAt + 8] = ttl_;
    b[ipAt + 9] = proto;
    put32(b, ipAt + 12, ip(ipSrc_.c_str()).value);
    put32(b, ipAt + 16, ip(ipDst_.c_str()).value);
    put16(b, ipAt + 10, 0);
    put16(b, ipAt + 10, internetChecksum(&b[ipAt], ihl));
    // L4 checksums.
    const size_t l4At = ipAt + ihl;
    const bool firstOrWhole = (fragField_ & 0x1fff) == 0;
    if (firstOrWhole && (l4_ == L4::kTcp || l4_ == L4::kUdp)) {
      Bytes pseudo(12);
      std::memcpy(&pseudo[0], &b[ipAt + 12], 8);
      pseudo[9] = proto;
      put16(pseudo, 10, static_cast<uint16_t>(l4.size()));
      pseudo.insert(pseudo.end(), b.begin() + static_cast<long>(l4At), b.end());
      uint16_t c = internetChecksum(pseudo.data(), pseudo.size());
      if (l4_ == L4::kUdp && c == 0) c = 0xffff;
      put16(b, l4At + (l4_ == L4::kTcp ? 16 : 6), c);
    } else if (l4_ == L4::kIcmp) {
      put16(b, l4At + 2, internetChecksum(&b[l4At], l4.size()));
    }
  } else {
    put16(b, etherTypeAt, 0x88cc);  // LLDP: something we do not route
    b.resize(b.size() + 46, 0);
  }
  if (b.size() < padTo_) b.resize(padTo_, 0);
  return b;
}

rte_mempool* testPool() {
  static rte_mempool* pool =
      rte_pktmbuf_pool_create("np_test_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  if (pool == nullptr) throw std::runtime_error("test mempool");
  return pool;
}

rte_mbuf* makeMbuf(const Bytes& bytes, uint16_t port) {
  rte_mbuf* m = rte_pktmbuf_alloc(testPool());
  if (m == nullptr) throw std::runtime_error("mbuf alloc");
  char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(bytes.size()));
  if (data == nullptr) throw std::runtime_error("mbuf append");
  if (!bytes.empty()) std::memcpy(data, bytes.data(), bytes.size());
  m->port = port;
  return m;
}

rte_mbuf* makeChainedMbuf(const Bytes& bytes, uint16_t firstSegment, uint16_t port) {
  Bytes head(bytes.begin(), bytes.begin() + firstSegment);
  Bytes tail(bytes.begin() + firstSegment, bytes.end());
  rte_mbuf* m = makeMbuf(head, port);
  rte_mbuf* t = makeMbuf(tail, port);
  if (rte_pktmbuf_chain(m, t) != 0) throw std::runtime_error("mbuf chain");
  return m;
}

rte_mbuf* makeSegmentedMbuf(const Bytes& bytes, uint16_t port) {
  rte_mbuf* head = nullptr;
  size_t at = 0;
  do {
    rte_mbuf* m = rte_pktmbuf_alloc(testPool());
    if (m == nullptr) throw std::runtime_error("mbuf alloc");
    if (head != nullptr) m->data_off = 0;
    const size_t chunk = std::min<size_t>(bytes.size() - at, rte_pktmbuf_tailroom(m));
    if (chunk != 0)
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(chunk)), &bytes[at], chunk);
    at += chunk;
    m->port = port;
    if (head == nullptr)
      head = m;
    else if (rte_pktmbuf_chain(head, m) != 0)
      throw std::runtime_error("mbuf chain");
  } while (at < bytes.size());
  return head;
}

Bytes mbufBytes(const rte_mbuf* m) {
  Bytes out(m->pkt_len);
  const void* p = rte_pktmbuf_read(m, 0, m->pkt_len, out.data());
  if (p != out.data()) std::memcpy(out.data(), p, m->pkt_len);
  return out;
}

}  // namespace nodeplane::testing

namespace nodeplane::testing {

namespace {
struct ExactBuffer {
  rte_mbuf_ext_shared_info shinfo;
  uint8_t* data;
};
void freeExact(void*, void* opaque) {
  auto* e = static_cast<ExactBuffer*>(opaque);
  delete[] e->data;
  delete e;
}
}  // namespace

rte_mbuf* makeExactMbuf(const Bytes& bytes, uint16_t port) {
  rte_mbuf* m = rte_pktmbuf_alloc(testPool());
  if (m == nullptr) throw std::runtime_error("mbuf alloc");
  auto* e = new ExactBuffer{};
  const size_t len = bytes.empty() ? 1 : bytes.size();
  e->data = new uint8_t[len];
  if (!bytes.empty()) std::memcpy(e->data, bytes.data(), bytes.size());
  e->shinfo.free_cb = &freeExact;
  e->shinfo.fcb_opaque = e;
  rte_mbuf_ext_refcnt_set(&e->shinfo, 1);
  rte_pktmbuf_attach_extbuf(m, e->data, 0, static_cast<uint16_t>(len), &e->shinfo);
  m->data_off = 0;
  m->data_len = static_cast<uint16_t>(bytes.size());
  m->pkt_len = static_cast<uint32_t>(bytes.size());
  m->port = port;
  return m;
}

}  // namespace nodeplane::testing
