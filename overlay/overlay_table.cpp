#include "overlay/overlay_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>

#include <atomic>
#include <cstring>
#include <string>

#include "core/ether.h"

namespace nodeplane::overlay {

namespace {

std::atomic<uint64_t> tableSequence{0};

uint32_t sum16(const void* data, size_t len) {
  const auto* w = static_cast<const uint16_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i < len / 2; ++i) sum += w[i];
  return sum;
}

void writeTemplate(RemoteNode& n, const OverlaySettings& s, rte_be32_t vniField) {
  std::memset(n.outer, 0, sizeof(n.outer));
  auto* eth = reinterpret_cast<rte_ether_hdr*>(n.outer);
  // dst_addr: the next hop's MAC, filled in when resolved
  eth->src_addr = toEther(s.uplinkMac);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);  // the inner packet always fits
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(s.localIp.value);
  ip->dst_addr = n.ip;
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->dst_port = rte_cpu_to_be_16(s.udpPort);
  udp->dgram_cksum = 0;  // allowed for VXLAN over IPv4 (RFC 7348), as the kernel sends it
  auto* vxlan = reinterpret_cast<rte_vxlan_hdr*>(udp + 1);
  vxlan->vx_flags = rte_cpu_to_be_32(static_cast<uint32_t>(kVxlanFlagVni) << 24);
  vxlan->vx_vni = vniField;
  n.ipSumNoLength = sum16(ip, sizeof(*ip));
}

}  // namespace

OverlayTable::~OverlayTable() {
  rte_hash_free(bySource_);
}

Result<std::shared_ptr<const OverlayTable>> OverlayTable::build(
    const OverlaySettings& s, const std::vector<RemoteNodeSpec>& specs,
    const std::optional<GatewaySpec>& gateway, int socketId) {
  std::shared_ptr<OverlayTable> t(new OverlayTable());
  t->localIp_ = rte_cpu_to_be_32(s.localIp.value);
  t->udpPort_ = rte_cpu_to_be_16(s.udpPort);
  t->vniField_ = rte_cpu_to_be_32(s.vni << 8);
  t->vtepMac_ = toEther(s.vtepMac);
  t->uplinkMac_ = toEther(s.uplinkMac);
  t->uplinkPort_ = s.uplinkPort;
  t->innerMtu_ = static_cast<uint16_t>(s.mtu - kOverhead);
  t->txIpChecksumOffload_ = s.txIpChecksumOffload;
  if (gateway) {
    t->hasGateway_ = true;
    t->gatewayIp_ = rte_cpu_to_be_32(gateway->ip.value);
    t->gatewayResolved_ = gateway->mac.has_value();
    if (gateway->mac) t->gatewayMac_ = toEther(*gateway->mac);
  }

  t->nodes_.resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    RemoteNode& n = t->nodes_[i];
    n.ip = rte_cpu_to_be_32(specs[i].ip.value);
    n.nextHopIp = rte_cpu_to_be_32(specs[i].nextHop.value);
    n.vtepMac = toEther(specs[i].vtepMac);
    writeTemplate(n, s, t->vniField_);
    n.resolved = specs[i].nextHopMac.has_value();
    if (n.resolved) std::memcpy(n.outer, specs[i].nextHopMac->bytes.data(), 6);
  }

  const std::string name = "np_ovl_" + std::to_string(tableSequence.fetch_add(1));
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = std::max<uint32_t>(64, static_cast<uint32_t>(specs.size() * 2));
  params.key_len = sizeof(rte_be32_t);
  params.hash_func = rte_hash_crc;
  params.socket_id = socketId;
  t->bySource_ = rte_hash_create(&params);
  if (t->bySource_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("overlay: rte_hash_create: ") + rte_strerror(rte_errno));
  for (size_t i = 0; i < t->nodes_.size(); ++i) {
    const rte_be32_t key = t->nodes_[i].ip;
    if (rte_hash_add_key_data(t->bySource_, &key, reinterpret_cast<void*>(i)) < 0)
      return makeError(ErrorCode::kResourceExhausted, "overlay: node hash full");
  }
  return std::shared_ptr<const OverlayTable>(std::move(t));
}

int32_t OverlayTable::findBySource(rte_be32_t ip) const {
  void* data = nullptr;
  if (rte_hash_lookup_data(bySource_, &ip, &data) < 0) return -1;
  return static_cast<int32_t>(reinterpret_cast<uintptr_t>(data));
}

}  // namespace nodeplane::overlay
