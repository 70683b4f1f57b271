// A pod's port of nodeplane's own, outside ethdev: a packet socket on the host end of the pod's
// veth pair, bound to that interface alone.
//
//   RX  a TPACKET_V2 ring mapped into our memory: a worker polls it by reading one frame's status
//       word (an idle pod costs a memory read, no system call), copies each frame into an mbuf
//       (a chain for frames larger than one mbuf) and hands the frame back to the kernel.
//   TX  sendmmsg() of the burst, each packet gathered from its mbuf segments (one system call per
//       port per flush). Any worker may send to any pod port: the kernel serialises the socket.
//
// The socket has no fanout (so the kernel never defragments: fragments pass as fragments) and
// ignores its own outgoing packets. Ports get ids of their own (kFirstPodPort and up, see
// snapshot.h), so a node holds up to kMaxPodPorts pods whatever DPDK's RTE_MAX_ETHPORTS is.
// Opened and closed on the control thread; RX of one port by exactly one worker.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::dataplane {

struct PodPortStats {
  uint64_t rxPackets = 0, rxBytes = 0;  // frames the worker took from the ring
  uint64_t rxDropped = 0;               // the kernel's count of frames the ring had no room for
  uint64_t rxNoMbuf = 0;                // frames dropped for want of mbufs
  uint64_t rxTruncated = 0;             // frames larger than a ring frame (beyond the pod MTU)
};

class PodPort {
 public:
  struct Options {
    uint32_t frameSize = 2048;  // ring frame: TPACKET header + the largest frame the pod sends
    uint32_t frames = 256;      // frames in the RX ring
  };

  static Result<std::unique_ptr<PodPort>> open(const std::string& interface, Options options);
  ~PodPort();
  PodPort(const PodPort&) = delete;
  PodPort& operator=(const PodPort&) = delete;

  // Worker (the one polling this port): up to `max` frames into mbufs from `pool`, marked as
  // received on `port` (this port's id).
  uint16_t receive(rte_mempool* pool, uint16_t port, rte_mbuf** pkts, uint16_t max);
  // Any worker: sends up to `n` packets; returns how many the kernel took (the caller frees all).
  uint16_t transmit(rte_mbuf* const* pkts, uint16_t n);

  const std::string& interface() const { return interface_; }
  MacAddress mac() const { return mac_; }
  // Control thread: counters of this port (the kernel's drop count is read and accumulated).
  PodPortStats stats();

 private:
  PodPort() = default;

  std::string interface_;
  int fd_ = -1;
  int ifindex_ = 0;
  MacAddress mac_;
  uint8_t* ring_ = nullptr;
  size_t ringBytes_ = 0;
  uint32_t frameSize_ = 0;
  uint32_t frames_ = 0;
  uint32_t next_ = 0;  // the next frame to look at (worker)
  // Worker-written, control-read (relaxed atomics).
  uint64_t rxPackets_ = 0, rxBytes_ = 0, rxNoMbuf_ = 0, rxTruncated_ = 0;
  uint64_t rxDropped_ = 0;  // control thread only
};

}  // namespace nodeplane::dataplane
