// The policy part of a data plane snapshot: the classifier of this node's NetworkPolicies, the
// L7 database, and how their results map to counter slots. Built on the control thread from a
// PolicyState; immutable once published, except the L7 database's per-worker stream pools, which
// only their worker touches. Reclaimed with the snapshot (QSBR).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "policy/classifier.h"
#include "policy/compiler.h"
#include "policy/l7.h"
#include "policy/model.h"
#include "policy/runtime.h"

namespace nodeplane::policy {

// A flow's verdict as cached in its connection entry: generation << 8 | bits. An entry whose
// generation differs from the current table's is evaluated again on its next packet.
inline constexpr uint8_t kVerdictDenyEgress = 0x01;
inline constexpr uint8_t kVerdictDenyIngress = 0x02;
inline constexpr uint8_t kVerdictL7 = 0x04;  // the client side is scanned by L7 rules
inline constexpr uint8_t kVerdictDeny = kVerdictDenyEgress | kVerdictDenyIngress;
inline constexpr uint32_t kGenerationMask = 0xffffff;
inline constexpr uint32_t verdictWord(uint32_t generation, uint8_t bits) {
  return (generation & kGenerationMask) << 8 | bits;
}
inline constexpr uint32_t verdictGeneration(uint32_t word) {
  return word >> 8;
}
inline constexpr uint8_t verdictBits(uint32_t word) {
  return static_cast<uint8_t>(word);
}

struct PolicyTableOptions {
  unsigned workers = 1;
  uint32_t l7FlowsPerWorker = 4096;
  int socketId = 0;
};

class PolicyTable {
 public:
  // Compiles `state` for the pods of `localPods`. Errors (an L7 pattern Hyperscan refuses, the
  // policy slots exhausted) name the object and field; nothing is built then.
  static Result<std::shared_ptr<PolicyTable>> build(std::shared_ptr<const PolicyState> state,
                                                    const Ipv4Prefix& localPods,
                                                    uint32_t generation,
                                                    std::shared_ptr<PolicyRuntime> runtime,
                                                    const PolicyTableOptions& options);

  uint32_t generation() const { return generation_; }  // 24 bits, never 0
  // Nothing isolates any pod of this node and no L7 rule applies: every flow is allowed.
  bool permissive() const { return classifier_->empty() && l7_ == nullptr; }
  const Classifier& classifier() const { return *classifier_; }
  L7Database* l7() const { return l7_.get(); }
  uint32_t counterSlot(uint32_t policyIndex) const { return slots_[policyIndex]; }
  PolicyRuntime& runtime() const { return *runtime_; }
  const PolicyState& state() const { return *state_; }
  const CompiledPolicies& compiled() const { return compiled_; }
  const Ipv4Prefix& localPods() const { return localPods_; }

 private:
  PolicyTable() = default;
  uint32_t generation_ = 0;
  std::shared_ptr<const PolicyState> state_;
  Ipv4Prefix localPods_;
  CompiledPolicies compiled_;
  std::unique_ptr<Classifier> classifier_;
  std::shared_ptr<L7Database> l7_;
  std::vector<uint32_t> slots_;
  std::shared_ptr<PolicyRuntime> runtime_;
};

}  // namespace nodeplane::policy
