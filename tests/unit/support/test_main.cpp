// GoogleTest main for tests that need EAL: initialises it without hugepages, on one lcore, with
// no shared files, so unit tests run anywhere (CI, sanitizers, parallel ctest) as any user.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::string prefix = "np-unit-" + std::to_string(getpid());
  std::vector<std::string> args = {"unit",
                                   "--no-huge",
                                   "-m",
                                   "512",
                                   "--no-pci",
                                   "--no-shconf",
                                   "-l",
                                   "0",
                                   "--log-level=error",
                                   "--no-telemetry",
                                   "--file-prefix",
                                   prefix};
  std::vector<char*> argvEal;
  for (auto& a : args) argvEal.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argvEal.size()), argvEal.data()) < 0) {
    fprintf(stderr, "EAL init failed\n");
    return 1;
  }
  int rc = RUN_ALL_TESTS();
  const std::string runtimeDir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;  // EAL leaves /var/run/dpdk/<prefix> behind: ours, so it goes
  std::filesystem::remove_all(runtimeDir, ignored);
  return rc;
}
