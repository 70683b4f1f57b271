#include "dataplane/engine.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

#include "dataplane/worker.h"

namespace nodeplane::dataplane {

namespace {
// The TPACKET_V2 header and the link-level address in front of each frame of a pod port's ring
// (the frame starts 16-byte aligned after them), with room to spare.
constexpr uint32_t kPodPortFrameHeader = 128;
constexpr unsigned kMempoolCache = 256;
constexpr unsigned kIndirectMbufs = 16383;
constexpr unsigned kSlowPathRingSize = 1024;

void freeRing(rte_ring* ring) {
  if (ring == nullptr) return;
  // Whatever is still queued (both ring kinds start with the mbuf pointer) is freed with it.
  PuntedPacket p;
  while (rte_ring_dequeue_elem(ring, &p, sizeof(p)) == 0) rte_pktmbuf_free(p.mbuf);
  rte_ring_free(ring);
}

// Mempool handlers are DPDK drivers (drivers/mempool), loaded from EAL's driver directory: an
// installation without them (a container image without librte-mempool-ring23) fails to make a
// pool with a bare EINVAL, which reads like a memory shortage.
bool mempoolHandlerLoaded(const char* name) {
  for (uint32_t i = 0; i < rte_mempool_ops_table.num_ops; ++i)
    if (std::string_view(rte_mempool_ops_table.ops[i].name) == name) return true;
  return false;
}
}  // namespace

Engine::Engine(const EngineConfig& config) : config_(config) {}

Result<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config) {
  if (config.workerLcores.empty()) return invalidArgument("engine: no worker lcore");
  std::unique_ptr<Engine> engine(new Engine(config));
  engine->socketId_ = static_cast<int>(rte_socket_id());
  if (engine->socketId_ < 0) engine->socketId_ = 0;

  if (const char* ops = rte_mbuf_best_mempool_ops(); !mempoolHandlerLoaded(ops))
    return makeError(ErrorCode::kUnavailable,
                     std::string("no mempool handler '") + ops +
                         "' is loaded: DPDK's mempool driver is missing from EAL's driver "
                         "directory (Debian: librte-mempool-ring23)");
  engine->pool_ = rte_pktmbuf_pool_create("np_mbufs", config.mbufs, kMempoolCache, 0,
                                          RTE_MBUF_DEFAULT_BUF_SIZE, engine->socketId_);
  if (engine->pool_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     "mbuf pool of " + std::to_string(config.mbufs) +
                         " mbufs: " + rte_strerror(rte_errno) +
                         " (more EAL memory: hugepages, or -m with --no-huge)");

  // Payload references of segmented super-packets (offload.h): mbufs without a buffer.
  engine->indirectPool_ = rte_pktmbuf_pool_create("np_indirect", kIndirectMbufs, kMempoolCache, 0,
                                                  0, engine->socketId_);
  if (engine->indirectPool_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("indirect mbuf pool: ") + rte_strerror(rte_errno));

  const auto workers = static_cast<uint32_t>(config.workerLcores.size());
  const size_t qsbrSize = rte_rcu_qsbr_get_memsize(workers);
  engine->qsbr_ = static_cast<rte_rcu_qsbr*>(
      rte_zmalloc_socket("np_qsbr", qsbrSize, RTE_CACHE_LINE_SIZE, engine->socketId_));
  if (engine->qsbr_ == nullptr || rte_rcu_qsbr_init(engine->qsbr_, workers) != 0)
    return makeError(ErrorCode::kResourceExhausted, "QSBR state: out of EAL memory");
  engine->publisher_ = std::make_unique<SnapshotPublisher>(engine->qsbr_);
  auto conntrack =
      lb::ConnTracker::create(config.conntrackMax, workers, engine->socketId_, engine->qsbr_);
  if (!conntrack)
    return makeError(
        conntrack.error().code,
        conntrack.error().message + " (lower --conntrack-max, or give EAL more memory)");
  engine->conntrack_ = std::move(*conntrack);
  engine->conntrack_->setTimeouts(config.conntrackTimeouts);
  if (config.flowLogSize != 0) {
    auto flowLog = FlowLog::create(workers, config.flowLogSize, engine->socketId_);
    if (!flowLog) return flowLog.error();
    engine->flowLog_ = std::move(*flowLog);
  }
  engine->ports_ = std::make_unique<PortManager>(engine->pool_, workers, config.ports);
  for (uint16_t i = 0; i < workers; ++i) {
    auto makeRing = [&](const char* kind) {
      const std::string name = std::string("np_") + kind + std::to_string(i);
      return rte_ring_create_elem(name.c_str(), sizeof(PuntedPacket), kSlowPathRingSize,
                                  engine->socketId_, RING_F_SP_ENQ | RING_F_SC_DEQ);
    };
    rte_ring* punt = makeRing("punt");
    rte_ring* inject = makeRing("inject");
    if (punt == nullptr || inject == nullptr)
      return makeError(ErrorCode::kResourceExhausted,
                       std::string("slow-path rings: ") + rte_strerror(rte_errno));
    engine->puntRings_.push_back(punt);
    engine->injectRings_.push_back(inject);
    WorkerConfig wc{i, static_cast<uint16_t>(workers), config.burstSize, config.idleSleepUs};
    engine->workers_.push_back(std::make_unique<Worker>(
        wc, *engine->publisher_, engine->qsbr_, engine->stopRequested_, punt, inject,
        engine->conntrack_.get(), engine->flowLog_.get(), engine->pool_, engine->indirectPool_,
        engine->podPorts_.data(), &engine->capture_));
  }
  return engine;
}

