#include "control/underlay_resolver.h"

#include <rte_arp.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "core/checksum.h"
#include "core/ether.h"
#include "dataplane/parse.h"
#include "overlay/encap.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

constexpr size_t kPuntBatch = 64;
constexpr uint16_t kMinFrame = 60;
constexpr unsigned kMaxFragments = 16;

}  // namespace

void UnderlayResolver::setUplink(const Uplink& uplink) {
  uplink_ = uplink;
  sendArp(uplink.localIp, std::nullopt, /*gratuitous=*/true);
}

bool UnderlayResolver::setWanted(const std::set<Ipv4Address>& wanted, TimePoint now) {
  return neighbors_.setWanted(wanted, now);
}

bool UnderlayResolver::service(TimePoint now, const dp::Snapshot* current) {
  bool changed = false;
  dp::PuntedPacket punted[kPuntBatch];
  size_t n;
  while ((n = backend_.drainPunted(punted, kPuntBatch)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      rte_mbuf* m = punted[i].mbuf;
      switch (static_cast<PuntReason>(punted[i].reason)) {
        case PuntReason::kArp:
          changed |= handleArp(m, now);
          break;
        case PuntReason::kAwaitNeighbor:
          handleAwaitingNeighbor(m, Ipv4Address{rte_be_to_cpu_32(punted[i].aux)});
          break;
        case PuntReason::kFragment:
          handleFragment(m, current);
          break;
        case PuntReason::kHeartbeat:
        case PuntReason::kEspUnknownSpi: {
          const auto& handler = static_cast<PuntReason>(punted[i].reason) == PuntReason::kHeartbeat
                                    ? onHeartbeat_
                                    : onEspUnknownSpi_;
          if (handler)
            handler(m, punted[i].aux);
          else
            drop(m, DropReason::kUnclaimed);
          break;
        }
        case PuntReason::kNone:
          drop(m, DropReason::kUnclaimed);
          break;
      }
    }
    if (n < kPuntBatch) break;
  }

  bool withdrawn = false;
  std::vector<rte_mbuf*> gaveUp;
  for (const auto& probe : neighbors_.due(now, &withdrawn, &gaveUp))
    sendArp(probe.ip, probe.unicastTo);
  for (rte_mbuf* m : gaveUp) drop(m, DropReason::kNeighborUnresolved);
  return changed || withdrawn;
}

bool UnderlayResolver::handleArp(rte_mbuf* m, TimePoint now) {
  PacketMeta meta;
  dp::parsePacket(m, meta);
  bool changed = false;
  if (meta.action == Action::kContinue && meta.l3 == L3Kind::kArp) {
    auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, meta.l3Offset);
    const Ipv4Address ip{rte_be_to_cpu_32(arp->arp_data.arp_sip)};
    const MacAddress mac = fromEther(arp->arp_data.arp_sha);
    changed = neighbors_.learn(ip, mac, now);
    if (changed) spdlog::info("underlay neighbour {} is at {}", ip.toString(), mac.toString());
    if (neighbors_.mac(ip)) sendHeld(ip, mac);
  }
  rte_pktmbuf_free(m);  // consumed: the reply was for us
  return changed;
}

void UnderlayResolver::transmitEncapsulated(rte_mbuf* m, Ipv4Address nextHop) {
  if (auto mac = neighbors_.mac(nextHop)) {
    // The template went out before the MAC was known: fill in the outer destination.
    std::memcpy(rte_pktmbuf_mtod(m, void*), mac->bytes.data(), 6);
    if (!uplink_ || !backend_.inject(uplink_->port, m)) drop(m, DropReason::kTxQueueFull);
    return;
  }
  if (!neighbors_.hold(nextHop, m)) drop(m, DropReason::kNeighborQueueFull);
}

void UnderlayResolver::handleAwaitingNeighbor(rte_mbuf* m, Ipv4Address nextHop) {
  transmitEncapsulated(m, nextHop);
}

void UnderlayResolver::sendHeld(Ipv4Address ip, const MacAddress& mac) {
  for (rte_mbuf* m : neighbors_.release(ip)) {
    std::memcpy(rte_pktmbuf_mtod(m, void*), mac.bytes.data(), 6);
    if (!uplink_ || !backend_.inject(uplink_->port, m)) drop(m, DropReason::kTxQueueFull);
  }
}

