#include "control/npctl/streams.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "control/client.h"
#include "control/npctl/flags.h"
#include "control/npctl/pcapng.h"
#include "core/base64.h"

namespace nodeplane::control::npctl {

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(200);

std::atomic<bool> interrupted{false};

void onInterrupt(int) {
  interrupted.store(true);
}

// Ctrl-C and SIGTERM end a stream cleanly (a capture still stops its session and closes its
// file); a closed pipe ends it too.
void catchInterrupts() {
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int fail(const Error& e) {
  std::cerr << "npctl: " << errorCodeName(e.code) << ": " << e.message << "\n";
  return 1;
}

int usage(const Error& e) {
  std::cerr << "npctl: " << e.message << "\n";
  return 2;
}

}  // namespace

int observe(const std::string& socket, const std::vector<std::string>& words) {
  auto parsed = flagsToArgs(words, 1,
                            {{"--follow", "follow"},
                             {"-f", "follow"},
                             {"--last", "limit"},
                             {"--pod", "pod"},
                             {"--namespace", "namespace"},
                             {"--verdict", "verdict"},
                             {"--port", "port"},
                             {"--protocol", "protocol"},
                             {"--interface", "interface"}},
                            {"limit", "port"}, {"follow"});
  if (!parsed) return usage(parsed.error());
  Json args = *parsed;
  const bool follow = args.value("follow", false);
  args.erase("follow");
  if (!args.contains("limit")) args["limit"] = 20;
  catchInterrupts();
  ControlClient client(socket, std::chrono::seconds(10));
  bool warned = false;
  uint64_t lost = 0;
  while (!interrupted.load()) {
    auto reply = client.call("observe", args);
    if (!reply) return fail(reply.error());
    if (!reply->value("enabled", true) && !warned) {
      std::cerr << "npctl: the daemon runs without a flow log (--flow-log-size 0)\n";
      warned = true;
    }
    for (const Json& r : (*reply)["records"]) std::cout << r.dump() << "\n";
    std::cout.flush();
    if (!std::cout) return 0;  // the reader went away
    const uint64_t nowLost = reply->value("lostInRings", uint64_t{0});
    if (follow && nowLost > lost && lost != 0)
      std::cerr << "npctl: " << nowLost - lost << " record(s) lost: the workers' rings were full\n";
    lost = nowLost;
    if (!follow) return 0;
    args["after"] = (*reply)["cursor"];
    args["limit"] = 1000;
    std::this_thread::sleep_for(kPollInterval);
  }
  return 0;
}

int capture(const std::string& socket, const std::vector<std::string>& words) {
  // -w takes a file name like tcpdump's.
  std::vector<std::string> w = words;
  for (std::string& word : w)
    if (word == "-w") word = "--write";
  auto parsed = flagsToArgs(w, 1,
                            {{"--port", "port"},
                             {"--filter", "filter"},
                             {"--count", "count"},
                             {"--duration", "duration"},
                             {"--snaplen", "snaplen"},
                             {"--direction", "direction"},
                             {"--write", "write"}},
                            {"count", "duration", "snaplen"});
  if (!parsed) return usage(parsed.error());
  Json args = *parsed;
  if (!args.contains("port")) return usage(invalidArgument("capture: --port is required"));
  if (!args.contains("write")) return usage(invalidArgument("capture: -w FILE|- is required"));
  const std::string path = args["write"];
  const int64_t count = args.value("count", int64_t{0});
  const int64_t duration = args.value("duration", int64_t{0});
  if (count < 0 || duration < 0)
    return usage(invalidArgument("capture: --count and --duration are not negative"));
  Json start = args;
  start.erase("write");
  start.erase("count");
  start.erase("duration");

  catchInterrupts();
  ControlClient client(socket, std::chrono::seconds(10));
  auto started = client.call("capture.start", start);
  if (!started) return fail(started.error());
  const uint64_t session = (*started)["session"];
  auto stop = [&] { return client.call("capture.stop", {{"session", session}}); };

  std::FILE* out = path == "-" ? stdout : std::fopen(path.c_str(), "wb");
  if (out == nullptr) {
    (void)stop();
    std::cerr << "npctl: capture: cannot write " << path << "\n";
    return 1;
  }
  const std::string interfaceName = (*started).value("interface", std::string());
  PcapngWriter writer(
      out, interfaceName, (*started).value("snaplen", 65535u),
      "npctl capture --port " + interfaceName + " " + start.value("filter", std::string()));
  std::fflush(out);
  std::cerr << "npctl: capturing on " << interfaceName << " ("
            << (*started).value("direction", std::string("both")) << ")\n";

  int64_t written = 0;
  int rc = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(duration);
  while (!interrupted.load()) {
    auto batch = client.call("capture.read", {{"session", session}});
    if (!batch) {
      rc = fail(batch.error());
      break;
    }
    for (const Json& p : (*batch)["packets"]) {
      if (count != 0 && written >= count) break;
      auto data = base64Decode(p.value("data", std::string()));
      if (!data) continue;
      const std::string dir = p.value("direction", std::string());
      writer.writePacket(p.value("unixNs", uint64_t{0}), *data, p.value("length", 0u),
                         dir == "rx"   ? Direction::kInbound
                         : dir == "tx" ? Direction::kOutbound
                                       : Direction::kUnknown);
      ++written;
    }
    std::fflush(out);
    if (writer.failed()) {
      std::cerr << "npctl: capture: writing " << path << " failed\n";
      rc = 1;
      break;
    }
    if (count != 0 && written >= count) break;
    if (duration != 0 && std::chrono::steady_clock::now() >= deadline) break;
    if ((*batch)["packets"].empty()) std::this_thread::sleep_for(kPollInterval);
  }
  auto stopped = stop();
  if (out != stdout) std::fclose(out);
  if (stopped) {
    std::cerr << "npctl: " << written << " packet(s) written; the daemon captured "
              << (*stopped).value("captured", uint64_t{0}) << ", lost "
              << (*stopped).value("lost", uint64_t{0}) << "\n";
  }
  return rc;
}

}  // namespace nodeplane::control::npctl
