// npctl's commands that run for a while and stream what they get: the flow log (observe) and
// packet capture (capture). Each returns the process's exit status.
#pragma once

#include <string>
#include <vector>

namespace nodeplane::control::npctl {

// npctl observe [--follow] [--last N] [filters]: flow log records as JSON lines on stdout.
int observe(const std::string& socket, const std::vector<std::string>& words);

// npctl capture --port NAME [--filter BPF] [--count N] [--duration S] [--snaplen N]
// [--direction rx|tx|both] -w FILE|-: packets of one port into a pcapng file.
int capture(const std::string& socket, const std::vector<std::string>& words);

}  // namespace nodeplane::control::npctl
