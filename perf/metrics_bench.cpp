// Benchmark: what a metrics scrape costs the workers. A worker's burst (64-byte pod-to-pod
// frames through every stage, then the per-burst counter updates worker.cpp makes) timed while
// another thread reads the worker's counter block as a scrape does (CounterTotals::accumulate),
// never, once a second, and a thousand times a second. One core for the worker, no PMD I/O.
//
//   build/perf/metrics_bench
//
// A scrape only reads: the cost to the worker is its counter cache lines taken away and fetched
// back. (perf/metrics_bench.py measures the daemon end to end, where the noise of a 2-vCPU
// machine is larger than the effect.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "perf/bench_node.h"
#include "perf/bench_util.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

using namespace nodeplane;
namespace dp = nodeplane::dataplane;
using testing::Bytes;
using testing::PacketBuilder;

int main(int argc, char** argv) {
  (void)argc;
  if (!perf::startBenchmark(argv[0])) return 1;
  rte_mempool* pool = perf::packetPool();
  perf::printTitle("nodeplane metrics_bench: a worker's burst while its counters are scraped",
                   "TSC cycles per packet (median of 7 runs)");
  testing::FakeBackend backend;
  backend.pool = pool;
  control::NodeSettings s;
  s.nodeName = "bench";
  s.nodeIp = *Ipv4Address::parse("192.168.50.10");
  s.podCidr = *Ipv4Prefix::parse("10.244.0.0/16");
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, "0a:00:00:00:00:0a", "0a:00:00:00:00:0b")) return 1;
  const dp::Snapshot& snap = *backend.current();

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.generation = snap.generation;
  Burst burst;
  auto worker = [&](rte_mbuf** pkts, uint16_t n) {
    const uint64_t start = rte_rdtsc();
    burst.count = n;
    burst.inPort = 0;
    std::copy(pkts, pkts + n, burst.pkts);
    dp::runStages(burst, snap, ctx);
    // What worker.cpp counts per loop that received a burst.
    counters.loops.add();
    counters.rxBursts.add();
    counters.rxPackets.add(n);
    counters.rxBytes.add(uint64_t{n} * 60);
    counters.txPackets.add(n);
    counters.busyCycles.add(rte_rdtsc() - start);
  };
  std::vector<Bytes> frames;
  for (uint16_t i = 0; i < 64; ++i)
    frames.push_back(PacketBuilder()
                         .eth("02:fe:00:00:00:00", "0a:00:00:00:00:0a")
                         .ipv4("10.244.0.2", "10.244.0.3")
                         .udp(static_cast<uint16_t>(1000 + i), 5001)
                         .payload(18)
                         .build());

  // Five rounds, the cases in turn (order and warm-up effects spread over all of them).
  const std::pair<const char*, int> cases[] = {
      {"no scrape", 0}, {"scraped 1/s", 1000000}, {"scraped 1000/s", 1000}};
  std::vector<double> net[3];
  uint64_t scrapes[3] = {};
  for (int round = 0; round < 5; ++round)
    for (int c = 0; c < 3; ++c) {
      const int periodUs = cases[c].second;
      std::atomic<bool> stop{false};
      std::thread scraper([&] {
        while (periodUs && !stop.load()) {
          CounterTotals t;
          t.accumulate(counters);
          ++scrapes[c];
          std::this_thread::sleep_for(std::chrono::microseconds(periodUs));
        }
      });
      net[c].push_back(perf::measureBursts(pool, frames, 0, worker).net());
      stop = true;
      scraper.join();
    }
  std::printf("%-40s %12s %12s %10s\n", "case (5 rounds, alternated)", "median net", "min-max",
              "scrapes");
  std::vector<double> medians;
  for (int c = 0; c < 3; ++c) {
    std::sort(net[c].begin(), net[c].end());
    medians.push_back(net[c][2]);
    std::printf("%-40s %12.1f %5.1f-%-6.1f %10lu  %+.1f %%\n", cases[c].first, net[c][2],
                net[c].front(), net[c].back(), static_cast<unsigned long>(scrapes[c]),
                (net[c][2] / medians[0] - 1) * 100);
  }
  return 0;
}
