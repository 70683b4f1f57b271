#include "control/cluster_keys.h"

#include <rte_ether.h>
#include <rte_ip.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace nodeplane::control {

namespace {

uint64_t readGeneration(const std::string& file) {
  std::ifstream in(file);
  uint64_t g = 0;
  return in >> g ? g : 0;
}

GatewaySas* gatewayOf(PeerMap& peers, uint16_t link) {
  const auto links = linkIndexes(peers);
  if (link >= links.size()) return nullptr;
  auto it = peers.find(links[link].clusterId);
  if (it == peers.end()) return nullptr;
  const size_t gi = link - links[link].first;
  return gi < it->second.gateways.size() ? &it->second.gateways[gi] : nullptr;
}

}  // namespace

uint64_t unixSeconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

ClusterKeys::ClusterKeys(const NodeSettings& settings, std::string generationFile)
    : settings_(settings), generationFile_(std::move(generationFile)) {
  // Kept: after the last one begun. Not kept: after this second, so that a daemon restarted
  // within the second its predecessor began one in does not begin it again.
  last_ = generationFile_.empty() ? unixSeconds() : readGeneration(generationFile_);
}

uint64_t ClusterKeys::nextGeneration(uint64_t unixNow) {
  last_ = std::max(unixNow, last_ + 1);
  ++started_;
  if (!generationFile_.empty()) {
    const std::string tmp = generationFile_ + "." + std::to_string(::getpid()) + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << last_ << "\n";
    }
    std::error_code ec;
    std::filesystem::rename(tmp, generationFile_, ec);
    if (ec)
      spdlog::warn("ESP generations: cannot keep {} in {}: {}", last_, generationFile_,
                   ec.message());
  }
  return last_;
}

Result<ClusterPeer> ClusterKeys::peerFor(const ClusterPeerSpec& spec, const ClusterPeer* existing,
                                         const std::shared_ptr<overlay::EspDevice>& device,
                                         unsigned workers, uint64_t unixNow) {
  ClusterPeer peer;
  peer.spec = spec;
  const bool sameSecret = existing != nullptr && existing->spec.secret == spec.secret;
  if (existing != nullptr)
    peer.retiredSecret = sameSecret ? existing->retiredSecret : existing->spec.secret;
  const bool esp = spec.tunnel == ClusterPeerSpec::Tunnel::kEsp;
  for (const Ipv4Address& gateway : spec.gateways) {
    GatewaySas g;
    g.gateway = gateway;
    const GatewaySas* old = nullptr;
    if (existing != nullptr && existing->spec.tunnel == spec.tunnel)
      for (const GatewaySas& o : existing->gateways)
        if (o.gateway == gateway) old = &o;
    if (esp) {
      if (old != nullptr) {  // what that gateway seals with is its own: still learned
        g.inbound = old->inbound;
        g.previous = old->previous;
      }
      if (old != nullptr && sameSecret && old->outbound) {
        g.outbound = old->outbound;
        g.pending = old->pending;
      } else {
        auto out =
            makeOutboundSas(device, settings_, spec, gateway, nextGeneration(unixNow), workers);
        if (!out) return out.error();
        g.outbound = std::move(*out);
      }
    }
    peer.gateways.push_back(std::move(g));
  }
  return peer;
}

namespace {

enum class Rekey : uint8_t { kNothing, kPromote, kScheduled, kWorn };

Rekey rekeyOf(const GatewaySas& g, std::chrono::seconds interval, ClusterKeys::SteadyTime now) {
  if (!g.outbound) return Rekey::kNothing;
  if (g.pending)
    return now - g.pending->started >= kRekeyOverlap ? Rekey::kPromote : Rekey::kNothing;
  if (g.outbound->mostSealed() >= kRekeyAfterPackets) return Rekey::kWorn;
  return now - g.outbound->started >= interval ? Rekey::kScheduled : Rekey::kNothing;
}

}  // namespace

bool ClusterKeys::due(const PeerMap& peers, SteadyTime now) const {
  const auto interval = std::chrono::seconds(std::max<uint32_t>(1, settings_.clusterRekeySeconds));
  for (const auto& [id, peer] : peers)
    for (const GatewaySas& g : peer.gateways)
      if (rekeyOf(g, interval, now) != Rekey::kNothing) return true;
  return false;
}

