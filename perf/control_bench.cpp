// Benchmark: desired state applied to the data plane, on the control thread, with a worker thread
// forwarding at the same time (two cores: control on lcore 0, the worker on lcore 1).
//
//   build/perf/control_bench [--services N] [--endpoints-per-service M] [--churn-seconds S]
//                            (defaults: 10000 services x 10 endpoints, 3 s)
//
//  1. full apply: `apply` arguments for N services with N x M endpoints, from the request line to
//     the published snapshot, as the daemon handles it (simdjson read into the model, validation,
//     service table and Maglev tables, publish); then the same state again (an agent restart);
//  2. one endpoint change: service.endpoints on one service, request to published snapshot;
//  3. churn: a worker forwards 64-byte pod -> ClusterIP packets through every stage (real snapshot
//     publication with QSBR grace periods) while the control thread applies 1,000 endpoint changes
//     a second; its rate is compared with the quiet rate.
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <spdlog/spdlog.h>

#include <pthread.h>
#include <atomic>
#include <chrono>
#include <cstdio>

#include <thread>

#include "control/apply_reader.h"
#include "control/control_api.h"
#include "control/model_json.h"
#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "lb/conntrack.h"
#include "perf/bench_node.h"
#include "perf/bench_util.h"
#include "tests/unit/support/packet_builder.h"

using namespace nodeplane;
namespace dp = nodeplane::dataplane;
using Clock = std::chrono::steady_clock;

namespace {

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// A backend whose snapshots are published to a real worker thread and reclaimed after QSBR grace
// periods, as dataplane::Engine does (ports are fake).
class BenchBackend : public dp::DataplaneBackend {
 public:
  BenchBackend(rte_rcu_qsbr* qsbr, rte_mempool* pool, lb::ConnTracker* ct)
      : publisher_(qsbr), pool_(pool), ct_(ct) {}
  unsigned workerCount() const override { return 1; }
  int socketId() const override { return 0; }
  Result<dp::PortInfo> openPort(const std::string& devargs) override {
    dp::PortInfo p;
    p.id = next_++;
    p.name = devargs;
    p.mac = *MacAddress::parse(p.id == 0 ? "02:fe:00:00:00:00" : "02:fe:00:00:00:01");
    p.rxQueues = p.txQueues = 1;
    return p;
  }
  Result<dp::PortInfo> openPodPort(const std::string& interface, uint32_t) override {
    return openPort("pod:" + interface);
  }
  void closePort(uint16_t) override {}
  void publish(std::unique_ptr<dp::Snapshot> s) override {
    publisher_.publish(std::move(s));
    published_.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
  }
  void synchronize() override { publisher_.synchronize(); }
  Result<dp::PortStats> portStats(uint16_t) const override { return dp::PortStats{}; }
  std::vector<dp::WorkerStats> workerStats() const override { return {}; }
  size_t drainPunted(dp::PuntedPacket*, size_t) override { return 0; }
  bool inject(uint16_t, rte_mbuf*) override { return false; }
  rte_mempool* mempool() override { return pool_; }
  WorkerCounters& controlCounters() override { return control_; }
  lb::ConnTracker* conntrack() override { return ct_; }
  dp::SnapshotPublisher& publisher() { return publisher_; }
  // When the last snapshot was published (steady clock).
  Clock::time_point publishedAt() const {
    return Clock::time_point(Clock::duration(published_.load(std::memory_order_acquire)));
  }

