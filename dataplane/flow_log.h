// The flow log's worker side: what happened to each new flow (forwarded, translated to which
// backend, denied by which NetworkPolicy, reset by an L7 rule) and to each dropped packet (its
// drop reason), as fixed-size records in a bounded ring per worker (rte_ring, single producer,
// single consumer) that the control thread drains (control/flow_observer.h). A full ring loses
// the record, never the packet, and counts it.
// Hot path: a record is one ring enqueue of 48 bytes, written only for new flows and drops,
// never for the packets of an established flow. No allocation, locks or logging.
#pragma once

#include <rte_byteorder.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/counters.h"
#include "core/drop_reason.h"
#include "core/packet.h"
#include "core/result.h"

struct rte_ring;

namespace nodeplane::dataplane {

enum class FlowEvent : uint8_t {
  kForwarded,     // a new flow let through (tracked: with its translation; untracked: a TCP SYN)
  kDropped,       // a packet dropped (`reason`)
  kPolicyDenied,  // a new flow a NetworkPolicy denied (`policy`: the denying policy's slot + 1)
  kL7Denied,      // an L7 rule reset the flow (`policy`: the L7 match index + 1, 0: no allow rule)
};
const char* flowEventName(FlowEvent e);

inline constexpr uint8_t kFlowDnat = 0x01;  // the destination was translated (a Service)
inline constexpr uint8_t kFlowSnat = 0x02;  // the source was translated (masquerade, hairpin)

// One record (worker -> control thread). Addresses and ports in network order.
struct FlowRecord {
  rte_be32_t src, dst;  // as the packet arrived
  rte_be16_t sport, dport;
  rte_be32_t xsrc, xdst;  // after translation (equal to the above when none)
  rte_be16_t xsport, xdport;
  uint32_t servicePort;  // the Service port a DNAT chose a backend of (0: none)
  uint32_t policy;       // see FlowEvent
  uint32_t l7Serial;     // kL7Denied: the L7 database the match index belongs to
  uint16_t inPort;
  uint16_t worker;
  FlowEvent event;
  DropReason reason;  // kDropped, kPolicyDenied
  uint8_t protocol;
  uint8_t tcpFlags;
  uint8_t translation;  // kFlowDnat | kFlowSnat
  uint8_t pad[3];
};
static_assert(sizeof(FlowRecord) == 48);

class FlowLog {
 public:
  static constexpr uint32_t kDefaultRingSize = 4096;  // records per worker

  // `ringSize`: a power of two, records per worker.
  static Result<std::unique_ptr<FlowLog>> create(unsigned workers, uint32_t ringSize, int socketId);
  ~FlowLog();
  FlowLog(const FlowLog&) = delete;
  FlowLog& operator=(const FlowLog&) = delete;

  // Workers: their own ring only. (Staging records and enqueueing them once per burst measured
  // slower: perf/RESULTS.md.)
  void record(unsigned worker, const FlowRecord& r) {
    if (rte_ring_sp_enqueue_elem(rings_[worker], const_cast<FlowRecord*>(&r), sizeof(r)) != 0)
      lost_[worker].records.add();
  }

  // Control thread: moves up to `max` records of every worker into `out`; returns how many.
  size_t drain(std::vector<FlowRecord>& out, size_t max);
  // Records lost to a full ring, all workers together.
  uint64_t overflow() const;
  unsigned workers() const { return static_cast<unsigned>(rings_.size()); }
  uint32_t ringSize() const { return ringSize_; }

 private:
  FlowLog() = default;
  struct alignas(64) Lost {
    Counter records;
  };
  std::vector<rte_ring*> rings_;
  std::unique_ptr<Lost[]> lost_;
  uint32_t ringSize_ = 0;
};

// A record of the packet `meta` describes, as it arrived: its tuple (zero when not IPv4),
// protocol and TCP flags; the translated tuple equal to it.
inline FlowRecord flowRecordOf(const PacketMeta& meta, uint16_t inPort, uint16_t worker,
                               FlowEvent event) {
  FlowRecord r{};
  if (meta.l3 == L3Kind::kIpv4) {
    r.src = r.xsrc = meta.srcIp;
    r.dst = r.xdst = meta.dstIp;
    if (!(meta.flags & kFlagLaterFragment)) {
      r.sport = r.xsport = meta.srcPort;
      r.dport = r.xdport = meta.dstPort;
    }
    r.protocol = meta.ipProto;
    r.tcpFlags = meta.tcpFlags;
  }
  r.inPort = inPort;
  r.worker = worker;
  r.event = event;
  return r;
}

}  // namespace nodeplane::dataplane
