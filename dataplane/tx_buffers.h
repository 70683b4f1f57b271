// Per-worker transmit buffers, one per output port, sent on the worker's own TX queue of an
// ethdev port (every one has a TX queue per worker: no locks) or through a pod port's socket. A
// buffer is sent when it fills and at the end of every worker loop iteration; what the queue
// refuses is freed and counted.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>

#include "core/counters.h"
#include "core/packet.h"
#include "dataplane/capture.h"
#include "dataplane/flow_log.h"
#include "dataplane/offload.h"
#include "dataplane/pod_port.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"
#include "overlay/encap.h"

namespace nodeplane::dataplane {

class TxBuffers {
 public:
  static constexpr uint16_t kCapacity = kMaxBurst;

  // `podPorts`: the engine's table of pod ports (kMaxPodPorts entries), read-only here. `gso`:
  // the pools super-packets are segmented with on their way to an ethdev (offload.h).
  // `capture`: where the engine installs a capture session (capture.h); null: never.
  TxBuffers(uint16_t txQueue, WorkerCounters* counters, PodPort* const* podPorts,
            const rte_gso_ctx& gso, const std::atomic<CaptureSession*>* capture = nullptr)
      : queue_(txQueue), counters_(counters), podPorts_(podPorts), gso_(gso), capture_(capture) {}

  void enqueue(uint16_t port, rte_mbuf* m) {
    Buffer& b = buffers_[port];
    if (b.count == kCapacity) flush(port);
    if (!b.dirty) {
      b.dirty = true;
      dirty_[dirtyCount_++] = port;
    }
    b.pkts[b.count++] = m;
  }

  // The links to other clusters of the snapshot this loop iteration runs under (the worker sets
  // it before the first packet is queued); null: none.
  void setClusterLinks(const ClusterLinkTable* links) { links_ = links; }

  void flushAll() {
    for (uint16_t i = 0; i < dirtyCount_; ++i) {
      flush(dirty_[i]);
      buffers_[dirty_[i]].dirty = false;
    }
    dirtyCount_ = 0;
  }

 private:
  struct Buffer {
    uint16_t count = 0;
    bool dirty = false;
    rte_mbuf* pkts[kCapacity];
  };

  void flush(uint16_t port) {
    Buffer& b = buffers_[port];
    if (b.count == 0) return;
    if (isLinkPort(port)) {
      flushLink(port - kFirstLinkPort, b);
    } else if (isPodPort(port)) {
      // TCP segments from a wire go in as super-packets (offload.h).
      const uint16_t count = coalesceForPod(b.pkts, b.count, *counters_);
      tap(port, b.pkts, count);
      // The kernel copied what it took: every mbuf is ours to free either way.
      counters_->txPackets.add(
          podPorts_[port - kFirstPodPort]->transmit(b.pkts, count, *counters_));
      rte_pktmbuf_free_bulk(b.pkts, count);
    } else {
      // A wire takes what the pods left to offload done (offload.h).
      rte_mbuf* wire[kCapacity + kMaxGsoSegments];
      uint16_t count = 0;
      for (uint16_t i = 0; i < b.count; ++i) {
        count = static_cast<uint16_t>(count +
                                      prepareForWire(b.pkts[i], wire + count, gso_, *counters_));
        if (count > kCapacity) {
          sendToEthdev(port, wire, count);
          count = 0;
        }
      }
      sendToEthdev(port, wire, count);
    }
    b.count = 0;
  }

  // Packets for another cluster: segmented and checksummed as for any wire, each in one buffer
  // (copied when rte_gso left it a header and payload references), sealed with this worker's SA
  // for the link, addressed to the gateway's MAC and sent on the uplink. Until that MAC is known
  // the link drops: nothing leaves unsealed.
  void flushLink(uint16_t index, Buffer& b) {
    const ClusterLink* link =
        links_ != nullptr && index < links_->links.size() ? &links_->links[index] : nullptr;
    if (link == nullptr || !link->resolved ||
        (link->vxlan == nullptr && link->outbound.size() <= queue_)) {
      counters_->drop(DropReason::kClusterLinkUnresolved, b.count);
      rte_pktmbuf_free_bulk(b.pkts, b.count);
      return;
    }
    rte_mbuf* wire[kCapacity + kMaxGsoSegments];
    uint16_t count = 0;
    for (uint16_t i = 0; i < b.count; ++i) {
      count =
          static_cast<uint16_t>(count + prepareForWire(b.pkts[i], wire + count, gso_, *counters_));
      if (count > kCapacity) {
        sealAndSend(*link, wire, count);
        count = 0;
      }
    }
    sealAndSend(*link, wire, count);
  }

  // A VXLAN link: the inner frame addressed VTEP to VTEP, the outer headers from the link's
  // template, out the uplink.
  void encapsulateAndSend(const ClusterLink& link, rte_mbuf** pkts, uint16_t count) {
    const overlay::RemoteNode& gateway = link.vxlan->node(0);
    uint16_t kept = 0;
    for (uint16_t i = 0; i < count; ++i) {
      rte_mbuf* m = pkts[i];
      auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
      eth->dst_addr = link.innerDstMac;
      eth->src_addr = link.innerSrcMac;
      // Entropy for the outer source port: the inner addresses and ports.
      const uint16_t entropy =
          m->data_len >= 38 ? static_cast<uint16_t>(rte_hash_crc(
                                  rte_pktmbuf_mtod_offset(m, const uint8_t*, 26), 12, 0x6e70))
                            : 0;
      if (!overlay::encapsulate(m, gateway, *link.vxlan, entropy)) {
        counters_->drop(DropReason::kEncapNoHeadroom);
        rte_pktmbuf_free(m);
        continue;
      }
      pkts[kept++] = m;
    }
    sendToEthdev(link.uplinkPort, pkts, kept);
  }