 private:
  dp::SnapshotPublisher publisher_;
  rte_mempool* pool_;
  lb::ConnTracker* ct_;
  WorkerCounters control_;
  uint16_t next_ = 0;
  std::atomic<int64_t> published_{0};
};

control::Json serviceJson(uint32_t i, uint32_t endpoints, uint32_t variant = 0) {
  control::Json eps = control::Json::array();
  for (uint32_t k = 0; k < endpoints; ++k)
    eps.push_back({{"ip", Ipv4Address{0x0af50000u + i * 16 + (k + variant) % 16}.toString()},
                   {"nodeName", "node-" + std::to_string(k % 50)}});
  return {{"namespace", "bench"},
          {"name", "s" + std::to_string(i)},
          {"clusterIPs", {Ipv4Address{0x0a600000u + 100 + i}.toString()}},
          {"ports", {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}}},
          {"endpoints", eps}};
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t serviceCount = 10000, perService = 10, churnSeconds = 3;
  bool fullOnly = false;
  for (int i = 1; i < argc; ++i) fullOnly |= std::string(argv[i]) == "--full-only";
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--services")
      serviceCount = static_cast<uint32_t>(std::stoul(argv[++i]));
    else if (a == "--endpoints-per-service")
      perService = static_cast<uint32_t>(std::stoul(argv[++i]));
    else if (a == "--churn-seconds")
      churnSeconds = static_cast<uint32_t>(std::stoul(argv[++i]));
  }
  if (!perf::startBenchmark(argv[0], 2048)) return 1;
  rte_mempool* pool = perf::packetPool();
  const size_t qsbrSize = rte_rcu_qsbr_get_memsize(1);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("bench_qsbr", qsbrSize, RTE_CACHE_LINE_SIZE));
  rte_rcu_qsbr_init(qsbr, 1);
  auto tracker = lb::ConnTracker::create(65536, 1, 0, qsbr);
  if (!tracker) return 1;
  BenchBackend backend(qsbr, pool, tracker->get());

  control::NodeSettings s = perf::benchNodeSettings();
  s.nodeName = "node-0";
  s.clusterCidr = *Ipv4Prefix::parse("10.240.0.0/12");
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, "0a:00:00:00:00:0a", "0a:00:00:00:00:0b")) return 1;
  control::ControlApi api(node, backend);

  // The worker: bursts of 32 pod -> ClusterIP packets (1000 established flows to service
  // "steady", whose backend is the local server pod), as fast as it can.
  std::vector<testing::Bytes> frames;
  for (uint16_t p = 0; p < 1024; ++p)
    frames.push_back(testing::PacketBuilder()
                         .eth("02:fe:00:00:00:00", "0a:00:00:00:00:0a")
                         .ipv4("10.244.0.2", "10.96.0.10")
                         .udp(static_cast<uint16_t>(20000 + p), 53)
                         .payload(18)
                         .build());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> packets{0};
  std::thread worker;
  auto startWorker = [&] {
    worker = std::thread([&] {
      cpu_set_t cpus;  // its own core, as a worker lcore has (the control thread is on lcore 0)
      CPU_ZERO(&cpus);
      CPU_SET(std::thread::hardware_concurrency() > 1 ? 1 : 0, &cpus);
      pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
      rte_thread_register();
      rte_rcu_qsbr_thread_register(qsbr, 0);
      rte_rcu_qsbr_thread_online(qsbr, 0);
      WorkerCounters counters;
      dp::WorkerContext ctx;
      ctx.counters = &counters;
      ctx.conntrack = tracker->get();
      ctx.icmpLimiter.configure(rte_get_tsc_hz(), 1000, 50);
      rte_mbuf* pkts[32];
      for (auto& m : pkts) m = rte_pktmbuf_alloc(pool);
      Burst burst;
      size_t next = 0;
      uint64_t done = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const dp::Snapshot* snap = backend.publisher().current();
        for (uint16_t i = 0; i < 32; ++i) {
          perf::loadFrame(pkts[i], frames[next++ & 1023], 0);
          burst.pkts[i] = pkts[i];
        }
        burst.count = 32;
        burst.inPort = 0;
        ctx.generation = snap->generation;
        dp::runStages(burst, *snap, ctx);
        done += 32;
        if ((done & 1023) == 0) packets.store(done, std::memory_order_relaxed);
        rte_rcu_qsbr_quiescent(qsbr, 0);
      }
      rte_rcu_qsbr_thread_offline(qsbr, 0);
      rte_rcu_qsbr_thread_unregister(qsbr, 0);
      for (auto& m : pkts) rte_pktmbuf_free(m);
      std::printf("  (worker: %lu packets; transmitted %lu, dropped %lu)\n",
                  static_cast<unsigned long>(done),
                  static_cast<unsigned long>(counters.txPackets.read()),
                  static_cast<unsigned long>(counters.dropPackets.read()));
    });
  };

  std::printf("nodeplane control_bench: desired state to the data plane\n\n");
  // 1. Full apply.
  control::Json services = control::Json::array();
  services.push_back(
      {{"namespace", "bench"},
       {"name", "steady"},
       {"clusterIPs", {"10.96.0.10"}},
       {"ports", {{{"name", "dns"}, {"protocol", "UDP"}, {"port", 53}, {"targetPort", 7001}}}},
       {"endpoints", {{{"ip", "10.244.0.3"}}}}});
  for (uint32_t i = 0; i < serviceCount; ++i) services.push_back(serviceJson(i, perService));
  const std::string text = control::Json{{"generation", 1}, {"services", services}}.dump();
  auto applyText = [&](const std::string& t) {
    // What the daemon does with the line (ControlApi::handleLine), phase by phase: read the
    // request into the model (simdjson), apply.
    const std::string line = "{\"v\": 1, \"id\": 1, \"op\": \"apply\", \"args\": " + t + "}";
    const auto t0 = Clock::now();
    auto request = control::readApplyRequest(line);
    if (!request || !request->state) {
      std::fprintf(stderr, "%s\n",
                   request ? request->state.error().message.c_str() : "not an apply");
      std::exit(1);
    }
    const auto t2 = Clock::now();
    auto r = node.applyDesired(std::move(*request->state));
    if (!r) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      std::exit(1);
    }
    const auto t3 = Clock::now();
    request.reset();  // what is left of the request freed (part of the handler)
    const auto t4 = Clock::now();
    const auto published = backend.publishedAt();
    const bool republished = published > t2;
    std::printf(
        "  (parse and read %.0f ms, validate+build %.0f ms, %s; then commit %.0f ms, "
        "free the request %.0f ms: %.0f ms in all)\n",
        ms(t2 - t0), republished ? ms(published - t2) : ms(t3 - t2),
        republished ? "published" : "nothing to publish", republished ? ms(t3 - published) : 0.0,
        ms(t4 - t3), ms(t4 - t0));
    return ms((republished ? published : t3) - t0);
  };
  if (!fullOnly) startWorker();  // forwarding while the state is applied
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double full = applyText(text);
  std::printf(
      "full apply, %u services with %u endpoints (%.1f MB of JSON), request to published: "
      "%.0f ms\n",
      serviceCount + 1, serviceCount * perService + 1, text.size() / 1e6, full);
  const double again = applyText(control::Json{{"generation", 2}, {"services", services}}.dump());
  std::printf("the same state again (an agent restart): %.0f ms, nothing republished\n", again);
  if (fullOnly) return 0;

  // 2. One endpoint change, request to published (median of 101).
  std::vector<double> one;
  for (uint32_t k = 0; k < 101; ++k) {
    const uint32_t i = k * 97 % serviceCount;
    control::Json args = {{"namespace", "bench"},
                          {"name", "s" + std::to_string(i)},
                          {"endpoints", serviceJson(i, perService, k + 1)["endpoints"]}};
    const std::string req =
        control::Json{{"v", 1}, {"op", "service.endpoints"}, {"args", args}}.dump();
    const auto t0 = Clock::now();
    auto request = control::parseRequest(req);
    auto r = api.handle(*request);
    if (!r) return 1;
    one.push_back(ms(Clock::now() - t0));
    backend.publisher().reclaim();
  }
  std::sort(one.begin(), one.end());
  std::printf(
      "one endpoint change, request to published: median %.2f ms, p90 %.2f ms, max %.2f ms\n",
      one[50], one[90], one[100]);

  // 3. Churn.
  auto rate = [&](double seconds, bool churn) {
    const uint64_t p0 = packets.load();
    const auto t0 = Clock::now();
    uint32_t changes = 0;
    while (ms(Clock::now() - t0) < seconds * 1000) {
      if (churn) {
        // Paced at 1,000 a second.
        const auto due = t0 + std::chrono::microseconds(1000 * changes);
        if (Clock::now() < due) std::this_thread::sleep_until(due);
        const uint32_t i = changes * 131 % serviceCount;
        (void)node.setEndpoints("bench", "s" + std::to_string(i), [&] {
          std::vector<control::EndpointSpec> eps;
          auto parsed = control::endpointsFromJson(
              "bench", serviceJson(i, perService, changes + 1)["endpoints"], "endpoints");
          return parsed ? *parsed : eps;
        }());
        ++changes;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      backend.publisher().reclaim();
    }
    const double secs = ms(Clock::now() - t0) / 1000;
    return std::make_pair((packets.load() - p0) / secs / 1e6, changes / secs);
  };
  const auto quiet = rate(churnSeconds, false);
  const auto busy = rate(churnSeconds, true);
  const auto quiet2 = rate(churnSeconds, false);
  std::printf(
      "forwarding, one worker, all stages (64-byte pod -> ClusterIP):\n"
      "  quiet %.2f Mpps; during %.0f endpoint changes/s %.2f Mpps (%.1f%% of quiet); "
      "quiet again %.2f Mpps\n",
      quiet.first, busy.second, busy.first, 100 * busy.first / ((quiet.first + quiet2.first) / 2),
      quiet2.first);
  stop = true;
  worker.join();
  node.shutdown();
  return 0;
}
