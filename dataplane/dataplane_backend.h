// The contract between the control plane and the running data plane: open and close ports,
// publish snapshots, wait for a grace period. The control plane's logic is tested against other
// implementations of it (docs/architecture.md, "One core function, thin front ends");
// dataplane::Engine is the real one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/counters.h"
#include "core/ipv4.h"
#include "core/result.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::lb {
class ConnTracker;
}

namespace nodeplane::dataplane {

class CaptureSession;
class FlowLog;

struct PortInfo {
  uint16_t id = 0;
  std::string name;    // the ethdev name (vdev name or PCI address)
  std::string driver;  // e.g. net_af_packet
  MacAddress mac;
  uint16_t rxQueues = 0;               // polled by workers 0 .. rxQueues-1 (one each)
  uint16_t txQueues = 0;               // one per worker
  bool txIpv4ChecksumOffload = false;  // enabled: the NIC fills in IPv4 header checksums
};

struct PortStats {
  uint64_t rxPackets = 0, txPackets = 0, rxBytes = 0, txBytes = 0;
  uint64_t rxMissed = 0, rxErrors = 0, txErrors = 0, rxNoMbuf = 0;
  bool linkUp = false;
  uint32_t linkSpeedMbps = 0;
};

struct WorkerStats {
  unsigned index = 0;
  unsigned lcore = 0;
  bool control = false;  // the control thread's own counters (slow path), not a worker
  CounterTotals counters;
};

class DataplaneBackend {
 public:
  virtual ~DataplaneBackend() = default;

  virtual unsigned workerCount() const = 0;
  virtual int socketId() const = 0;
  // Probes (hot-plugs) the device named by devargs unless it exists, configures one RX and one
  // TX queue per worker where the device allows, and starts it. Not yet polled by anyone.
  virtual Result<PortInfo> openPort(const std::string& devargs) = 0;
  // Opens a pod port of nodeplane's own (pod_port.h) on `interface`, the host end of the pod's
  // veth pair, for frames of up to `maxFrame` bytes. Its id is kFirstPodPort or above; one RX
  // queue (polled by one worker). Not yet polled by anyone.
  virtual Result<PortInfo> openPodPort(const std::string& interface, uint32_t maxFrame) = 0;
  // Stops, closes and removes a port (either kind). The caller must have published a snapshot
  // without the port and synchronized first.
  virtual void closePort(uint16_t port) = 0;
  virtual void publish(std::unique_ptr<Snapshot> snapshot) = 0;
  virtual void synchronize() = 0;

  virtual Result<PortStats> portStats(uint16_t port) const = 0;
  // Every worker, then the control thread.
  virtual std::vector<WorkerStats> workerStats() const = 0;

  // The slow path. Packets workers handed to the control thread (up to `max`).
  virtual size_t drainPunted(PuntedPacket* out, size_t max) = 0;
  // Queues `m` for transmission on `port` by a worker. False when the queue is full (the caller
  // still owns m).
  virtual bool inject(uint16_t port, rte_mbuf* m) = 0;
  virtual rte_mempool* mempool() = 0;
  // Counters the control thread writes (and only it).
  virtual WorkerCounters& controlCounters() = 0;
  // The connection table (read-only use on the control thread: listings, statistics).
  virtual lb::ConnTracker* conntrack() = 0;
  // The workers' flow log (flow_log.h), drained by the control thread; null when off.
  virtual FlowLog* flowLog() const { return nullptr; }
  // Packet capture (capture.h): the workers start offering packets to `session` (one at a time);
  // remove waits for a grace period, then frees it. Unsupported by default.
  virtual Status installCapture(std::unique_ptr<CaptureSession> session) {
    (void)session;
    return makeError(ErrorCode::kUnavailable, "this data plane does not capture");
  }
  virtual void removeCapture() {}
  virtual CaptureSession* capture() { return nullptr; }
};

}  // namespace nodeplane::dataplane