  void sealAndSend(const ClusterLink& link, rte_mbuf** pkts, uint16_t count) {
    if (link.vxlan != nullptr) return encapsulateAndSend(link, pkts, count);
    uint16_t kept = 0;
    for (uint16_t i = 0; i < count; ++i) {
      rte_mbuf* m = pkts[i];
      if (m->nb_segs != 1 || RTE_MBUF_HAS_EXTBUF(m) || RTE_MBUF_CLONED(m)) {
        rte_mbuf* flat = rte_pktmbuf_copy(m, gso_.direct_pool, 0, UINT32_MAX);
        rte_pktmbuf_free(m);
        if (flat == nullptr || flat->nb_segs != 1) {
          if (flat != nullptr) rte_pktmbuf_free(flat);
          counters_->drop(DropReason::kEspEncapFailed);
          continue;
        }
        m = flat;
      }
      m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
      pkts[kept++] = m;
    }
    for (uint16_t at = 0; at < kept;) {
      const uint16_t n = std::min<uint16_t>(64, static_cast<uint16_t>(kept - at));
      rte_mbuf** batch = pkts + at;
      const uint16_t sealed = link.outbound[queue_]->process(batch, n);
      for (uint16_t i = 0; i < sealed; ++i) {
        auto* eth = rte_pktmbuf_mtod(batch[i], rte_ether_hdr*);
        eth->dst_addr = link.dstMac;
        eth->src_addr = link.srcMac;
      }
      counters_->espSealed.add(sealed);
      if (sealed < n) {
        counters_->drop(DropReason::kEspEncapFailed, n - sealed);
        rte_pktmbuf_free_bulk(batch + sealed, n - sealed);
      }
      sendToEthdev(link.uplinkPort, batch, sealed);
      at = static_cast<uint16_t>(at + n);
    }
  }

  void sendToEthdev(uint16_t port, rte_mbuf** pkts, uint16_t count) {
    if (count == 0) return;
    tap(port, pkts, count);
    const uint16_t sent = rte_eth_tx_burst(port, queue_, pkts, count);
    counters_->txPackets.add(sent);
    if (sent < count) {
      counters_->drop(DropReason::kTxQueueFull, count - sent);
      rte_pktmbuf_free_bulk(pkts + sent, count - sent);
    }
  }

  // Packets leaving on `port`, as they go, to the capture session that wants them.
  void tap(uint16_t port, rte_mbuf* const* pkts, uint16_t count) {
    if (capture_ == nullptr) return;
    CaptureSession* c = capture_->load(std::memory_order_acquire);
    if (c != nullptr && c->wants(port, CaptureDirection::kTx))
      c->offer(pkts, count, CaptureDirection::kTx, queue_);
  }

  uint16_t queue_;
  WorkerCounters* counters_;
  PodPort* const* podPorts_;
  rte_gso_ctx gso_;
  const std::atomic<CaptureSession*>* capture_;
  const ClusterLinkTable* links_ = nullptr;
  uint16_t dirtyCount_ = 0;
  uint16_t dirty_[kMaxPorts];
  Buffer buffers_[kMaxPorts];
};

// A dropped packet's flow-log record (flow_log.h), unless the stage that dropped it wrote one.
inline void logDrop(const Burst& burst, uint16_t i, WorkerContext& ctx) {
  const PacketMeta& meta = burst.meta[i];
  if (meta.aux == kAuxFlowLogged) return;
  FlowRecord r = flowRecordOf(meta, burst.inPort, ctx.workerIndex, FlowEvent::kDropped);
  r.reason = meta.action == Action::kDrop ? meta.drop : DropReason::kUnclaimed;
  ctx.flowLog->record(ctx.workerIndex, r);
}

// Hands every packet of the burst to its TX buffer or to the control thread, or frees it and
// counts its drop reason.
inline void dispatchBurst(Burst& burst, TxBuffers& tx, WorkerContext& ctx) {
  WorkerCounters& counters = *ctx.counters;
  rte_mbuf* dropped[kMaxBurst];
  uint16_t droppedCount = 0;
  const bool flowLog = ctx.flowLog != nullptr;
  for (uint16_t i = 0; i < burst.count; ++i) {
    const PacketMeta& meta = burst.meta[i];
    if (meta.action == Action::kTransmit) {
      tx.enqueue(meta.outPort, burst.pkts[i]);
      continue;
    }
    if (meta.action == Action::kPunt) {
      PuntedPacket p{burst.pkts[i], static_cast<uint8_t>(meta.punt),
                     static_cast<uint8_t>(ctx.workerIndex), burst.inPort, meta.aux};
      if (ctx.puntRing != nullptr && rte_ring_sp_enqueue_elem(ctx.puntRing, &p, sizeof(p)) == 0) {
        counters.punted.add();
        continue;
      }
      counters.drop(DropReason::kPuntQueueFull);
      dropped[droppedCount++] = burst.pkts[i];
      continue;
    }
    counters.drop(meta.action == Action::kDrop ? meta.drop : DropReason::kUnclaimed);
    if (flowLog) logDrop(burst, i, ctx);
    dropped[droppedCount++] = burst.pkts[i];
  }
  if (droppedCount != 0) rte_pktmbuf_free_bulk(dropped, droppedCount);
}

}  // namespace nodeplane::dataplane
