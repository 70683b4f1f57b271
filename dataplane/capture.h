// Packet capture on one port (npctl capture): while a session is installed, workers pass the
// port's packets through its filter (a tcpdump expression compiled by libpcap, converted to eBPF
// with rte_bpf_convert and JIT-compiled by rte_bpf) as they arrive (before any stage) and as they
// leave (as they go on the wire or into the pod), copy the matching ones (up to the snap length)
// into the session's own mempool and queue them on its ring for the control thread.
// Cost: with no session, one load of a null pointer per burst and per TX flush. With one, a
// filter run per packet of the captured port and a copy per match; a full ring or pool loses the
// copy, never the packet, and counts it.
// Memory: the engine installs a session with a release store and removes it with a grace period
// (QSBR) before freeing it; the ring's mbufs are freed with it.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/counters.h"
#include "core/result.h"

struct rte_bpf;
struct rte_ring;
struct rte_mempool;

namespace nodeplane::dataplane {

enum class CaptureDirection : uint8_t { kRx = 1, kTx = 2 };

// An element of the session's ring.
struct CapturedPacket {
  rte_mbuf* mbuf;   // the copy (snap length at most)
  uint64_t tsc;     // when the worker saw it
  uint32_t length;  // the packet's whole length
  CaptureDirection direction;
  uint8_t pad[3];
};
static_assert(sizeof(CapturedPacket) == 24);

struct CaptureSpec {
  uint16_t port = 0;
  std::string filter;  // tcpdump syntax; empty: every packet
  uint32_t snaplen = 65535;
  bool rx = true;
  bool tx = true;
};

class CaptureSession {
 public:
  static constexpr unsigned kRingSize = 4096;
  static constexpr unsigned kMbufs = 4095;

  // An error names a filter that does not compile, with libpcap's words.
  static Result<std::unique_ptr<CaptureSession>> create(const CaptureSpec& spec, unsigned workers,
                                                        int socketId);
  ~CaptureSession();
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;

  const CaptureSpec& spec() const { return spec_; }
  bool wants(uint16_t port, CaptureDirection d) const {
    return port == spec_.port && (d == CaptureDirection::kRx ? spec_.rx : spec_.tx);
  }

  // Workers: the packets of `port` going `d` (the caller checked wants()).
  void offer(rte_mbuf* const* pkts, uint16_t count, CaptureDirection d, unsigned worker);

  // Control thread: up to `max` captured packets (the caller frees their mbufs).
  unsigned drain(CapturedPacket* out, unsigned max);
  uint64_t captured() const;  // queued for the control thread
  uint64_t lost() const;      // matched, but the ring or the pool was full
  uint64_t tscHz() const { return tscHz_; }

 private:
  CaptureSession() = default;
  struct alignas(64) WorkerCount {
    Counter captured;
    Counter lost;
  };
  CaptureSpec spec_;
  rte_ring* ring_ = nullptr;
  rte_mempool* pool_ = nullptr;
  rte_bpf* bpf_ = nullptr;
  uint64_t (*jit_)(void*) = nullptr;
  uint64_t tscHz_ = 0;
  std::unique_ptr<WorkerCount[]> counts_;
  unsigned workers_ = 0;
};

}  // namespace nodeplane::dataplane