bool ClusterKeys::rekey(PeerMap& peers, const std::shared_ptr<overlay::EspDevice>& device,
                        unsigned workers, SteadyTime now, uint64_t unixNow) {
  const auto interval = std::chrono::seconds(std::max<uint32_t>(1, settings_.clusterRekeySeconds));
  bool changed = false;
  for (auto& [id, peer] : peers) {
    for (GatewaySas& g : peer.gateways) {
      const Rekey what = rekeyOf(g, interval, now);
      if (what == Rekey::kNothing) continue;
      if (what == Rekey::kPromote) {
        spdlog::info("cluster peer {} gateway {}: sealing with generation {} (was {})", id,
                     g.gateway.toString(), g.pending->generation, g.outbound->generation);
        g.outbound = std::move(g.pending);
        changed = true;
        continue;
      }
      auto next = makeOutboundSas(device, settings_, peer.spec, g.gateway, nextGeneration(unixNow),
                                  workers);
      if (!next) {
        spdlog::error("cluster peer {} gateway {}: rekeying: {}", id, g.gateway.toString(),
                      next.error().message);
        continue;
      }
      (*next)->started = now;
      g.pending = std::move(*next);
      spdlog::info("cluster peer {} gateway {}: generation {} begun ({}), heartbeats first", id,
                   g.gateway.toString(), g.pending->generation,
                   what == Rekey::kWorn ? "worn" : "scheduled");
      changed = true;
    }
  }
  return changed;
}

bool ClusterKeys::learn(PeerMap& peers, uint16_t link, const rte_mbuf* m, rte_mempool* pool,
                        const std::shared_ptr<overlay::EspDevice>& device, unsigned workers,
                        uint64_t unixNow, DropReason* refused) {
  *refused = DropReason::kEspGenerationRefused;
  GatewaySas* g = gatewayOf(peers, link);
  if (g == nullptr || device == nullptr) return false;
  const ClusterPeer* peer = nullptr;
  for (const auto& [id, p] : peers)
    for (const GatewaySas& gs : p.gateways)
      if (&gs == g) peer = &p;
  // The SPI, behind Ethernet and the outer IPv4 header (read safely, never past the packet).
  uint8_t header[sizeof(rte_ipv4_hdr)];
  const auto* ip = static_cast<const rte_ipv4_hdr*>(
      rte_pktmbuf_read(m, sizeof(rte_ether_hdr), sizeof(header), header));
  if (ip == nullptr) return false;
  const uint32_t ihl = (ip->version_ihl & 0xfu) * 4u;
  rte_be32_t wire;
  const void* at = rte_pktmbuf_read(m, sizeof(rte_ether_hdr) + ihl, sizeof(wire), &wire);
  if (ihl < sizeof(rte_ipv4_hdr) || at == nullptr) return false;
  std::memcpy(&wire, at, sizeof(wire));
  const uint32_t spi = rte_be_to_cpu_32(wire);
  const uint64_t generation = spiGeneration(spi, unixNow);
  const uint64_t oldest =
      2ull * std::max<uint32_t>(1, settings_.clusterRekeySeconds) + kGenerationSkewSeconds;
  if ((g->inbound && generation <= g->inbound->generation) ||
      generation > unixNow + kGenerationSkewSeconds || generation + oldest < unixNow) {
    *refused = DropReason::kEspGenerationStale;
    return false;
  }
  for (const std::string* secret : {&peer->spec.secret, &peer->retiredSecret}) {
    if (secret->empty()) continue;
    auto in = makeInboundSas(device, settings_, peer->spec.clusterId, g->gateway, generation,
                             *secret, workers);
    if (!in || (*in)->byIndex[spiIndex(spi)].byWorker.empty()) continue;
    rte_mbuf* copy = rte_pktmbuf_copy(m, pool, 0, UINT32_MAX);
    if (copy == nullptr) return false;
    const bool opened = (*in)->byIndex[spiIndex(spi)].byWorker[0]->process(&copy, 1) == 1;
    rte_pktmbuf_free(copy);
    if (!opened) continue;
    spdlog::info("cluster peer {} gateway {}: learned its generation {}{}", peer->spec.clusterId,
                 g->gateway.toString(), generation,
                 secret == &peer->retiredSecret ? " (the secret before)" : "");
    g->previous = std::move(g->inbound);
    g->inbound = std::move(*in);
    ++learned_;
    return true;
  }
  return false;
}

}  // namespace nodeplane::control
