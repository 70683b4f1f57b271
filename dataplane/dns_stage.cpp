#include "dataplane/dns_stage.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstring>

#include "dns/responder.h"

namespace nodeplane::dataplane {

namespace {

constexpr uint16_t kDnsPort = 53;
constexpr uint8_t kTtl = 64;

bool isServer(const DnsTable& table, rte_be32_t ip) {
  for (rte_be32_t s : table.servers)
    if (s == ip) return true;
  return false;
}

void count(WorkerCounters& c, const dns::Response& r, bool alias) {
  using dns::Outcome;
  if (r.truncated) c.dnsTruncated.add();
  switch (r.outcome) {
    case Outcome::kAnswered:
      if (alias)
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
  }
}

// Turns the query in `m` into `answer`: addresses and ports swapped, lengths and checksums new,
// no offload left. The caller checked there is room.
void rewrite(rte_mbuf* m, PacketMeta& meta, const PortConfig& port, const uint8_t* answer,
             size_t length) {
  const uint16_t l4 = meta.l4Offset;
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, l4);
  std::memcpy(rte_pktmbuf_mtod_offset(m, uint8_t*, l4 + sizeof(rte_udp_hdr)), answer, length);
  const uint16_t frame = static_cast<uint16_t>(l4 + sizeof(rte_udp_hdr) + length);
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
  const rte_be16_t clientPort = udp->src_port;
  udp->src_port = udp->dst_port;
  udp->dst_port = clientPort;
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + length));
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);

  std::swap(meta.srcIp, meta.dstIp);
  std::swap(meta.srcPort, meta.dstPort);
  meta.ipTotalLength = static_cast<uint16_t>(frame - meta.l3Offset);
}

}  // namespace

void dnsStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  if (!snapshot.dns) return;
  const DnsTable& table = *snapshot.dns;
  const PortConfig& port = snapshot.ports[burst.inPort];
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.ipProto != IPPROTO_UDP ||
        meta.dstPort != rte_cpu_to_be_16(kDnsPort) || (meta.flags & kFlagFragment) ||
        !isServer(table, meta.dstIp))
      continue;
    rte_mbuf* m = burst.pkts[i];
    const uint16_t payload = static_cast<uint16_t>(meta.l4Offset + sizeof(rte_udp_hdr));
    // Options in the IPv4 header or a chained mbuf: not answered here (passed on).
    if (meta.l4Offset != meta.l3Offset + sizeof(rte_ipv4_hdr) || m->next != nullptr) {
      ctx.counters->dnsPassedOn.add();
      continue;
    }
    const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, meta.l4Offset);
    const size_t queryLength = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
    uint8_t answer[dns::kMaxUdpSize];
    const dns::Response r = dns::respond(rte_pktmbuf_mtod_offset(m, const uint8_t*, payload),
                                         queryLength, table.zone, false, answer, sizeof(answer));
    if (r.length == 0) {  // passed on or malformed: the service stage takes it to the upstream
      count(*ctx.counters, r, false);
      continue;
    }
    if (size_t{payload} + r.length > size_t{m->buf_len} - m->data_off) {
      ctx.counters->dnsNoRoom.add();
      continue;
    }
    count(*ctx.counters, r, r.alias);
    rewrite(m, meta, port, answer, r.length);
    meta.setTransmit(burst.inPort);
  }
}

}  // namespace nodeplane::dataplane