Engine::~Engine() {
  stop();
  capture_.store(nullptr);
  captureOwned_.reset();
  workers_.clear();
  for (PodPort*& p : podPorts_) {
    delete p;
    p = nullptr;
  }
  conntrack_.reset();
  flowLog_.reset();
  publisher_.reset();
  for (rte_ring* r : puntRings_) freeRing(r);
  for (rte_ring* r : injectRings_) freeRing(r);
  rte_free(qsbr_);
  rte_mempool_free(indirectPool_);
  rte_mempool_free(pool_);
}

Status Engine::start() {
  if (publisher_->current() == nullptr) return invalidArgument("engine: no snapshot published");
  stopRequested_.store(false);
  for (size_t i = 0; i < workers_.size(); ++i) {
    const unsigned lcore = config_.workerLcores[i];
    if (int rc = rte_eal_remote_launch(&Worker::launch, workers_[i].get(), lcore); rc != 0) {
      stop();
      return makeError(ErrorCode::kInternal, "worker " + std::to_string(i) + " on lcore " +
                                                 std::to_string(lcore) +
                                                 ": launch failed: " + rte_strerror(-rc));
    }
    spdlog::info("worker {} running on lcore {}", i, lcore);
  }
  running_ = true;
  return okStatus();
}

void Engine::stop() {
  if (!running_) return;
  stopRequested_.store(true);
  for (unsigned lcore : config_.workerLcores) rte_eal_wait_lcore(lcore);
  running_ = false;
}

Status Engine::installCapture(std::unique_ptr<CaptureSession> session) {
  if (captureOwned_ != nullptr)
    return makeError(ErrorCode::kAlreadyExists, "a capture is running (one at a time)");
  captureOwned_ = std::move(session);
  capture_.store(captureOwned_.get(), std::memory_order_release);
  return okStatus();
}

void Engine::removeCapture() {
  if (captureOwned_ == nullptr) return;
  capture_.store(nullptr, std::memory_order_release);
  synchronize();  // no worker still offers it a packet
  captureOwned_.reset();
}

Result<PortInfo> Engine::openPort(const std::string& devargs) {
  return ports_->open(devargs);
}

Result<PortInfo> Engine::openPodPort(const std::string& interface, uint32_t maxFrame) {
  auto free = std::find(podPorts_.begin(), podPorts_.end(), nullptr);
  if (free == podPorts_.end())
    return makeError(ErrorCode::kResourceExhausted,
                     "all " + std::to_string(kMaxPodPorts) + " pod ports are in use");
  PodPort::Options options;
  options.frameSize = maxFrame + kPodPortFrameHeader;
  auto port = PodPort::open(interface, options);
  if (!port) return port.error();
  PortInfo info;
  info.id = static_cast<uint16_t>(kFirstPodPort + (free - podPorts_.begin()));
  info.name = "pod:" + interface;
  info.driver = "nodeplane-pod";
  // Our MAC on the link is not the interface's: the node's kernel owns that one, and would take
  // pod frames addressed to it for itself (and route them, untranslated, with ip_forward=1). One
  // bit of the first octet flipped keeps it unicast and locally administered; frames to it are
  // "other host" to the kernel, which drops them, while our packet socket still sees them.
  info.mac = (*port)->mac();
  info.mac.bytes[0] ^= 0x04;
  info.rxQueues = 1;
  info.txQueues = static_cast<uint16_t>(workers_.size());
  *free = port->release();  // before any snapshot names the id (published with a release store)
  return info;
}

