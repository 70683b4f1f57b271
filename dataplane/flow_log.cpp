#include "dataplane/flow_log.h"

#include <rte_errno.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace nodeplane::dataplane {

const char* flowEventName(FlowEvent e) {
  switch (e) {
    case FlowEvent::kForwarded:
      return "forwarded";
    case FlowEvent::kDropped:
      return "dropped";
    case FlowEvent::kPolicyDenied:
      return "policy-denied";
    case FlowEvent::kL7Denied:
      return "l7-denied";
  }
  return "?";
}

Result<std::unique_ptr<FlowLog>> FlowLog::create(unsigned workers, uint32_t ringSize,
                                                 int socketId) {
  if (ringSize < 2 || (ringSize & (ringSize - 1)) != 0)
    return invalidArgument("flow log: ring size " + std::to_string(ringSize) +
                           " is not a power of two");
  static std::atomic<uint32_t> sequence{0};
  const uint32_t id = sequence.fetch_add(1);
  std::unique_ptr<FlowLog> log(new FlowLog());
  log->ringSize_ = ringSize;
  log->lost_.reset(new Lost[workers]);
  for (unsigned w = 0; w < workers; ++w) {
    const std::string name = "np_flog" + std::to_string(id) + "_" + std::to_string(w);
    // RING_F_EXACT_SZ: `ringSize` records fit, not one fewer.
    rte_ring* ring = rte_ring_create_elem(name.c_str(), sizeof(FlowRecord), ringSize, socketId,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (ring == nullptr)
      return makeError(ErrorCode::kResourceExhausted,
                       "flow log ring: " + std::string(rte_strerror(rte_errno)));
    log->rings_.push_back(ring);
  }
  return log;
}

FlowLog::~FlowLog() {
  for (rte_ring* r : rings_) rte_ring_free(r);
}

size_t FlowLog::drain(std::vector<FlowRecord>& out, size_t max) {
  size_t n = 0;
  FlowRecord batch[64];
  for (rte_ring* ring : rings_) {
    while (n < max) {
      const unsigned want = static_cast<unsigned>(std::min<size_t>(64, max - n));
      const unsigned got =
          rte_ring_sc_dequeue_burst_elem(ring, batch, sizeof(FlowRecord), want, nullptr);
      out.insert(out.end(), batch, batch + got);
      n += got;
      if (got < want) break;
    }
  }
  return n;
}

uint64_t FlowLog::overflow() const {
  uint64_t n = 0;
  for (size_t w = 0; w < rings_.size(); ++w) n += lost_[w].records.read();
  return n;
}

}  // namespace nodeplane::dataplane
