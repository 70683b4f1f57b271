// A pod's port of nodeplane's own, outside ethdev: a packet socket on the host end of the pod's
// veth pair, bound to that interface alone.
//
//   RX  a TPACKET_V2 ring mapped into our memory: a worker polls it by reading one frame's status
//       word (an idle pod costs a memory read, no system call), copies each frame into an mbuf
//       (a chain for frames larger than one mbuf) and hands the frame back to the kernel. Ring
//       frames are sized for the pod's MTU; a larger frame (a TSO super-packet, up to 64 KiB)
//       is queued whole on the socket too (PACKET_COPY_THRESH, its ring frame marked
//       TP_STATUS_COPY) and read with one recvmsg() straight into an mbuf chain, so the ring
//       stays small (256 frames of 2 KiB: 512 KiB of kernel memory a pod).
//   TX  sendmmsg() of the burst, each packet gathered from its mbuf segments (one system call per
//       port per flush). Any worker may send to any pod port: the kernel serialises the socket.
//   Both directions carry a virtio-net header (PACKET_VNET_HDR, vnet.h): pods keep TSO and
//   checksum offload, and a TCP super-packet crosses nodeplane as one packet.
//
// The socket has no fanout (so the kernel never defragments: fragments pass as fragments) and
// ignores its own outgoing packets. Ports get ids of their own (kFirstPodPort and up, see
// snapshot.h), so a node holds up to kMaxPodPorts pods whatever DPDK's RTE_MAX_ETHPORTS is.
// Opened and closed on the control thread; RX of one port by exactly one worker.
#pragma once

#include <linux/if_packet.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/counters.h"
#include "core/drop_reason.h"
#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::dataplane {

struct PodPortStats {
  uint64_t rxPackets = 0, rxBytes = 0;  // frames the worker took from the ring
  uint64_t rxDropped = 0;               // the kernel's count of frames the ring had no room for
};

class PodPort {
 public:
  struct Options {
    uint32_t frameSize = 2048;  // ring frame: TPACKET header + an MTU-sized frame
    uint32_t frames = 256;      // frames in the RX ring
  };

  static Result<std::unique_ptr<PodPort>> open(const std::string& interface, Options options);
  ~PodPort();
  PodPort(const PodPort&) = delete;
  PodPort& operator=(const PodPort&) = delete;

  // Worker (the one polling this port): up to `max` frames into mbufs from `pool`, marked as
  // received on `port` (this port's id), their virtio-net headers as offload flags (vnet.h).
  // Frames refused here (truncated, a bad header, no mbuf) are counted in `counters`.
  uint16_t receive(rte_mempool* pool, uint16_t port, rte_mbuf** pkts, uint16_t max,
                   WorkerCounters& counters);
  // Any worker: sends the `n` packets; returns how many the kernel took, counting the rest in
  // `counters` (the caller frees all).
  uint16_t transmit(rte_mbuf* const* pkts, uint16_t n, WorkerCounters& counters);

  const std::string& interface() const { return interface_; }
  MacAddress mac() const { return mac_; }
  // Control thread: counters of this port (the kernel's drop count is read and accumulated).
  PodPortStats stats();

 private:
  PodPort() = default;
  // One filled ring frame into the chain `head` (room for hdr->tp_len bytes); kNone or why not.
  DropReason takeFrame(const tpacket2_hdr* hdr, uint32_t status, rte_mbuf* head);

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
  uint64_t rxPackets_ = 0, rxBytes_ = 0;
  uint64_t rxDropped_ = 0;  // control thread only
};

}  // namespace nodeplane::dataplane
