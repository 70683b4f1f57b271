// npctl capture's daemon side: the capture.start / capture.read / capture.stop ops over one
// capture session at a time (dataplane/capture.h). Ports are named as npctl ports shows them
// ("uplink", "host", a pod's "namespace/name") or by ethdev name or id. Captured packets go back
// base64-encoded with their wall-clock time and direction; npctl writes the pcapng file.
// A session nobody has read for kIdleTimeout is stopped (an npctl that died leaves nothing
// running). Control thread only.
#pragma once

#include <chrono>
#include <cstdint>

#include "control/node_controller.h"
#include "control/protocol.h"
#include "dataplane/dataplane_backend.h"

namespace nodeplane::control {

class PacketCapture {
 public:
  static constexpr auto kIdleTimeout = std::chrono::seconds(10);
  static constexpr size_t kMaxReplyBytes = 4u << 20;  // captured bytes per read, at most

  PacketCapture(NodeController& node, dataplane::DataplaneBackend& backend)
      : node_(node), backend_(backend) {}
  ~PacketCapture();

  Result<Json> start(const ArgReader& args);
  Result<Json> read(const ArgReader& args);
  Result<Json> stop(const ArgReader& args);
  // Stops a session nobody reads any more (the daemon's tick).
  void expireIdle(std::chrono::steady_clock::time_point now);

 private:
  Result<uint16_t> portNamed(const std::string& name, std::string* canonical) const;
  Status checkSession(const ArgReader& args) const;
  Json finish();

  NodeController& node_;
  dataplane::DataplaneBackend& backend_;
  uint64_t session_ = 0;  // 0: none
  uint64_t nextSession_ = 1;
  std::string interface_;
  std::chrono::steady_clock::time_point lastRead_;
  int64_t baseUnixNs_ = 0;
  uint64_t baseTsc_ = 0;
  uint64_t delivered_ = 0;
};

}  // namespace nodeplane::control
