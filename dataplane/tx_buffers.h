// Per-worker transmit buffers, one per output port, sent on the worker's own TX queue of an
// ethdev port (every one has a TX queue per worker: no locks) or through a pod port's socket. A
// buffer is sent when it fills and at the end of every worker loop iteration; what the queue
// refuses is freed and counted.
#pragma once

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "core/counters.h"
#include "core/packet.h"
#include "dataplane/pod_port.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

class TxBuffers {
 public:
  static constexpr uint16_t kCapacity = kMaxBurst;

  // `podPorts`: the engine's table of pod ports (kMaxPodPorts entries), read-only here.
  TxBuffers(uint16_t txQueue, WorkerCounters* counters, PodPort* const* podPorts)
      : queue_(txQueue), counters_(counters), podPorts_(podPorts) {}

  void enqueue(uint16_t port, rte_mbuf* m) {
    Buffer& b = buffers_[port];
    if (b.count == kCapacity) flush(port);
    if (!b.dirty) {
      b.dirty = true;
      dirty_[dirtyCount_++] = port;
    }
    b.pkts[b.count++] = m;
  }

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
    if (isPodPort(port)) {
      // The kernel copied what it took: every mbuf is ours to free either way.
      const uint16_t sent = podPorts_[port - kFirstPodPort]->transmit(b.pkts, b.count);
      counters_->txPackets.add(sent);
      if (sent < b.count) counters_->drop(DropReason::kTxQueueFull, b.count - sent);
      rte_pktmbuf_free_bulk(b.pkts, b.count);
    } else {
      const uint16_t sent = rte_eth_tx_burst(port, queue_, b.pkts, b.count);
      counters_->txPackets.add(sent);
      if (sent < b.count) {
        counters_->drop(DropReason::kTxQueueFull, b.count - sent);
        rte_pktmbuf_free_bulk(b.pkts + sent, b.count - sent);
      }
    }
    b.count = 0;
  }

  uint16_t queue_;
  WorkerCounters* counters_;
  PodPort* const* podPorts_;
  uint16_t dirtyCount_ = 0;
  uint16_t dirty_[kMaxPorts];
  Buffer buffers_[kMaxPorts];
};

// Hands every packet of the burst to its TX buffer or to the control thread, or frees it and
// counts its drop reason.
inline void dispatchBurst(Burst& burst, TxBuffers& tx, WorkerContext& ctx) {
  WorkerCounters& counters = *ctx.counters;
  rte_mbuf* dropped[kMaxBurst];
  uint16_t droppedCount = 0;
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
    dropped[droppedCount++] = burst.pkts[i];
  }
  if (droppedCount != 0) rte_pktmbuf_free_bulk(dropped, droppedCount);
}

}  // namespace nodeplane::dataplane
