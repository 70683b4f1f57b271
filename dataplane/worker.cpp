#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>

#include "dataplane/pipeline.h"
#include "lb/conntrack.h"
#include "lb/service_table.h"

namespace nodeplane::dataplane {

namespace {
// Empty loop iterations before an idle worker sleeps (when sleeping is enabled at all).
constexpr uint32_t kIdleLoopsBeforeSleep = 1024;
// Connection-table entries this worker ages per loop iteration (its own shard).
constexpr uint32_t kAgingBudget = 64;
// ESP of unknown SPIs this worker hands the control thread to learn a new SA generation from
// (a peer gateway's next generation shows itself with its first heartbeat): a few a second.
constexpr uint32_t kEspLearnPerSecond = 20;
constexpr uint32_t kEspLearnBurst = 4;
}  // namespace

Worker::Worker(const WorkerConfig& config, const SnapshotPublisher& publisher, rte_rcu_qsbr* qsbr,
               const std::atomic<bool>& stop, rte_ring* puntRing, rte_ring* injectRing,
               lb::ConnTracker* conntrack, FlowLog* flowLog, rte_mempool* pool,
               rte_mempool* indirectPool, PodPort* const* podPorts,
               const std::atomic<CaptureSession*>* capture)
    : config_(config),
      publisher_(publisher),
      qsbr_(qsbr),
      stop_(stop),
      injectRing_(injectRing),
      pool_(pool),
      podPorts_(podPorts),
      capture_(capture),
      tx_(config.index, &counters_, podPorts, makeGsoContext(pool, indirectPool), capture) {
  context_.workerIndex = config.index;
  context_.counters = &counters_;
  context_.puntRing = puntRing;
  context_.conntrack = conntrack;
  context_.flowLog = flowLog;
  context_.workerCount = config.count;
  config_.burstSize = std::clamp<uint16_t>(config_.burstSize, 1, kMaxBurst);
}

int Worker::launch(void* worker) {
  static_cast<Worker*>(worker)->run();
  return 0;
}

void Worker::run() {
  const unsigned id = config_.index;
  rte_rcu_qsbr_thread_register(qsbr_, id);
  rte_rcu_qsbr_thread_online(qsbr_, id);

  Burst burst;
  uint64_t configuredGeneration = ~uint64_t{0};
  uint64_t last = rte_rdtsc();
  const uint64_t start = last;
  const uint64_t tscPerMs = std::max<uint64_t>(1, rte_get_tsc_hz() / 1000);
  lb::ConnShard* shard = context_.conntrack ? &context_.conntrack->shard(id) : nullptr;
  uint32_t idleLoops = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    const Snapshot* snapshot = publisher_.current();
    uint32_t received = 0;
    context_.nowMs = static_cast<uint32_t>((rte_rdtsc() - start) / tscPerMs);
    if (snapshot->generation != configuredGeneration) {
      context_.icmpLimiter.configure(rte_get_tsc_hz(), snapshot->settings.icmpErrorsPerSecond,
                                     snapshot->settings.icmpErrorBurst);
      context_.espLearnLimiter.configure(rte_get_tsc_hz(), kEspLearnPerSecond, kEspLearnBurst);
      configuredGeneration = snapshot->generation;
      context_.generation = configuredGeneration;
    }
    tx_.setClusterLinks(snapshot->clusterLinks.get());
    // What the control thread wants sent (ARP requests, packets that waited for ARP, fragments).
    InjectedPacket injected[kMaxBurst];
    const unsigned injectedCount = rte_ring_sc_dequeue_burst_elem(
        injectRing_, injected, sizeof(InjectedPacket), kMaxBurst, nullptr);
    for (unsigned i = 0; i < injectedCount; ++i) tx_.enqueue(injected[i].port, injected[i].mbuf);
    counters_.injected.add(injectedCount);
    for (const RxQueueRef& q : snapshot->workers[id].rxQueues) {
      const uint16_t n = isPodPort(q.port)
                             ? podPorts_[q.port - kFirstPodPort]->receive(
                                   pool_, q.port, burst.pkts, config_.burstSize, counters_)
                             : rte_eth_rx_burst(q.port, q.queue, burst.pkts, config_.burstSize);
      if (n == 0) continue;
      burst.count = n;
      burst.inPort = q.port;
      if (capture_ != nullptr) {
        CaptureSession* c = capture_->load(std::memory_order_acquire);
        if (c != nullptr && c->wants(q.port, CaptureDirection::kRx))
          c->offer(burst.pkts, n, CaptureDirection::kRx, id);
      }
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < n; ++i) bytes += burst.pkts[i]->pkt_len;
      counters_.rxPackets.add(n);
      counters_.rxBytes.add(bytes);
      counters_.rxBursts.add();
      runStages(burst, *snapshot, context_);
      dispatchBurst(burst, tx_, context_);
      received += n;
    }
    tx_.flushAll();
    if (shard != nullptr) {
      // Expired flows, and flows whose backend is gone, leave a little at a time.
      const lb::ServiceTable* services = snapshot->services.get();
      shard->age(context_.nowMs, kAgingBudget, context_.conntrack->timeouts(),
                 [services](const lb::ConnEntry& e) {
                   return e.backendSlot != 0 &&
                          (services == nullptr || !services->alive(e.backendSlot, e.backendTag));
                 });
    }
    rte_rcu_qsbr_quiescent(qsbr_, id);

    const uint64_t now = rte_rdtsc();
    (received != 0 ? counters_.busyCycles : counters_.idleCycles).add(now - last);
    last = now;
    counters_.loops.add();
    if (received != 0 || config_.idleSleepUs == 0) {
      idleLoops = 0;
    } else if (++idleLoops >= kIdleLoopsBeforeSleep) {
      rte_rcu_qsbr_thread_offline(qsbr_, id);
      rte_delay_us_sleep(config_.idleSleepUs);
      rte_rcu_qsbr_thread_online(qsbr_, id);
      counters_.idleSleeps.add();
      last = rte_rdtsc();
    }
  }
  rte_rcu_qsbr_thread_offline(qsbr_, id);
  rte_rcu_qsbr_thread_unregister(qsbr_, id);
}

}  // namespace nodeplane::dataplane
