// The flow log's control-thread side (`npctl observe`): drains the workers' rings
// (dataplane/flow_log.h) on every tick into a bounded history where each record gets a sequence
// number and a wall-clock time, and answers queries: the records after a cursor that pass the
// filters, with addresses resolved to pods, Services, policies and port names.
// Control thread only. Memory: the history holds at most kHistory records (48 bytes each plus
// time and sequence); the oldest leave first, counted.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "control/node_controller.h"
#include "control/protocol.h"
#include "dataplane/dataplane_backend.h"
#include "dataplane/flow_log.h"

namespace nodeplane::control {

struct FlowFilter {
  std::optional<std::string> pod;        // "namespace/name" or "name": either end
  std::optional<std::string> ns;         // either end's pod namespace
  std::optional<std::string> verdict;    // forwarded, dropped, policy-denied, l7-denied
  std::optional<uint16_t> port;          // L4 port at either end, before or after translation
  std::optional<uint8_t> protocol;       // IPPROTO_*
  std::optional<std::string> interface;  // the nodeplane port the packet arrived on (npctl ports)
};

// Reads a filter from request arguments (pod, namespace, verdict, port, protocol, interface);
// an error names the bad field.
Result<FlowFilter> readFlowFilter(const ArgReader& args);

class FlowObserver {
 public:
  static constexpr size_t kHistory = 16384;

  FlowObserver(NodeController& node, dataplane::DataplaneBackend& backend)
      : node_(node), backend_(backend) {}

  // Moves what the workers recorded into the history; returns how many records arrived.
  size_t drain();

  // Records with a sequence number above `after` (or, without `after`, the last `limit`), at
  // most `limit`, as JSON; with the cursor to pass next time and what was lost.
  Json query(const FlowFilter& filter, std::optional<uint64_t> after, size_t limit) const;

  uint64_t lastSequence() const { return nextSequence_ - 1; }
  uint64_t evicted() const { return evicted_; }

 private:
  struct Entry {
    uint64_t sequence;
    int64_t unixMs;
    dataplane::FlowRecord record;
  };
  NodeController& node_;
  dataplane::DataplaneBackend& backend_;
  std::deque<Entry> history_;
  std::vector<dataplane::FlowRecord> scratch_;
  uint64_t nextSequence_ = 1;
  uint64_t evicted_ = 0;
};

}  // namespace nodeplane::control
