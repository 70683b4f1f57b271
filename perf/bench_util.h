// Minimal benchmark helpers: TSC timing, median of repeated runs, EAL start-up for benchmarks.
// Results are TSC cycles (constant-rate TSC), reported with the TSC frequency so that Mpps per
// core can be derived; never asserted anywhere.
#pragma once

#include <rte_cycles.h>
#include <rte_eal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace nodeplane::perf {

// EAL on one lcore; --no-huge unless NP_BENCH_HUGE=1 (then hugepages are used).
inline bool initEal(const char* program) {
  std::string prefix = "np-bench-" + std::to_string(getpid());
  std::vector<std::string> args = {program, "-l", "0", "--no-pci", "--no-telemetry",
                                   "--log-level=error", "--file-prefix", prefix};
  if (!getenv("NP_BENCH_HUGE")) args.insert(args.end(), {"--no-huge", "-m", "1024"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0;
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

}  // namespace nodeplane::perf
