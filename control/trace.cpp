#include "control/trace.h"

#include "control/dns_zone.h"
#include "dns/present.h"
#include "dns/wire.h"

#include <netinet/in.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cstring>

#include "dataplane/pipeline.h"
#include "overlay/vxlan.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

const char* actionName(Action a) {
  switch (a) {
    case Action::kContinue:
      return "continue";
    case Action::kDrop:
      return "drop";
    case Action::kTransmit:
      return "transmit";
    case Action::kPunt:
      return "punt";
  }
  return "?";
}

const char* puntName(PuntReason p) {
  switch (p) {
    case PuntReason::kNone:
      return "none";
    case PuntReason::kArp:
      return "arp";
    case PuntReason::kAwaitNeighbor:
      return "await-neighbor (the next hop's MAC is being resolved)";
    case PuntReason::kHeartbeat:
      return "heartbeat";
    case PuntReason::kEspUnknownSpi:
      return "esp-unknown-spi (perhaps a peer gateway's next SA generation)";
    case PuntReason::kFragment:
      return "fragment (larger than the overlay MTU, DF clear)";
  }
  return "?";
}

std::string addr(rte_be32_t a) {
  return Ipv4Address{rte_be_to_cpu_32(a)}.toString();
}

// A header summary of the packet as it is now (after the stage), including a VXLAN outer header.
Json describe(const rte_mbuf* m, const PacketMeta& meta) {
  Json j = Json::object();
  if (meta.l3 != L3Kind::kIpv4) return j;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  char mac[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(mac, sizeof(mac), &eth->dst_addr);
  j["ethDst"] = mac;
  rte_ether_format_addr(mac, sizeof(mac), &eth->src_addr);
  j["ethSrc"] = mac;
  j["src"] = addr(meta.srcIp);
  j["dst"] = addr(meta.dstIp);
  j["protocol"] = meta.ipProto;
  if (meta.ipProto == IPPROTO_TCP || meta.ipProto == IPPROTO_UDP) {
    j["sport"] = rte_be_to_cpu_16(meta.srcPort);
    j["dport"] = rte_be_to_cpu_16(meta.dstPort);
  }
  if (meta.flags & kFlagTranslated) j["translated"] = true;
  if (meta.flags & kFlagFromOverlay) j["fromOverlay"] = true;
  // An encapsulated packet: the outer header.
  if (m->data_len >= sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + 8 &&
      eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
    if (ip->next_proto_id == IPPROTO_UDP) {
      const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
      if (ip->dst_addr != meta.dstIp) {  // the packet was wrapped: meta describes the inner one
        j["vxlan"] = {{"outerSrc", addr(ip->src_addr)},
                      {"outerDst", addr(ip->dst_addr)},
                      {"udpDport", rte_be_to_cpu_16(udp->dst_port)}};
      }
    }
  }
  return j;
}

uint8_t tcpFlags(const std::string& s) {
  uint8_t f = 0;
  for (char c : s) {
    switch (c) {
      case 'S':
        f |= RTE_TCP_SYN_FLAG;
        break;
      case 'A':
        f |= RTE_TCP_ACK_FLAG;
        break;
      case 'F':
        f |= RTE_TCP_FIN_FLAG;
        break;
      case 'R':
        f |= RTE_TCP_RST_FLAG;
        break;
      case 'P':
        f |= RTE_TCP_PSH_FLAG;
        break;
      default:
        return 0xff;
    }
  }
  return f;
}

}  // namespace

