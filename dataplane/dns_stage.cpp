#include "dataplane/dns_stage.h"

#include <netinet/in.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_random.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstring>

#include "dns/responder.h"
#include "policy/enforce.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint16_t kDnsPort = 53;
constexpr uint8_t kTtl = 64;
constexpr uint16_t kMss = 1400;         // what our SYN-ACK announces
constexpr size_t kMaxTcpAnswer = 1400;  // one segment: a larger answer is sent with TC
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

bool isServer(const DnsTable& table, rte_be32_t ip) {
  for (rte_be32_t s : table.servers)
    if (s == ip) return true;
  return false;
}

void count(WorkerCounters& c, const dns::Response& r) {
  using dns::Outcome;
  if (r.truncated) c.dnsTruncated.add();
  switch (r.outcome) {
    case Outcome::kAnswered:
      if (r.alias)
        c.dnsAnswersCname.add();
      else if (r.qtype == dns::kTypeA)
        c.dnsAnswersA.add();
      else if (r.qtype == dns::kTypeSrv)
        c.dnsAnswersSrv.add();
      else if (r.qtype == dns::kTypePtr)
        c.dnsAnswersPtr.add();
      else
        c.dnsAnswersOther.add();
      return;
    case Outcome::kNxDomain:
      c.dnsNxDomain.add();
      return;
    case Outcome::kNoData:
      c.dnsNoData.add();
      return;
    case Outcome::kServFail:
      c.dnsServFail.add();
      return;
    case Outcome::kBadVersion:
      c.dnsBadVersion.add();
      return;
    case Outcome::kPassOn:
      c.dnsPassedOn.add();
      return;
    case Outcome::kMalformed:
      c.dnsMalformed.add();
      return;
    case Outcome::kRefused:
      c.dnsRefused.add();
      return;
  }
}

// The reply goes back where the query came from: MACs and addresses swapped, a fresh TTL and
// checksum, `l4Length` bytes of L4 after the IPv4 header; no offload left. The caller checked
// there is room.
void replyHeaders(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, size_t l4Length) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  const uint16_t frame = static_cast<uint16_t>(meta.l4Offset + l4Length);
  m->data_len = frame;
  m->pkt_len = frame;
  m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
  m->tso_segsz = 0;
  eth->dst_addr = eth->src_addr;
  eth->src_addr = port.mac;
  const rte_be32_t client = ip->src_addr;
  ip->src_addr = ip->dst_addr;
  ip->dst_addr = client;
  ip->time_to_live = kTtl;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(frame - meta.l3Offset));
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  std::swap(meta.srcIp, meta.dstIp);
  std::swap(meta.srcPort, meta.dstPort);
  meta.ipTotalLength = static_cast<uint16_t>(frame - meta.l3Offset);
}

// NetworkPolicy: an egress-isolated pod is answered only if it may reach the cluster DNS (its
// backend pod, or the address itself when nodeplane is the only DNS server). Not counted or
// logged here: a denied query goes on to the service stage, which judges and records it.
bool policyAllows(const Snapshot& snapshot, const DnsTable& table, const PacketMeta& meta,
                  WorkerContext& ctx) {
  const policy::PolicyTable* p = snapshot.policy.get();
  if (p == nullptr || p->permissive() || (meta.flags & kFlagFromHost)) return true;
  const bool tcp = meta.ipProto == IPPROTO_TCP;
  const policy::FlowTuple flow{meta.srcIp, table.policyServer, meta.srcPort,
                               tcp ? table.policyServerPortTcp : table.policyServerPortUdp,
                               meta.ipProto};
  return !(policy::evaluate(*p, flow, ctx.workerIndex, *ctx.counters, ctx.nowMs, false) &
           policy::kVerdictDeny);
}

bool roomFor(const rte_mbuf* m, size_t frame) {
  return frame <= size_t{m->buf_len} - m->data_off;
}

// --- UDP --------------------------------------------------------------------------------------

