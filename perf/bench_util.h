// Minimal benchmark helpers: TSC timing, median of repeated runs, EAL start-up for benchmarks.
// Results are TSC cycles (constant-rate TSC), reported with the TSC frequency so that Mpps per
// core can be derived; never asserted anywhere.
#pragma once

#include <rte_cycles.h>
#include <rte_eal.h>
#include <unistd.h>

#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace nodeplane::perf {

// EAL on one lcore; --no-huge unless NP_BENCH_HUGE=1 (then hugepages are used).
inline bool initEal(const char* program, unsigned memoryMb = 1024) {
  std::string prefix = "np-bench-" + std::to_string(getpid());
  std::vector<std::string> args = {
      program,         "-l",  "0", "--no-pci", "--no-telemetry", "--log-level=error",
      "--file-prefix", prefix};
  if (!getenv("NP_BENCH_HUGE"))
    args.insert(args.end(), {"--no-huge", "-m", std::to_string(memoryMb)});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) return false;
  // EAL leaves /var/run/dpdk/<prefix> behind; the benchmark's own, removed at exit.
  static std::string runtimeDir = rte_eal_get_runtime_dir();
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(runtimeDir, ignored);
  });
  return true;
}

// What every benchmark's main() starts with: the EAL (as initEal), warnings only in the log.
inline bool startBenchmark(const char* program, unsigned memoryMb = 1024) {
  if (!initEal(program, memoryMb)) return false;
  spdlog::set_level(spdlog::level::warn);
  return true;
}

// The benchmarks' packet pool "bench" (8191 mbufs), made on first use. Where in EAL memory it
// lands relative to the tables moves figures by a few cycles (cache sets): each benchmark makes
// it at the same point of its run every time.
inline rte_mempool* packetPool() {
  static rte_mempool* pool =
      rte_pktmbuf_pool_create("bench", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  return pool;
}

// The benchmark's first two lines: what it measures, and the TSC frequency with the units.
inline void printTitle(const std::string& title, const char* units) {
  std::printf("%s\nTSC %.0f MHz; %s\n\n", title.c_str(),
              static_cast<double>(rte_get_tsc_hz()) / 1e6, units);
}

// Runs `body` (which processes `packetsPerCall` packets) `calls` times per sample, takes the
// median over samples, and returns cycles per packet.
inline double cyclesPerPacket(const std::function<void()>& body, unsigned packetsPerCall,
                              unsigned calls = 20000, unsigned samples = 7) {
  for (unsigned i = 0; i < calls / 10; ++i) body();  // warm caches and branch predictors
  std::vector<double> results;
  for (unsigned s = 0; s < samples; ++s) {
    const uint64_t start = rte_rdtsc_precise();
    for (unsigned i = 0; i < calls; ++i) body();
    const uint64_t end = rte_rdtsc_precise();
    results.push_back(static_cast<double>(end - start) / (double(calls) * packetsPerCall));
  }
  std::sort(results.begin(), results.end());
  return results[results.size() / 2];
}

inline double mpps(double cyclesPerPacket) {
  return static_cast<double>(rte_get_tsc_hz()) / cyclesPerPacket / 1e6;
}

// Writes `frame` into `m` as a packet received on `port` (headroom, lengths, no offload flags).
template <typename Frame>
inline void loadFrame(rte_mbuf* m, const Frame& frame, uint16_t port) {
  m->data_off = RTE_PKTMBUF_HEADROOM;
  m->data_len = static_cast<uint16_t>(frame.size());
  m->pkt_len = static_cast<uint32_t>(frame.size());
  m->port = port;
  m->ol_flags = 0;
  std::memcpy(rte_pktmbuf_mtod(m, void*), frame.data(), frame.size());
}

// A stage's cost: bursts of 32 mbufs are restored from `frames` (32 at a time, round robin; the
// stages rewrite packets in place) and handed to `stage`. The restore alone is timed the same way
// and subtracted: net() is what the stage costs per packet.
struct StageRun {
  double total = 0;
  double restore = 0;
  double net() const { return total - restore; }
};

template <typename Stage>
StageRun measureBursts(rte_mempool* pool, const std::vector<std::vector<uint8_t>>& frames,
                       uint16_t port, Stage&& stage) {
  constexpr uint16_t kBurst = 32;
  rte_mbuf* pkts[kBurst];
  for (uint16_t i = 0; i < kBurst; ++i) {
    pkts[i] = rte_pktmbuf_alloc(pool);
    pkts[i]->port = port;
  }
  const size_t sets = std::max<size_t>(1, frames.size() / kBurst);
  size_t set = 0;
  auto restore = [&] {
    for (uint16_t i = 0; i < kBurst; ++i)
      loadFrame(pkts[i], frames[(set * kBurst + i) % frames.size()], port);
    set = set + 1 == sets ? 0 : set + 1;
  };
  StageRun r;
  r.restore = cyclesPerPacket(restore, kBurst);
  r.total = cyclesPerPacket(
      [&] {
        restore();
        stage(pkts, kBurst);
      },
      kBurst);
  restore();
  stage(pkts, kBurst);  // leave one burst's verdicts for the caller's sanity check
  for (uint16_t i = 0; i < kBurst; ++i) rte_pktmbuf_free(pkts[i]);
  return r;
}

inline void printRow(const char* name, const StageRun& r) {
  std::printf("%-52s %8.1f %8.1f %8.1f %10.2f\n", name, r.total, r.restore, r.net(), mpps(r.net()));
}

inline void printHeader() {
  std::printf("%-52s %8s %8s %8s %10s\n", "case", "total", "restore", "net", "Mpps/core");
}

}  // namespace nodeplane::perf
