// The node's metrics in the Prometheus text exposition format, built with prometheus-cpp on each
// scrape from what the workers counted (their per-worker blocks, read, never written) and from
// control-thread state. Runs on the control thread (the HTTP server hands scrapes over through
// the ControlMailbox); the workers never see a scrape.
//
// Names follow Cilium's where there is one (nodeplane_drop_count_total{reason},
// nodeplane_forward_count_total{direction}, ...); every worker counter is exported as
// nodeplane_<counter>_total{worker}. control/README.md lists them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "control/control_api.h"
#include "control/metrics_stats.h"
#include "control/node_controller.h"
#include "dataplane/dataplane_backend.h"

namespace nodeplane::control {

// Readiness as the DaemonSet's probe asks it: a desired state (or services) applied, and every
// worker polling — its loop counter moved since the previous check. Control thread.
class Readiness {
 public:
  // Empty when ready, else why not. Workers are sampled at most every kSampleInterval (an idle
  // worker sleeps up to --idle-sleep-us between loops); in between the last verdict on them holds.
  std::string check(const NodeController& node, const dataplane::DataplaneBackend& backend);

  static constexpr std::chrono::milliseconds kSampleInterval{500};

 private:
  std::vector<uint64_t> lastLoops_;
  std::chrono::steady_clock::time_point lastSample_{};
  std::string workersVerdict_ = "workers not sampled yet";
};

std::string renderMetrics(ControlApi& api, const NodeController& node,
                          const dataplane::DataplaneBackend& backend, const ApplyStats& applies,
                          bool ready);

}  // namespace nodeplane::control