void udpQuery(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, const DnsTable& table,
              WorkerContext& ctx) {
  const uint16_t payload = static_cast<uint16_t>(meta.l4Offset + sizeof(rte_udp_hdr));
  auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, meta.l4Offset);
  const size_t queryLength = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
  uint8_t answer[dns::kMaxUdpSize];
  const dns::Response r = dns::respond(
      rte_pktmbuf_mtod_offset(m, const uint8_t*, payload), queryLength, table.zone, false, answer,
      sizeof(answer), table.udpUpstream ? dns::Upstream::kPresent : dns::Upstream::kNone,
      table.clusterset.get());
  if (r.length == 0) {  // passed on or malformed: the service stage takes it to the upstream
    count(*ctx.counters, r);
    return;
  }
  if (!roomFor(m, payload + r.length)) {
    ctx.counters->dnsNoRoom.add();
    return;
  }
  count(*ctx.counters, r);
  std::memcpy(rte_pktmbuf_mtod_offset(m, uint8_t*, payload), answer, r.length);
  replyHeaders(m, meta, port, sizeof(rte_udp_hdr) + r.length);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  const rte_be16_t clientPort = udp->src_port;
  udp->src_port = udp->dst_port;
  udp->dst_port = clientPort;
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + r.length));
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  meta.setTransmit(m->port);
}

// --- TCP (RFC 7766), stateless: used when no upstream serves TCP ---------------------------------
//
// SYN -> SYN-ACK whose sequence number is a cookie of the 4-tuple; a segment carrying a whole
// query (2-byte length, message) whose ACK acknowledges the cookie -> the answer with FIN; the
// client's FIN -> ACK; bare ACKs and RSTs are consumed. No connection state is kept: a lost
// answer is sent again when the client resends its query.

uint32_t cookie(const PacketMeta& meta) {
  static const uint32_t secret = static_cast<uint32_t>(rte_rand());
  const uint32_t tuple[3] = {meta.srcIp, meta.dstIp,
                             uint32_t{meta.srcPort} << 16 | uint32_t{meta.dstPort}};
  return rte_hash_crc(tuple, sizeof(tuple), secret);
}

// The TCP segment of our reply: header (with an MSS option on a SYN-ACK), then `data`.
void tcpReply(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, uint32_t seq, uint32_t ack,
              uint8_t flags, const uint8_t* data, size_t length) {
  const size_t header = sizeof(rte_tcp_hdr) + ((flags & kSyn) ? 4 : 0);
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
  if (length) std::memcpy(reinterpret_cast<uint8_t*>(tcp) + header, data, length);
  replyHeaders(m, meta, port, header + length);
  const rte_be16_t clientPort = tcp->src_port;
  tcp->src_port = tcp->dst_port;
  tcp->dst_port = clientPort;
  tcp->sent_seq = rte_cpu_to_be_32(seq);
  tcp->recv_ack = rte_cpu_to_be_32(ack);
  tcp->data_off = static_cast<uint8_t>(header / 4 << 4);
  tcp->tcp_flags = flags;
  tcp->rx_win = rte_cpu_to_be_16(65535);
  tcp->tcp_urp = 0;
  if (flags & kSyn) {
    uint8_t* mss = reinterpret_cast<uint8_t*>(tcp + 1);
    mss[0] = 2, mss[1] = 4, mss[2] = kMss >> 8, mss[3] = kMss & 0xff;
  }
  tcp->cksum = 0;
  tcp->cksum = rte_ipv4_udptcp_cksum(rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset), tcp);
  meta.tcpFlags = flags;
  meta.setTransmit(m->port);
}

