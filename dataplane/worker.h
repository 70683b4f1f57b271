// One run-to-completion loop per worker lcore (docs/architecture.md, "The packet path"): load the
// snapshot, poll the RX queues it assigns this worker, run the stages over each burst, dispatch,
// flush TX buffers, report a quiescent state. No locks, allocation, exceptions, syscalls or logging
// per packet; the only syscall is the optional sleep after an idle stretch (offline for QSBR
// meanwhile).
#pragma once

#include <atomic>
#include <memory>

#include "core/counters.h"
#include "dataplane/snapshot.h"
#include "dataplane/tx_buffers.h"
#include "dataplane/worker_context.h"

struct rte_rcu_qsbr;
struct rte_ring;

namespace nodeplane::dataplane {

struct WorkerConfig {
  uint16_t index = 0;
  uint16_t count = 1;  // workers in all
  uint16_t burstSize = 32;
  uint32_t idleSleepUs = 0;
};

class Worker {
 public:
  // `podPorts`: the engine's pod-port table (kMaxPodPorts entries); an entry is set before a
  // snapshot polling or routing to it is published, and cleared only after a grace period.
  Worker(const WorkerConfig& config, const SnapshotPublisher& publisher, rte_rcu_qsbr* qsbr,
         const std::atomic<bool>& stop, rte_ring* puntRing, rte_ring* injectRing,
         lb::ConnTracker* conntrack, FlowLog* flowLog, rte_mempool* pool, rte_mempool* indirectPool,
         PodPort* const* podPorts, const std::atomic<CaptureSession*>* capture = nullptr);

  // The lcore entry point (rte_eal_remote_launch).
  static int launch(void* worker);
  const WorkerCounters& counters() const { return counters_; }

 private:
  void run();

  WorkerConfig config_;
  const SnapshotPublisher& publisher_;
  rte_rcu_qsbr* qsbr_;
  const std::atomic<bool>& stop_;
  rte_ring* injectRing_;
  rte_mempool* pool_;
  PodPort* const* podPorts_;
  const std::atomic<CaptureSession*>* capture_;
  WorkerCounters counters_;
  WorkerContext context_;
  TxBuffers tx_;
};

}  // namespace nodeplane::dataplane
