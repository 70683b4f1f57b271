// EAL for the fuzz targets that need it: no hugepages, one lcore, no shared files, once per
// process (libFuzzer runs every input in the same process).
#pragma once

#include <rte_eal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace nodeplane::fuzz {

inline void startEal() {
  static bool started = [] {
    std::vector<std::string> args = {"fuzz",
                                     "--no-huge",
                                     "-m",
                                     "256",
                                     "--no-pci",
                                     "--no-shconf",
                                     "-l",
                                     "0",
                                     "--log-level=crit",
                                     "--no-telemetry",
                                     "--file-prefix",
                                     "np-fuzz-" + std::to_string(getpid())};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
      std::fprintf(stderr, "fuzz: EAL init failed\n");
      std::abort();
    }
    // EAL leaves /var/run/dpdk/<prefix> behind; this fuzzer's own, removed at exit.
    static std::string runtimeDir = rte_eal_get_runtime_dir();
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(runtimeDir, ignored);
    });
    return true;
  }();
  (void)started;
}

}  // namespace nodeplane::fuzz
