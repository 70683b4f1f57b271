// What the control API counts for the metrics endpoint (control/metrics.h): desired-state
// applies and their latency. Control thread only.
#pragma once

#include <array>
#include <cstdint>

namespace nodeplane::control {

// Applies of the desired state and how long they took (ControlApi records them).
struct ApplyStats {
  static constexpr std::array<double, 9> kBoundsSeconds = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                           0.05,  0.1,    0.5,   1.0};
  uint64_t ok = 0, failed = 0;
  std::array<uint64_t, kBoundsSeconds.size()> buckets{};  // not cumulative
  double sumSeconds = 0;
  void record(double seconds, bool succeeded);
};

}  // namespace nodeplane::control
