#include "policy/runtime.h"

#include <rte_errno.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <chrono>

namespace nodeplane::policy {

const char* policyEventName(PolicyEvent e) {
  switch (e) {
    case PolicyEvent::kDenyEgress:
      return "deny-egress";
    case PolicyEvent::kDenyIngress:
      return "deny-ingress";
    case PolicyEvent::kAuditDenyEgress:
      return "audit-deny-egress";
    case PolicyEvent::kAuditDenyIngress:
      return "audit-deny-ingress";
    case PolicyEvent::kL7Deny:
      return "l7-deny";
    case PolicyEvent::kL7Log:
      return "l7-log";
  }
  return "?";
}

Result<std::shared_ptr<PolicyRuntime>> PolicyRuntime::create(unsigned workers, uint32_t maxPolicies,
                                                             uint32_t entriesPerWorker,
                                                             int socketId) {
  static std::atomic<uint32_t> sequence{0};
  const uint32_t id = sequence.fetch_add(1);
  std::shared_ptr<PolicyRuntime> rt(new PolicyRuntime());
  rt->workers_ = workers;
  rt->maxPolicies_ = maxPolicies;
  rt->entriesPerWorker_ = entriesPerWorker;
  rt->counters_.reset(new PolicyCounterBlock[static_cast<size_t>(workers) * maxPolicies]);
  rt->logs_ = std::vector<WorkerLog>(workers);
  rt->l7Refs_.resize(workers);
  for (unsigned w = 0; w < workers; ++w) {
    const std::string name = "np_plog" + std::to_string(id) + "_" + std::to_string(w);
    rt->logs_[w].ring = rte_ring_create_elem(name.c_str(), sizeof(PolicyLogRecord), kLogRingSize,
                                             socketId, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (rt->logs_[w].ring == nullptr)
      return makeError(ErrorCode::kResourceExhausted,
                       "policy log ring: " + std::string(rte_strerror(rte_errno)));
  }
  rt->baseline_.resize(maxPolicies);
  for (uint32_t s = maxPolicies; s-- > 0;) rt->freeSlots_.push_back(s);
  return rt;
}

PolicyRuntime::~PolicyRuntime() {
  for (WorkerLog& l : logs_)
    if (l.ring) rte_ring_free(l.ring);
}

void PolicyRuntime::log(unsigned worker, const PolicyLogRecord& record) {
  WorkerLog& l = logs_[worker];
  if (record.timeMs - l.lastRefillMs >= 1000) {
    l.tokens = kLogPerSecond;
    l.lastRefillMs = record.timeMs;
  }
  if (l.tokens == 0 || rte_ring_sp_enqueue_elem(l.ring, const_cast<PolicyLogRecord*>(&record),
                                                sizeof(record)) != 0) {
    l.suppressed.add();
    return;
  }
  --l.tokens;
}

void PolicyRuntime::prepareL7() {
  for (auto& refs : l7Refs_)
    if (refs.empty()) refs.resize(entriesPerWorker_);
}

Result<uint32_t> PolicyRuntime::slotFor(const std::string& key) {
  auto it = slots_.find(key);
  if (it != slots_.end()) return it->second;
  if (freeSlots_.empty())
    return makeError(ErrorCode::kResourceExhausted, "networkpolicy " + key + ": more than " +
                                                        std::to_string(maxPolicies_) +
                                                        " policies on this node (--max-policies)");
  const uint32_t slot = freeSlots_.back();
  freeSlots_.pop_back();
  Totals now;
  for (unsigned w = 0; w < workers_; ++w) {
    const PolicyCounterBlock& c = counters(w, slot);
    now.allowed += c.allowed.read();
    now.denied += c.denied.read();
    now.auditDenied += c.auditDenied.read();
  }
  baseline_[slot] = now;
  slots_.emplace(key, slot);
  return slot;
}

void PolicyRuntime::retain(const std::set<std::string>& keys) {
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (keys.count(it->first)) {
      ++it;
      continue;
    }
    freeSlots_.push_back(it->second);
    it = slots_.erase(it);
  }
}

PolicyRuntime::Totals PolicyRuntime::totals(uint32_t slot) const {
  Totals t;
  for (unsigned w = 0; w < workers_; ++w) {
    const PolicyCounterBlock& c = counters_[static_cast<size_t>(w) * maxPolicies_ + slot];
    t.allowed += c.allowed.read();
    t.denied += c.denied.read();
    t.auditDenied += c.auditDenied.read();
  }
  t.allowed -= baseline_[slot].allowed;
  t.denied -= baseline_[slot].denied;
  t.auditDenied -= baseline_[slot].auditDenied;
  return t;
}

std::string PolicyRuntime::policyOfSlot(uint32_t slot) const {
  for (const auto& [key, s] : slots_)
    if (s == slot) return key;
  return "";
}

size_t PolicyRuntime::drain() {
  size_t n = 0;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (WorkerLog& l : logs_) {
    PolicyLogRecord r;
    while (rte_ring_sc_dequeue_elem(l.ring, &r, sizeof(r)) == 0) {
      Entry e{r, "", now};
      const bool policyEvent = r.event != PolicyEvent::kL7Deny && r.event != PolicyEvent::kL7Log;
      if (policyEvent) e.policy = policyOfSlot(r.slot);
      recent_.push_back(std::move(e));
      if (recent_.size() > kRecentMax) recent_.pop_front();
      ++n;
    }
  }
  return n;
}

uint64_t PolicyRuntime::suppressed() const {
  uint64_t s = 0;
  for (const WorkerLog& l : logs_) s += l.suppressed.read();
  return s;
}

}  // namespace nodeplane::policy
