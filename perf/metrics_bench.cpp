// Benchmark: what observing the data plane costs the workers. A worker's burst (64-byte
// pod-to-pod frames through every stage, dispatch's loop, then the per-burst counter
// updates worker.cpp makes) timed while another thread reads the worker's counter block as a
// scrape does (CounterTotals::accumulate) never, once a second or a thousand times a second, and
// with the flow log on and drained every 10 ms as the daemon's control thread does (issue 14's
// case: scraped once a second with a flow log reader, against neither). Two traffic mixes: an
// established UDP flow (the flow log records nothing) and a TCP SYN per packet between the pods
// (every packet opens a flow: a record each). One core for the worker, no PMD I/O.
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
#include "dataplane/flow_log.h"
#include "dataplane/pipeline.h"
#include "dataplane/tx_buffers.h"
#include "lb/conntrack.h"
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
  control::NodeSettings s = perf::benchNodeSettings();
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, "0a:00:00:00:00:0a", "0a:00:00:00:00:0b")) return 1;
  const dp::Snapshot& snap = *backend.current();

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.generation = snap.generation;
  // A worker's connection table, as every worker has: the pods' flows are looked up and, with no
  // policy applied, pass untracked (the flow log records their SYNs there).
  auto tracker = lb::ConnTracker::create(1 << 16, 1, 0, nullptr);
  if (!tracker) return 1;
  ctx.conntrack = tracker->get();
  auto flowLog = dp::FlowLog::create(1, dp::FlowLog::kDefaultRingSize, 0);
  if (!flowLog) return 1;
  Burst burst;
  rte_mbuf* sent[kMaxBurst];
  auto worker = [&](rte_mbuf** pkts, uint16_t n) {
    const uint64_t start = rte_rdtsc();
    burst.count = n;
    burst.inPort = 0;
    std::copy(pkts, pkts + n, burst.pkts);
    dp::runStages(burst, snap, ctx);
    // What dispatch adds for the flow log (tx_buffers.h).
    // Dispatch's loop as tx_buffers.h runs it, with the flow-log step, without the I/O: in every
    // case, so that only the flow log differs.
    const bool flowLog = ctx.flowLog != nullptr;
    uint16_t transmit = 0, dropped = 0;
    for (uint16_t i = 0; i < burst.count; ++i) {
      const PacketMeta& meta = burst.meta[i];
      if (meta.action == Action::kTransmit) {
        sent[transmit++] = burst.pkts[i];
      } else {
        if (flowLog) dp::logDrop(burst, i, ctx);
        dropped++;
      }
    }
    counters.drop(DropReason::kUnclaimed, dropped);
    // What worker.cpp counts per loop that received a burst.
    counters.loops.add();
    counters.rxBursts.add();
    counters.rxPackets.add(n);
    counters.rxBytes.add(uint64_t{n} * 60);
    counters.txPackets.add(n);
    counters.busyCycles.add(rte_rdtsc() - start);
  };
  auto frames = [](bool syn) {
    std::vector<Bytes> out;
    for (uint16_t i = 0; i < 64; ++i) {
      PacketBuilder b;
      b.eth("02:fe:00:00:00:00", "0a:00:00:00:00:0a").ipv4("10.244.0.2", "10.244.0.3");
      if (syn)
        b.tcp(static_cast<uint16_t>(1000 + i), 80, 0x02);
      else
        b.udp(static_cast<uint16_t>(1000 + i), 5001).payload(18);
      out.push_back(b.build());
    }
    return out;
  };

  struct Case {
    const char* name;
    int scrapeUs;  // 0: never
    bool flowLog;
    bool reader = true;  // drain the flow log every 10 ms (with or without one)
  };
  const Case cases[] = {{"neither", 0, false, false},
                        {"scraped 1/s", 1000000, false, false},
                        {"scraped 1000/s", 1000, false, false},
                        {"flow log, nobody reads it", 0, true, false},
                        {"a thread waking every 10 ms", 0, false, true},
                        {"flow log read every 10 ms", 0, true},
                        {"scraped 1/s + flow log read", 1000000, true}};
  constexpr int kCases = sizeof(cases) / sizeof(cases[0]);
  constexpr int kRounds = 9;
  for (bool syn : {false, true}) {
    const std::vector<Bytes> traffic = frames(syn);
    std::printf("\n%s\n", syn ? "a TCP SYN per packet (every packet a new flow: one record each)"
                              : "UDP between the pods (no record)");
    std::vector<double> net[kCases];
    uint64_t scrapes[kCases] = {}, records[kCases] = {};
    // Nine rounds, the cases in turn (order and warm-up effects spread over all of them).
    for (int round = 0; round < kRounds; ++round)
      for (int c = 0; c < kCases; ++c) {
        ctx.flowLog = cases[c].flowLog ? flowLog->get() : nullptr;
        std::atomic<bool> stop{false};
        std::thread scraper([&] {
          while (cases[c].scrapeUs && !stop.load()) {
            CounterTotals t;
            t.accumulate(counters);
            ++scrapes[c];
            std::this_thread::sleep_for(std::chrono::microseconds(cases[c].scrapeUs));
          }
        });
        std::thread reader([&] {
          std::vector<dp::FlowRecord> out;
          while (cases[c].reader && !stop.load()) {
            out.clear();
            if (cases[c].flowLog) records[c] += (*flowLog)->drain(out, 16384);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        });
        net[c].push_back(perf::measureBursts(pool, traffic, 0, worker).net());
        stop = true;
        scraper.join();
        reader.join();
      }
    std::printf("%-34s %11s %12s %8s %10s\n", "case (9 rounds, alternated)", "median net",
                "min-max", "scrapes", "records");
    std::vector<double> medians;
    for (int c = 0; c < kCases; ++c) {
      std::sort(net[c].begin(), net[c].end());
      medians.push_back(net[c][kRounds / 2]);
      std::printf("%-34s %11.1f %5.1f-%-6.1f %8lu %10lu  %+.1f %%\n", cases[c].name,
                  net[c][kRounds / 2], net[c].front(), net[c].back(),
                  static_cast<unsigned long>(scrapes[c]), static_cast<unsigned long>(records[c]),
                  (net[c][kRounds / 2] / medians[0] - 1) * 100);
    }
  }
  std::printf("\nrecords lost to a full ring: %lu\n",
              static_cast<unsigned long>((*flowLog)->overflow()));

  // Above, the reader cannot keep up with a record per packet and most records meet a full ring.
  // A record that finds room: a ring's worth written, timed, drained, nine times.
  std::vector<double> perRecord;
  std::vector<dp::FlowRecord> drained;
  dp::FlowRecord r = dp::flowRecordOf(PacketMeta{}, 0, 0, dp::FlowEvent::kForwarded);
  for (int round = 0; round < kRounds; ++round) {
    drained.clear();
    (*flowLog)->drain(drained, dp::FlowLog::kDefaultRingSize);
    const uint64_t start = rte_rdtsc();
    for (uint32_t i = 0; i < dp::FlowLog::kDefaultRingSize; ++i) {
      r.src = i;
      (*flowLog)->record(0, r);
    }
    perRecord.push_back(static_cast<double>(rte_rdtsc() - start) / dp::FlowLog::kDefaultRingSize);
  }
  std::sort(perRecord.begin(), perRecord.end());
  std::printf("a record into a ring with room: %.1f cycles (median of %d rings of %u)\n",
              perRecord[kRounds / 2], kRounds, dp::FlowLog::kDefaultRingSize);
  return 0;
}
