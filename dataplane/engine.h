// The running data plane: the mbuf pool, the QSBR state, the snapshot publisher, the ports and
// one worker per worker lcore. Created once on the main lcore after rte_eal_init; the control
// plane drives it through DataplaneBackend.
#pragma once

#include <rte_mempool.h>

#include <array>
#include <atomic>
#include <memory>
#include <vector>

#include "core/counters.h"
#include "dataplane/capture.h"
#include "dataplane/dataplane_backend.h"
#include "dataplane/flow_log.h"
#include "dataplane/pod_port.h"
#include "dataplane/port_manager.h"
#include "dataplane/snapshot.h"
#include "lb/conntrack.h"

struct rte_rcu_qsbr;
struct rte_ring;

namespace nodeplane::dataplane {

struct EngineConfig {
  std::vector<unsigned> workerLcores;
  uint16_t burstSize = 32;
  uint32_t mbufs = 32767;
  uint32_t idleSleepUs = 0;  // 0: busy-poll always; else sleep this long after an idle stretch
  PortSettings ports;
  uint32_t conntrackMax = 1 << 20;  // tracked flows, all workers together
  lb::ConnTimeouts conntrackTimeouts;
  uint32_t flowLogSize = FlowLog::kDefaultRingSize;  // records per worker; 0: no flow log
};

class Worker;

class Engine final : public DataplaneBackend {
 public:
  static Result<std::unique_ptr<Engine>> create(const EngineConfig& config);
  ~Engine() override;

  // Launches the workers on their lcores. A snapshot must have been published.
  Status start();
  // Stops and joins the workers. Idempotent.
  void stop();

  unsigned workerCount() const override { return static_cast<unsigned>(workers_.size()); }
  int socketId() const override { return socketId_; }
  Result<PortInfo> openPort(const std::string& devargs) override;
  Result<PortInfo> openPodPort(const std::string& interface, uint32_t maxFrame) override;
  void closePort(uint16_t port) override;
  void publish(std::unique_ptr<Snapshot> snapshot) override;
  void synchronize() override;
  Result<PortStats> portStats(uint16_t port) const override;
  std::vector<WorkerStats> workerStats() const override;
  size_t drainPunted(PuntedPacket* out, size_t max) override;
  bool inject(uint16_t port, rte_mbuf* m) override;
  rte_mempool* mempool() override { return pool_; }
  WorkerCounters& controlCounters() override { return controlCounters_; }
  lb::ConnTracker* conntrack() override { return conntrack_.get(); }
  FlowLog* flowLog() const override { return flowLog_.get(); }
  Status installCapture(std::unique_ptr<CaptureSession> session) override;
  void removeCapture() override;
  CaptureSession* capture() override { return captureOwned_.get(); }
  void reclaim() { publisher_->reclaim(); }

  const Snapshot* current() const { return publisher_->current(); }
  const std::vector<unsigned>& workerLcores() const { return config_.workerLcores; }
  const WorkerCounters& workerCounters(unsigned index) const;
  CounterTotals totals() const;
  bool running() const { return running_; }

 private:
  explicit Engine(const EngineConfig& config);

  EngineConfig config_;
  int socketId_ = 0;
  rte_mempool* pool_ = nullptr;
  rte_mempool* indirectPool_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  std::unique_ptr<SnapshotPublisher> publisher_;
  std::unique_ptr<PortManager> ports_;
  // Pod ports by id - kFirstPodPort (owned; workers read the pointers, see Worker).
  std::array<PodPort*, kMaxPodPorts> podPorts_{};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<rte_ring*> puntRings_;    // per worker: worker -> control
  std::vector<rte_ring*> injectRings_;  // per worker: control -> worker
  unsigned nextInject_ = 0;
  WorkerCounters controlCounters_;
  std::unique_ptr<lb::ConnTracker> conntrack_;
  std::unique_ptr<FlowLog> flowLog_;
  // The capture session workers read (capture.h), and its owner.
  std::atomic<CaptureSession*> capture_{nullptr};
  std::unique_ptr<CaptureSession> captureOwned_;
  std::atomic<bool> stopRequested_{false};
  bool running_ = false;
};

}  // namespace nodeplane::dataplane
