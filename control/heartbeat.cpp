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

namespace {

constexpr uint8_t kExportMagic[4] = {'N', 'P', 'E', 'X'};
constexpr size_t kExportFixed = 16;
constexpr size_t kMaxPortName = 15;

bool isPortName(const std::string& n) {
  if (n.size() > kMaxPortName) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

}  // namespace

std::vector<uint8_t> encodeAnnouncement(const ExportAnnouncement& a) {
  for (const std::string* n : {&a.clusterId, &a.namespaceName, &a.name})
    if (n->empty() || n->size() > kMaxId) return {};
  if (a.withdrawn ? !a.ports.empty() || a.headless
                  : (a.ports.empty() && !a.headless) || a.ports.size() > kMaxAnnouncedPorts)
    return {};
  // A headless service's endpoints instead of its address; a withdrawal has neither.
  if (!a.headless ? !a.endpoints.empty() || (!a.withdrawn && a.address.value == 0)
                  : a.address.value != 0 || a.endpoints.size() > kMaxAnnouncedEndpoints)
    return {};
  std::vector<uint8_t> out(kExportFixed);
  std::memcpy(out.data(), kExportMagic, 4);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>((a.withdrawn ? 1 : 0) | (a.headless ? 2 : 0));
  out[6] = static_cast<uint8_t>(a.clusterId.size());
  out[7] = static_cast<uint8_t>(a.namespaceName.size());
  out[8] = static_cast<uint8_t>(a.name.size());
  out[9] = static_cast<uint8_t>(a.ports.size());
  out[10] = out[11] = 0;
  const uint32_t address = rte_cpu_to_be_32(a.address.value);
  std::memcpy(out.data() + 12, &address, 4);
  for (const std::string* n : {&a.clusterId, &a.namespaceName, &a.name})
    out.insert(out.end(), n->begin(), n->end());
  for (const AnnouncedPort& p : a.ports) {
    if (p.name.size() > kMaxPortName) return {};
    out.push_back(p.protocol);
    out.push_back(static_cast<uint8_t>(p.port >> 8));
    out.push_back(static_cast<uint8_t>(p.port));
    out.push_back(static_cast<uint8_t>(p.name.size()));
    out.insert(out.end(), p.name.begin(), p.name.end());
  }
  if (a.headless) {
    out.push_back(static_cast<uint8_t>(a.endpoints.size()));
    for (const AnnouncedEndpoint& e : a.endpoints) {
      if (e.hostname.size() > kMaxId || (!e.hostname.empty() && !isDnsLabel(e.hostname))) return {};
      const uint32_t ip = rte_cpu_to_be_32(e.address.value);
      const auto* bytes = reinterpret_cast<const uint8_t*>(&ip);
      out.insert(out.end(), bytes, bytes + 4);
      out.push_back(static_cast<uint8_t>(e.hostname.size()));
      out.insert(out.end(), e.hostname.begin(), e.hostname.end());
    }
  }
  if (out.size() > kMaxAnnouncementBytes) return {};
  return out;
}

std::optional<ExportAnnouncement> decodeAnnouncement(const uint8_t* data, size_t length) {
  if (data == nullptr || length < kExportFixed || std::memcmp(data, kExportMagic, 4) != 0 ||
      data[4] != kVersion || (data[5] & ~3) != 0 || data[10] != 0 || data[11] != 0 ||
      length > kMaxAnnouncementBytes)
    return std::nullopt;
  const size_t lengths[3] = {data[6], data[7], data[8]};
  const size_t ports = data[9];
  ExportAnnouncement a;
  a.withdrawn = data[5] & 1;
  a.headless = data[5] & 2;
  if (a.withdrawn ? ports != 0 || a.headless
                  : (ports == 0 && !a.headless) || ports > kMaxAnnouncedPorts)
    return std::nullopt;
  uint32_t address;
  std::memcpy(&address, data + 12, 4);
  a.address = Ipv4Address{rte_be_to_cpu_32(address)};
  if (!a.withdrawn && (a.address.value == 0) != a.headless) return std::nullopt;
  size_t at = kExportFixed;
  std::string* names[3] = {&a.clusterId, &a.namespaceName, &a.name};
  for (int i = 0; i < 3; ++i) {
    if (lengths[i] == 0 || lengths[i] > kMaxId || length - at < lengths[i]) return std::nullopt;
    names[i]->assign(reinterpret_cast<const char*>(data + at), lengths[i]);
    if (!isDnsLabel(*names[i])) return std::nullopt;
    at += lengths[i];
  }
  for (size_t i = 0; i < ports; ++i) {
    if (length - at < 4) return std::nullopt;
    AnnouncedPort p;
    p.protocol = data[at];
    p.port = static_cast<uint16_t>(data[at + 1] << 8 | data[at + 2]);
    const size_t nameLength = data[at + 3];
    at += 4;
    if ((p.protocol != 6 && p.protocol != 17) || p.port == 0 || nameLength > kMaxPortName ||
        length - at < nameLength)
      return std::nullopt;
    p.name.assign(reinterpret_cast<const char*>(data + at), nameLength);
    if (!isPortName(p.name)) return std::nullopt;
    at += nameLength;
    a.ports.push_back(std::move(p));
  }
  if (a.headless) {
    if (length - at < 1 || data[at] > kMaxAnnouncedEndpoints) return std::nullopt;
    const size_t count = data[at++];
    for (size_t i = 0; i < count; ++i) {
      if (length - at < 5) return std::nullopt;
      AnnouncedEndpoint e;
      uint32_t ip;
      std::memcpy(&ip, data + at, 4);
      e.address = Ipv4Address{rte_be_to_cpu_32(ip)};
      const size_t nameLength = data[at + 4];
      at += 5;
      if (nameLength > kMaxId || length - at < nameLength) return std::nullopt;
      e.hostname.assign(reinterpret_cast<const char*>(data + at), nameLength);
      if (!e.hostname.empty() && !isDnsLabel(e.hostname)) return std::nullopt;
      at += nameLength;
      a.endpoints.push_back(std::move(e));
    }
  }
  if (at != length) return std::nullopt;
  return a;
}

rte_mbuf* heartbeatFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                         Ipv4Address from, Ipv4Address to, const Heartbeat& heartbeat) {
  return clusterMessageFrame(pool, srcMac, dstMac, from, to, encodeHeartbeat(heartbeat));
}

rte_mbuf* clusterMessageFrame(rte_mempool* pool, const MacAddress& srcMac, const MacAddress& dstMac,
                              Ipv4Address from, Ipv4Address to,
                              const std::vector<uint8_t>& payload) {
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
  const uint8_t* payload = rte_pktmbuf_mtod_offset(m, const uint8_t*, start);
  ReceivedHeartbeat r;
  r.from = Ipv4Address{rte_be_to_cpu_32(meta.srcIp)};
  r.heartbeat = decodeHeartbeat(payload, end - start);
  if (!r.heartbeat) r.announcement = decodeAnnouncement(payload, end - start);
  if (!r.heartbeat && !r.announcement) return std::nullopt;
  return r;
}

}  // namespace nodeplane::control