void tcpQuery(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, const DnsTable& table,
              WorkerContext& ctx) {
  const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, meta.l4Offset);
  const size_t headerLength = (tcp->data_off >> 4) * 4u;
  const size_t segment = meta.ipTotalLength - (meta.l4Offset - meta.l3Offset);
  const size_t payload = segment > headerLength ? segment - headerLength : 0;
  const uint32_t seq = rte_be_to_cpu_32(tcp->sent_seq);
  const uint32_t ack = rte_be_to_cpu_32(tcp->recv_ack);
  const uint8_t flags = meta.tcpFlags;
  const uint32_t ours = cookie(meta);
  if (flags & kRst) return meta.setDrop(DropReason::kDnsTcpConsumed);
  if ((flags & (kSyn | kAck)) == kSyn) {
    if (!roomFor(m, meta.l4Offset + sizeof(rte_tcp_hdr) + 4u)) {
      ctx.counters->dnsNoRoom.add();
      return meta.setDrop(DropReason::kDnsTcpConsumed);
    }
    return tcpReply(m, meta, port, ours, seq + 1, kSyn | kAck, nullptr, 0);
  }
  if (!(flags & kAck) || (flags & kSyn)) return meta.setDrop(DropReason::kDnsTcpConsumed);
  auto reset = [&] {
    ctx.counters->dnsTcpResets.add();
    tcpReply(m, meta, port, ack, 0, kRst, nullptr, 0);
  };
  // Every later segment acknowledges our SYN (cookie + 1) and, after our answer, its bytes and
  // FIN: it must lie within the 64 KiB after the cookie, or it is not a connection of ours.
  if (ack - (ours + 1) > 65536 + 1) return reset();
  if (payload == 0) {
    if (flags & kFin) return tcpReply(m, meta, port, ack, seq + 1, kAck, nullptr, 0);
    return meta.setDrop(DropReason::kDnsTcpConsumed);  // a bare ACK (of our SYN-ACK or answer)
  }
  const uint8_t* data = reinterpret_cast<const uint8_t*>(tcp) + headerLength;
  const size_t messageLength = payload >= 2 ? size_t{data[0]} << 8 | data[1] : 0;
  if (payload < 2 || payload - 2 < messageLength) return reset();  // split over segments
  uint8_t answer[2 + kMaxTcpAnswer];
  const size_t room = std::min(
      kMaxTcpAnswer, size_t{m->buf_len} - m->data_off - meta.l4Offset - sizeof(rte_tcp_hdr) - 2);
  const dns::Response r = dns::respond(data + 2, messageLength, table.zone, true, answer + 2, room,
                                       dns::Upstream::kNone, table.clusterset.get());
  count(*ctx.counters, r);
  if (r.length == 0) return reset();  // malformed: nothing to say
  ctx.counters->dnsTcpQueries.add();
  answer[0] = static_cast<uint8_t>(r.length >> 8);
  answer[1] = static_cast<uint8_t>(r.length);
  // Our answer, all the client sent acknowledged, and our FIN: one query per connection.
  tcpReply(m, meta, port, ack, static_cast<uint32_t>(seq + payload + ((flags & kFin) ? 1 : 0)),
           kAck | kPsh | kFin, answer, 2 + r.length);
}

}  // namespace

void dnsStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  if (!snapshot.dns) return;
  const DnsTable& table = *snapshot.dns;
  const PortConfig& port = snapshot.ports[burst.inPort];
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.dstPort != rte_cpu_to_be_16(kDnsPort) ||
        (meta.flags & kFlagFragment) || !isServer(table, meta.dstIp))
      continue;
    const bool udp = meta.ipProto == IPPROTO_UDP;
    if (!udp && (meta.ipProto != IPPROTO_TCP || table.tcpUpstream)) continue;
    rte_mbuf* m = burst.pkts[i];
    if (!policyAllows(snapshot, table, meta, ctx)) {
      ctx.counters->dnsPolicyPassed.add();
      continue;
    }
    // Options in the IPv4 header or a chained mbuf: not answered here (passed on).
    if (meta.l4Offset != meta.l3Offset + sizeof(rte_ipv4_hdr) || m->next != nullptr) {
      ctx.counters->dnsPassedOn.add();
      continue;
    }
    if (udp)
      udpQuery(m, meta, port, table, ctx);
    else
      tcpQuery(m, meta, port, table, ctx);
  }
}

}  // namespace nodeplane::dataplane
