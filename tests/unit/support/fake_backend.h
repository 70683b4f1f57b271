// A DataplaneBackend without ports or workers: hands out port ids, keeps the published snapshot,
// and records what the control plane did, so control logic is tested without real devices.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/capture.h"
#include "dataplane/dataplane_backend.h"

namespace nodeplane::testing {

// The MACs of the fake ports: 02:fe:00:00:00:<port id>, ids handed out from 0 in opening order.
inline constexpr const char* kFakePort0Mac = "02:fe:00:00:00:00";
inline constexpr const char* kFakePort1Mac = "02:fe:00:00:00:01";

class FakeBackend : public dataplane::DataplaneBackend {
 public:
  unsigned workers = 1;
  std::vector<dataplane::WorkerStats> stats;  // what workerStats() reports (empty: zeros)
  std::vector<std::string> opened;            // devargs, in order
  std::vector<uint16_t> closed;
  std::set<uint16_t> live;
  int synchronizations = 0;
  int publications = 0;
  bool failNextOpen = false;
  bool ipv4ChecksumOffload = false;  // what the fake ports claim

  unsigned workerCount() const override { return workers; }
  int socketId() const override { return 0; }
  Result<dataplane::PortInfo> openPort(const std::string& devargs) override {
    if (failNextOpen) {
      failNextOpen = false;
      return makeError(ErrorCode::kInvalidArgument, "fake: cannot open " + devargs);
    }
    dataplane::PortInfo info;
    info.id = nextPort_++;
    info.name = devargs.substr(0, devargs.find(','));
    info.driver = "fake";
    info.mac.bytes = {0x02, 0xfe, 0, 0, 0, static_cast<uint8_t>(info.id)};
    info.rxQueues = static_cast<uint16_t>(workers);
    info.txQueues = static_cast<uint16_t>(workers);
    info.txIpv4ChecksumOffload = ipv4ChecksumOffload;
    opened.push_back(devargs);
    live.insert(info.id);
    return info;
  }
  // Pod ports share the id sequence (tests count ports from 0 in attach order).
  Result<dataplane::PortInfo> openPodPort(const std::string& interface, uint32_t) override {
    auto info = openPort("pod:" + interface);
    if (info) {
      info->driver = "nodeplane-pod";
      info->rxQueues = 1;  // as the engine's: one worker polls a pod port
    }
    return info;
  }
  void closePort(uint16_t port) override {
    closed.push_back(port);
    live.erase(port);
  }
  void publish(std::unique_ptr<dataplane::Snapshot> snapshot) override {
    current_ = std::move(snapshot);
    ++publications;
  }
  void synchronize() override { ++synchronizations; }
  Result<dataplane::PortStats> portStats(uint16_t) const override { return dataplane::PortStats{}; }
  std::vector<dataplane::WorkerStats> workerStats() const override {
    return stats.empty() ? std::vector<dataplane::WorkerStats>(workers) : stats;
  }
  size_t drainPunted(dataplane::PuntedPacket* out, size_t max) override {
    size_t n = 0;
    while (n < max && !punted.empty()) {
      out[n++] = punted.front();
      punted.erase(punted.begin());
    }
    return n;
  }
  bool inject(uint16_t port, rte_mbuf* m) override {
    if (injectFull) return false;
    injected.push_back({port, m});
    return true;
  }
  rte_mempool* mempool() override { return pool; }
  WorkerCounters& controlCounters() override { return control; }
  lb::ConnTracker* conntrack() override { return tracker; }
  lb::ConnTracker* tracker = nullptr;
  // A capture session is held (no worker offers it anything; a test may).
  Status installCapture(std::unique_ptr<dataplane::CaptureSession> session) override {
    if (capture_) return makeError(ErrorCode::kAlreadyExists, "a capture is running");
    capture_ = std::move(session);
    return okStatus();
  }
  void removeCapture() override { capture_.reset(); }
  dataplane::CaptureSession* capture() override { return capture_.get(); }

  // Slow-path fakes: what workers punted (the test fills it), what the control thread injected.
  std::vector<dataplane::PuntedPacket> punted;
  std::vector<std::pair<uint16_t, rte_mbuf*>> injected;
  bool injectFull = false;
  rte_mempool* pool = nullptr;
  WorkerCounters control;

  const dataplane::Snapshot* current() const { return current_.get(); }

 private:
  uint16_t nextPort_ = 0;
  std::unique_ptr<dataplane::Snapshot> current_;
  std::unique_ptr<dataplane::CaptureSession> capture_;
};

}  // namespace nodeplane::testing