Result<Json> tracePacket(const NodeController& node, dp::DataplaneBackend& backend,
                         const Json& args) {
  ArgReader r("trace", args);
  if (auto st = r.onlyFields({"from", "src", "dst", "protocol", "sport", "dport", "flags",
                              "payload", "ttl", "dnsQuery"});
      !st)
    return st.error();
  auto from = r.string("from");
  if (!from) return from.error();
  auto dstText = r.string("dst");
  if (!dstText) return dstText.error();
  auto dst = Ipv4Address::parse(*dstText);
  if (!dst) return r.error("dst", "'" + *dstText + "' is not an IPv4 address");

  // The ingress port and the sender's addresses.
  uint16_t port = 0;
  MacAddress srcMac = *MacAddress::parse("02:00:00:00:00:99");
  MacAddress portMac;
  std::optional<Ipv4Address> src;
  if (*from == "uplink") {
    if (!node.uplink()) return r.error("from", "this node has no uplink");
    port = node.uplink()->id;
    portMac = node.uplink()->mac;
  } else {
    const size_t slash = from->find('/');
    auto key = slash == std::string::npos
                   ? std::nullopt
                   : node.findPod(from->substr(0, slash), from->substr(slash + 1));
    if (!key)
      return r.error("from",
                     "'" + *from + "' is neither an attached pod (namespace/name) nor uplink");
    for (const AttachedPod& p : node.pods())
      if (p.spec.containerId == key->containerId && p.spec.interface == key->interface) {
        port = p.port.id;
        portMac = p.port.mac;
        srcMac = p.spec.mac;
        src = p.spec.ip;
      }
  }
  if (r.has("src")) {
    auto s = r.string("src");
    if (!s) return s.error();
    src = Ipv4Address::parse(*s);
    if (!src) return r.error("src", "'" + *s + "' is not an IPv4 address");
  }
  if (!src) return r.error("src", "missing (needed when tracing from the uplink)");
  // dnsQuery "NAME[/TYPE]": the payload is a DNS query for it, over UDP to port 53 unless given.
  std::string dnsPayload;
  if (r.has("dnsQuery")) {
    auto q = r.string("dnsQuery");
    if (!q) return q.error();
    const size_t slash = q->find('/');
    auto type = dns::typeFromName(slash == std::string::npos ? "A" : q->substr(slash + 1));
    if (!type) return r.error("dnsQuery", "'" + *q + "': not NAME or NAME/TYPE (A, SRV, PTR, ...)");
    const auto bytes = dns::buildQuery(q->substr(0, slash), *type, 0x6e70, dns::kMaxUdpSize);
    if (bytes.empty()) return r.error("dnsQuery", "'" + *q + "' is not a DNS name");
    dnsPayload.assign(bytes.begin(), bytes.end());
  }
  const bool dnsTrace = !dnsPayload.empty();
  auto proto = r.optionalString("protocol", dnsTrace ? "UDP" : "TCP");
  if (!proto) return proto.error();
  uint8_t ipProto;
  if (*proto == "TCP")
    ipProto = IPPROTO_TCP;
  else if (*proto == "UDP")
    ipProto = IPPROTO_UDP;
  else if (*proto == "ICMP")
    ipProto = IPPROTO_ICMP;
  else
    return r.error("protocol", "'" + *proto + "' is not TCP, UDP or ICMP");
  uint16_t sport = 40000, dport = dnsTrace ? 53 : 80;
  if (r.has("sport")) {
    auto v = r.integer("sport", 0, 65535);
    if (!v) return v.error();
    sport = static_cast<uint16_t>(*v);
  }
  if (r.has("dport")) {
    auto v = r.integer("dport", 0, 65535);
    if (!v) return v.error();
    dport = static_cast<uint16_t>(*v);
  }
  auto flagsText = r.optionalString("flags", "S");
  if (!flagsText) return flagsText.error();
  const uint8_t flags = tcpFlags(*flagsText);
  if (flags == 0xff) return r.error("flags", "'" + *flagsText + "' is not made of S, A, F, R, P");
  auto payload = r.optionalString("payload", "");
  if (!payload) return payload.error();
  if (dnsTrace) {
    if (!payload->empty()) return r.error("payload", "not with dnsQuery (that is the payload)");
    *payload = dnsPayload;
  }
  uint8_t ttl = 64;
  if (r.has("ttl")) {
    auto v = r.integer("ttl", 1, 255);
    if (!v) return v.error();
    ttl = static_cast<uint8_t>(*v);
  }

  const dp::Snapshot* snap = node.current();
  if (snap == nullptr) return makeError(ErrorCode::kUnavailable, "trace: no snapshot yet");
  rte_mbuf* m = rte_pktmbuf_alloc(backend.mempool());
  if (m == nullptr) return makeError(ErrorCode::kResourceExhausted, "trace: no mbuf free");
  const size_t l4Length = (ipProto == IPPROTO_TCP   ? sizeof(rte_tcp_hdr)
                           : ipProto == IPPROTO_UDP ? sizeof(rte_udp_hdr)
                                                    : sizeof(rte_icmp_hdr)) +
                          payload->size();
  const size_t frame = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + l4Length;
  auto* data = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return r.error("payload", "too long for one mbuf");
  }
  std::memset(data, 0, frame);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  std::memcpy(&eth->dst_addr, portMac.bytes.data(), 6);
  std::memcpy(&eth->src_addr, srcMac.bytes.data(), 6);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + l4Length));
  ip->time_to_live = ttl;
  ip->next_proto_id = ipProto;
  ip->src_addr = rte_cpu_to_be_32(src->value);
  ip->dst_addr = rte_cpu_to_be_32(dst->value);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  uint8_t* l4 = reinterpret_cast<uint8_t*>(ip + 1);
  if (ipProto == IPPROTO_TCP) {
    auto* tcp = reinterpret_cast<rte_tcp_hdr*>(l4);
    tcp->src_port = rte_cpu_to_be_16(sport);
    tcp->dst_port = rte_cpu_to_be_16(dport);
    tcp->sent_seq = rte_cpu_to_be_32(1);
    tcp->data_off = 5 << 4;
    tcp->tcp_flags = flags;
    tcp->rx_win = rte_cpu_to_be_16(65535);
    std::memcpy(tcp + 1, payload->data(), payload->size());
    tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
  } else if (ipProto == IPPROTO_UDP) {
    auto* udp = reinterpret_cast<rte_udp_hdr*>(l4);
    udp->src_port = rte_cpu_to_be_16(sport);
    udp->dst_port = rte_cpu_to_be_16(dport);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4Length));
    std::memcpy(udp + 1, payload->data(), payload->size());
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  } else {
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(l4);
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
    icmp->icmp_ident = rte_cpu_to_be_16(sport);
    icmp->icmp_seq_nb = rte_cpu_to_be_16(1);
    std::memcpy(icmp + 1, payload->data(), payload->size());
    icmp->icmp_cksum = static_cast<uint16_t>(~rte_raw_cksum(icmp, l4Length));
  }
  m->port = port;

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.workerIndex = 0;
  ctx.workerCount = static_cast<uint16_t>(backend.workerCount());
  ctx.counters = &counters;
  ctx.conntrack = backend.conntrack();
  ctx.generation = snap->generation;
  ctx.dryRun = true;
  ctx.icmpLimiter.configure(1'000'000, 1'000'000, 1000);
  Burst burst;
  burst.count = 1;
  burst.inPort = port;
  burst.pkts[0] = m;

  std::map<uint16_t, std::string> owners;
  for (const AttachedPod& p : node.pods())
    owners[p.port.id] = "pod " + p.spec.namespaceName + "/" + p.spec.name;
  if (node.uplink()) owners[node.uplink()->id] = "uplink";

  Json stages = Json::array();
  dp::runStagesTraced(burst, *snap, ctx, [&](const char* stage, const Burst& b) {
    for (uint16_t i = 0; i < b.count; ++i) {
      const PacketMeta& meta = b.meta[i];
      Json s = {{"stage", stage}, {"action", actionName(meta.action)}};
      if (i > 0) s["made"] = "a packet this stage made (e.g. a TCP reset to the client)";
      if (meta.action == Action::kDrop) {
        const auto& info = dropReasonInfo(meta.drop);
        s["reason"] = std::string(info.name);
        s["meaning"] = std::string(info.help);
      }
      if (meta.action == Action::kTransmit) {
        s["outPort"] = meta.outPort;
        s["to"] = owners.count(meta.outPort) ? owners[meta.outPort]
                                             : "port " + std::to_string(meta.outPort);
      }
      if (meta.action == Action::kPunt) s["punt"] = puntName(meta.punt);
      // The DNS stage answered: what it said (in place of the query's payload).
      if (std::string_view(stage) == "dns" && meta.action == Action::kTransmit &&
          meta.ipProto == IPPROTO_UDP && b.pkts[i]->next == nullptr) {
        const size_t at = meta.l4Offset + sizeof(rte_udp_hdr);
        if (b.pkts[i]->data_len > at) {
          const std::string answer = describeDnsAnswer(
              rte_pktmbuf_mtod_offset(b.pkts[i], const uint8_t*, at), b.pkts[i]->data_len - at);
          if (!answer.empty()) s["to"] = s["to"].get<std::string>() + ": " + answer;
        }
      }
      s["packet"] = describe(b.pkts[i], meta);
      stages.push_back(std::move(s));
    }
  });
  const PacketMeta last = burst.meta[0];
  for (uint16_t i = 0; i < burst.count; ++i) rte_pktmbuf_free(burst.pkts[i]);

  std::string verdict;
  switch (last.action) {
    case Action::kTransmit:
      verdict =
          "transmitted to " + (owners.count(last.outPort) ? owners[last.outPort]
                                                          : "port " + std::to_string(last.outPort));
      break;
    case Action::kDrop:
      verdict = "dropped: " + std::string(dropReasonInfo(last.drop).name);
      break;
    case Action::kPunt:
      verdict = std::string("handed to the control thread: ") + puntName(last.punt);
      break;
    case Action::kContinue:
      verdict = "undecided (a bug: please report)";
      break;
  }
  return Json{{"from", *from},
              {"inPort", port},
              {"snapshot", snap->generation},
              {"stages", stages},
              {"verdict", verdict},
              {"note", "traced on the control thread: nothing was sent, no flow was created"}};
}

}  // namespace nodeplane::control
