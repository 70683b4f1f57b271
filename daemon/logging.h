// spdlog set-up for the daemon, and DPDK's own log stream routed into it, so that one log holds
// both. Logging is for the control path only: workers never log per packet.
#pragma once

#include <string>

namespace nodeplane::daemon {

// Level names as in the --log-level option.
void setupLogging(const std::string& level);
// Sends everything DPDK logs through spdlog (call before rte_eal_init).
void routeDpdkLogToSpdlog();

}  // namespace nodeplane::daemon