void UnderlayResolver::handleFragment(rte_mbuf* m, const dp::Snapshot* current) {
  // Route again under the snapshot in force: the one the worker used may be gone.
  PacketMeta meta;
  dp::parsePacket(m, meta);
  if (meta.action != Action::kContinue || meta.l3 != L3Kind::kIpv4 || current == nullptr ||
      !current->overlay)
    return drop(m, DropReason::kFragmentationFailed);
  const uint32_t dst = rte_be_to_cpu_32(meta.dstIp);
  uint64_t nhIndex = 0;
  current->routes->lookup(&dst, &nhIndex, 1);
  const dp::NextHop& nh = current->routes->nextHop(nhIndex);
  if (nh.kind == dp::NextHopKind::kRemoteCluster) return fragmentForCluster(m, meta, nh, *current);
  if (nh.kind != dp::NextHopKind::kRemoteNode) return drop(m, DropReason::kNoRoute);
  const overlay::OverlayTable& table = *current->overlay;
  const overlay::RemoteNode& node = table.node(nh.remoteNode);

  rte_mbuf* frames[kMaxFragments];
  const int count = fragmentFrames(m, meta, table.innerMtu(), DropReason::kEncapNoHeadroom, frames);
  const uint16_t entropy = overlay::flowEntropy(meta);
  for (int i = 0; i < count; ++i) {
    rte_mbuf* f = frames[i];
    auto* eth = rte_pktmbuf_mtod(f, rte_ether_hdr*);
    eth->dst_addr = node.vtepMac;
    eth->src_addr = table.vtepMac();
    if (!overlay::encapsulate(f, node, table, entropy)) {
      drop(f, DropReason::kEncapNoHeadroom);
      continue;
    }
    backend_.controlCounters().fragmentsSent.add();
    transmitEncapsulated(f, Ipv4Address{rte_be_to_cpu_32(node.nextHopIp)});
  }
}

// For another cluster: the fragments go to the link's TX buffer on a worker, which seals them
// like any packet for that cluster (and writes the gateway's MACs then).
void UnderlayResolver::fragmentForCluster(rte_mbuf* m, const PacketMeta& meta,
                                          const dp::NextHop& nh, const dp::Snapshot& current) {
  if (!current.clusterLinks || nh.remoteNode >= current.clusterLinks->links.size())
    return drop(m, DropReason::kNoRoute);
  const dp::ClusterLink& link = current.clusterLinks->links[nh.remoteNode];
  rte_mbuf* frames[kMaxFragments];
  const int count = fragmentFrames(m, meta, static_cast<uint16_t>(link.innerMtu),
                                   DropReason::kEspEncapFailed, frames);
  const uint16_t port = static_cast<uint16_t>(dp::kFirstLinkPort + nh.remoteNode);
  for (int i = 0; i < count; ++i) {
    backend_.controlCounters().fragmentsSent.add();
    if (!backend_.inject(port, frames[i])) drop(frames[i], DropReason::kTxQueueFull);
  }
}

int UnderlayResolver::fragmentFrames(rte_mbuf* m, const PacketMeta& meta, uint16_t mtu,
                                     DropReason noHeadroom, rte_mbuf** frames) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1) {
    drop(m, DropReason::kIpv4TtlExpired);
    return 0;
  }
  decrementTtl(ip);
  rte_pktmbuf_adj(m, meta.l3Offset);  // rte_ip_frag works on the IPv4 datagram
  if (m->pkt_len > meta.ipTotalLength) rte_pktmbuf_trim(m, m->pkt_len - meta.ipTotalLength);
  rte_mbuf* fragments[kMaxFragments];
  const int count = rte_ipv4_fragment_packet(m, fragments, kMaxFragments, mtu, backend_.mempool(),
                                             backend_.mempool());
  rte_pktmbuf_free(m);  // the fragments hold what they need of it
  if (count <= 0) {
    backend_.controlCounters().drop(DropReason::kFragmentationFailed);
    return 0;
  }
  int made = 0;
  for (int i = 0; i < count; ++i) {
    rte_mbuf* f = fragments[i];
    if (rte_pktmbuf_linearize(f) != 0) {  // one segment: any PMD can send it
      drop(f, DropReason::kFragmentationFailed);
      continue;
    }
    // rte_ip_frag leaves the header checksum to the caller (or a TX offload).
    auto* fragIp = rte_pktmbuf_mtod(f, rte_ipv4_hdr*);
    fragIp->hdr_checksum = 0;
    fragIp->hdr_checksum = rte_ipv4_cksum(fragIp);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(f, sizeof(rte_ether_hdr)));
    if (eth == nullptr) {
      drop(f, noHeadroom);
      continue;
    }
    std::memset(eth, 0, sizeof(*eth));
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    frames[made++] = f;
  }
  return made;
}

void UnderlayResolver::sendArp(Ipv4Address target, std::optional<MacAddress> unicastTo,
                               bool gratuitous) {
  if (!uplink_) return;
  rte_mbuf* m = rte_pktmbuf_alloc(backend_.mempool());
  if (m == nullptr) return;
  auto* frame = rte_pktmbuf_mtod(m, uint8_t*);
  std::memset(frame, 0, kMinFrame);
  m->data_len = m->pkt_len = kMinFrame;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  eth->dst_addr =
      unicastTo ? toEther(*unicastTo) : rte_ether_addr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
  eth->src_addr = toEther(uplink_->mac);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = toEther(uplink_->mac);
  arp->arp_data.arp_sip = rte_cpu_to_be_32(uplink_->localIp.value);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(gratuitous ? uplink_->localIp.value : target.value);
  if (!backend_.inject(uplink_->port, m)) {
    rte_pktmbuf_free(m);
    return;
  }
  backend_.controlCounters().arpRequests.add();
}

void UnderlayResolver::drop(rte_mbuf* m, DropReason reason) {
  backend_.controlCounters().drop(reason);
  rte_pktmbuf_free(m);
}

}  // namespace nodeplane::control
