#include "control/heartbeat.h"

#include <netinet/in.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "core/names.h"
#include "core/packet.h"
#include "dataplane/cluster_link.h"
#include "dataplane/parse.h"

namespace nodeplane::control {

namespace {

constexpr uint8_t kMagic[4] = {'N', 'P', 'H', 'B'};
constexpr uint8_t kVersion = 1;
constexpr size_t kFixed = 12;  // magic, version, flags, ID length, reserved, sequence
constexpr size_t kMaxId = 63;

}  // namespace

std::vector<uint8_t> encodeHeartbeat(const Heartbeat& heartbeat) {
  const size_t idLength = std::min(heartbeat.clusterId.size(), kMaxId);
  std::vector<uint8_t> out(kFixed + idLength);
  std::memcpy(out.data(), kMagic, 4);
  out[4] = kVersion;
  out[5] = heartbeat.active ? 1 : 0;
  out[6] = static_cast<uint8_t>(idLength);
  out[7] = 0;
  const uint32_t seq = rte_cpu_to_be_32(heartbeat.sequence);
  std::memcpy(out.data() + 8, &seq, 4);
  std::memcpy(out.data() + kFixed, heartbeat.clusterId.data(), idLength);
  return out;
}

std::optional<Heartbeat> decodeHeartbeat(const uint8_t* data, size_t length) {
  if (data == nullptr || length < kFixed || std::memcmp(data, kMagic, 4) != 0 ||
      data[4] != kVersion || (data[5] & ~1) != 0 || data[7] != 0)
    return std::nullopt;  // unknown flags or a reserved byte set: another version's
  const size_t idLength = data[6];
  if (idLength == 0 || idLength > kMaxId || length != kFixed + idLength) return std::nullopt;
  Heartbeat h;
  h.active = data[5] & 1;
  uint32_t seq;
  std::memcpy(&seq, data + 8, 4);
  h.sequence = rte_be_to_cpu_32(seq);
  h.clusterId.assign(reinterpret_cast<const char*>(data + kFixed), idLength);
  if (!isDnsLabel(h.clusterId)) return std::nullopt;
  return h;
}

rte_mbuf* heartbeatFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                         Ipv4Address from, Ipv4Address to, const Heartbeat& heartbeat) {
  const std::vector<uint8_t> payload = encodeHeartbeat(heartbeat);
  const size_t headers = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, headers + payload.size()));
  if (frame == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(frame, 0, headers);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  std::memcpy(eth->dst_addr.addr_bytes, dstMac.bytes.data(), 6);
  std::memcpy(eth->src_addr.addr_bytes, srcMac.bytes.data(), 6);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(
      static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + payload.size()));
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(from.value);
  ip->dst_addr = rte_cpu_to_be_32(to.value);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(dataplane::kClusterHeartbeatPort);
  udp->dst_port = rte_cpu_to_be_16(dataplane::kClusterHeartbeatPort);
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload.size()));
  std::memcpy(udp + 1, payload.data(), payload.size());
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  m->l2_len = sizeof(rte_ether_hdr);
  m->l3_len = sizeof(rte_ipv4_hdr);
  return m;
}

std::optional<ReceivedHeartbeat> readHeartbeatFrame(rte_mbuf* m) {
  PacketMeta meta;
  dataplane::parsePacket(m, meta);
  if (meta.action == Action::kDrop || meta.l3 != L3Kind::kIpv4 || meta.ipProto != IPPROTO_UDP ||
      (meta.flags & kFlagFragment) || rte_pktmbuf_data_len(m) != rte_pktmbuf_pkt_len(m))
    return std::nullopt;
  const size_t start = meta.l4Offset + sizeof(rte_udp_hdr);
  const size_t end = meta.l3Offset + meta.ipTotalLength;
  if (end > rte_pktmbuf_data_len(m) || start > end) return std::nullopt;
  auto hb = decodeHeartbeat(rte_pktmbuf_mtod_offset(m, const uint8_t*, start), end - start);
  if (!hb) return std::nullopt;
  return ReceivedHeartbeat{*hb, Ipv4Address{rte_be_to_cpu_32(meta.srcIp)}};
}

}  // namespace nodeplane::control
