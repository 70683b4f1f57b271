// What the policy module keeps for the daemon's lifetime, across snapshots: per-policy counters
// (one block per worker, stable slots by policy name), the per-worker rings that carry denied-
// flow records to the control thread (rate-limited at the worker), and each worker's map from its
// connection entries to their L7 stream states.
// Workers write only their own blocks; the control thread assigns slots and reads.
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/counters.h"
#include "core/result.h"

struct rte_ring;

namespace nodeplane::policy {

enum class PolicyEvent : uint8_t {
  kDenyEgress,       // dropped: the source pod's egress policies allow no such flow
  kDenyIngress,      // dropped: the destination pod's ingress policies allow no such flow
  kAuditDenyEgress,  // audit mode: would have been dropped, passed
  kAuditDenyIngress,
  kL7Deny,  // an L7 rule reset the flow
  kL7Log,   // an L7 log rule matched
};
const char* policyEventName(PolicyEvent e);

// One record of the denied-flow log (worker -> control thread).
struct PolicyLogRecord {
  rte_be32_t src, dst;
  rte_be16_t sport, dport;
  uint8_t protocol;
  PolicyEvent event;
  uint16_t worker;
  uint32_t slot;      // policy counter slot (deny/audit), or L7 match index + 1 (0: no allow rule)
  uint32_t l7Serial;  // the L7 database the match index belongs to
  uint32_t timeMs;
  uint32_t pad;
};
static_assert(sizeof(PolicyLogRecord) == 32);

struct alignas(64) PolicyCounterBlock {
  Counter allowed;      // flows a policy's rule allowed
  Counter denied;       // flows denied while this policy isolated the pod
  Counter auditDenied;  // flows it would deny (audit mode), passed
};

// A worker's reference from a connection entry to its L7 flow state.
struct L7Ref {
  uint32_t flow = 0;    // index in the L7 database's pool + 1; 0: none
  uint32_t serial = 0;  // the database it belongs to
};

class PolicyRuntime {
 public:
  static constexpr uint32_t kLogRingSize = 1024;
  static constexpr uint32_t kLogPerSecond = 100;  // per worker; the rest is counted as suppressed

  // `entriesPerWorker`: slots of one connection-table shard (the L7 references' index space).
  static Result<std::shared_ptr<PolicyRuntime>> create(unsigned workers, uint32_t maxPolicies,
                                                       uint32_t entriesPerWorker, int socketId);
  ~PolicyRuntime();
  PolicyRuntime(const PolicyRuntime&) = delete;
  PolicyRuntime& operator=(const PolicyRuntime&) = delete;

  // Workers.
  PolicyCounterBlock& counters(unsigned worker, uint32_t slot) {
    return counters_[static_cast<size_t>(worker) * maxPolicies_ + slot];
  }
  void log(unsigned worker, const PolicyLogRecord& record);
  L7Ref* l7Refs(unsigned worker) { return l7Refs_[worker].data(); }
  uint32_t entriesPerWorker() const { return entriesPerWorker_; }
  // Control thread, before publishing the first table with L7 rules: the workers' reference
  // arrays (8 bytes per connection entry each), allocated once.
  void prepareL7();

  // Control thread.
  // The counter slot of a policy (namespace/name), assigned on first use; kept while it exists.
  Result<uint32_t> slotFor(const std::string& key);
  // Frees the slots of policies not in `keys` (their counters start from zero when reused).
  void retain(const std::set<std::string>& keys);
  struct Totals {
    uint64_t allowed = 0, denied = 0, auditDenied = 0;
  };
  Totals totals(uint32_t slot) const;
  // Moves new records from the workers' rings into the recent-records list (bounded) and
  // returns how many arrived.
  size_t drain();
  struct Entry {
    PolicyLogRecord record;
    std::string policy;  // resolved when drained
    int64_t unixMs = 0;  // when drained (within the control thread's 10 ms tick)
  };
  const std::deque<Entry>& recent() const { return recent_; }
  uint64_t suppressed() const;
  std::string policyOfSlot(uint32_t slot) const;
  unsigned workers() const { return workers_; }
  uint32_t maxPolicies() const { return maxPolicies_; }

 private:
  PolicyRuntime() = default;
  struct alignas(64) WorkerLog {
    rte_ring* ring = nullptr;
    uint32_t tokens = kLogPerSecond;
    uint32_t lastRefillMs = 0;
    Counter suppressed;
  };
  unsigned workers_ = 0;
  uint32_t maxPolicies_ = 0;
  uint32_t entriesPerWorker_ = 0;
  std::unique_ptr<PolicyCounterBlock[]> counters_;
  std::vector<WorkerLog> logs_;
  std::vector<std::vector<L7Ref>> l7Refs_;
  std::map<std::string, uint32_t> slots_;
  std::vector<uint32_t> freeSlots_;
  std::vector<Totals> baseline_;
  std::deque<Entry> recent_;
  static constexpr size_t kRecentMax = 1000;
};

}  // namespace nodeplane::policy
