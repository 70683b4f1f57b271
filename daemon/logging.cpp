#include "daemon/logging.h"

#include <rte_log.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>

namespace nodeplane::daemon {

namespace {

// fopencookie write hook: DPDK writes whole or partial lines; emit complete lines.
ssize_t writeDpdkLog(void*, const char* buf, size_t size) {
  static thread_local std::string pending;
  pending.append(buf, size);
  size_t nl;
  while ((nl = pending.find('\n')) != std::string::npos) {
    std::string line = pending.substr(0, nl);
    pending.erase(0, nl + 1);
    if (line.empty()) continue;
    const uint32_t level = rte_log_cur_msg_loglevel();
    spdlog::level::level_enum l = spdlog::level::info;
    if (level <= RTE_LOG_ERR)
      l = spdlog::level::err;
    else if (level == RTE_LOG_WARNING)
      l = spdlog::level::warn;
    else if (level == RTE_LOG_DEBUG)
      l = spdlog::level::debug;
    spdlog::log(l, "dpdk: {}", line);
  }
  return static_cast<ssize_t>(size);
}

}  // namespace

void setupLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("nodeplane");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

void routeDpdkLogToSpdlog() {
  cookie_io_functions_t io{};
  io.write = &writeDpdkLog;
  FILE* stream = fopencookie(nullptr, "w", io);
  if (stream == nullptr) return;
  setvbuf(stream, nullptr, _IOLBF, 0);
  rte_openlog_stream(stream);
}

}  // namespace nodeplane::daemon