void Engine::closePort(uint16_t port) {
  if (!isPodPort(port)) return ports_->close(port);
  PodPort*& p = podPorts_[port - kFirstPodPort];
  delete p;
  p = nullptr;
}

void Engine::publish(std::unique_ptr<Snapshot> snapshot) {
  publisher_->publish(std::move(snapshot));
}

void Engine::synchronize() {
  // Stopped workers hold nothing; only running ones have a grace period to wait for.
  if (running_) publisher_->synchronize();
}

Result<PortStats> Engine::portStats(uint16_t port) const {
  if (isPodPort(port)) {
    PodPort* p = podPorts_[port - kFirstPodPort];
    if (p == nullptr) return makeError(ErrorCode::kNotFound, "no port " + std::to_string(port));
    const PodPortStats own = p->stats();
    PortStats out;
    out.rxPackets = own.rxPackets;
    out.rxBytes = own.rxBytes;
    out.rxMissed = own.rxDropped;
    // Sent into the pod: what the host end of the veth transmitted.
    auto sysfs = [&](const char* counter) -> uint64_t {
      std::ifstream in("/sys/class/net/" + p->interface() + "/statistics/" + counter);
      uint64_t v = 0;
      in >> v;
      return v;
    };
    out.txPackets = sysfs("tx_packets");
    out.txBytes = sysfs("tx_bytes");
    out.txErrors = sysfs("tx_dropped");
    std::ifstream state("/sys/class/net/" + p->interface() + "/operstate");
    std::string word;
    state >> word;
    out.linkUp = word == "up";
    return out;
  }
  rte_eth_stats st{};
  if (int rc = rte_eth_stats_get(port, &st); rc != 0)
    return makeError(ErrorCode::kNotFound,
                     "port " + std::to_string(port) + ": no statistics: " + rte_strerror(-rc));
  PortStats out;
  out.rxPackets = st.ipackets;
  out.txPackets = st.opackets;
  out.rxBytes = st.ibytes;
  out.txBytes = st.obytes;
  out.rxMissed = st.imissed;
  out.rxErrors = st.ierrors;
  out.txErrors = st.oerrors;
  out.rxNoMbuf = st.rx_nombuf;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port, &link) == 0) {
    out.linkUp = link.link_status == RTE_ETH_LINK_UP;
    out.linkSpeedMbps = link.link_speed;
  }
  return out;
}

std::vector<WorkerStats> Engine::workerStats() const {
  std::vector<WorkerStats> out;
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerStats ws;
    ws.index = static_cast<unsigned>(i);
    ws.lcore = config_.workerLcores[i];
    ws.counters.accumulate(workers_[i]->counters());
    out.push_back(ws);
  }
  WorkerStats control;
  control.index = static_cast<unsigned>(workers_.size());
  control.lcore = rte_get_main_lcore();
  control.control = true;
  control.counters.accumulate(controlCounters_);
  out.push_back(control);
  return out;
}

size_t Engine::drainPunted(PuntedPacket* out, size_t max) {
  size_t n = 0;
  for (rte_ring* ring : puntRings_) {
    if (n == max) break;
    n += rte_ring_sc_dequeue_burst_elem(ring, out + n, sizeof(PuntedPacket),
                                        static_cast<unsigned>(max - n), nullptr);
  }
  return n;
}

bool Engine::inject(uint16_t port, rte_mbuf* m) {
  // Round robin over the workers: each sends on its own TX queue.
  InjectedPacket p{m, port, {}};
  for (size_t tries = 0; tries < injectRings_.size(); ++tries) {
    rte_ring* ring = injectRings_[nextInject_++ % injectRings_.size()];
    if (rte_ring_sp_enqueue_elem(ring, &p, sizeof(p)) == 0) return true;
  }
  return false;
}

const WorkerCounters& Engine::workerCounters(unsigned index) const {
  return workers_[index]->counters();
}

CounterTotals Engine::totals() const {
  CounterTotals t;
  for (const auto& w : workers_) t.accumulate(w->counters());
  t.accumulate(controlCounters_);
  return t;
}

}  // namespace nodeplane::dataplane
