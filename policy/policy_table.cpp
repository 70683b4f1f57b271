#include "policy/policy_table.h"

namespace nodeplane::policy {

Result<std::shared_ptr<PolicyTable>> PolicyTable::build(std::shared_ptr<const PolicyState> state,
                                                        const Ipv4Prefix& localPods,
                                                        uint32_t generation,
                                                        std::shared_ptr<PolicyRuntime> runtime,
                                                        const PolicyTableOptions& options) {
  std::shared_ptr<PolicyTable> t(new PolicyTable());
  t->generation_ = generation & kGenerationMask;
  if (t->generation_ == 0) t->generation_ = 1;
  t->state_ = std::move(state);
  t->localPods_ = localPods;
  t->runtime_ = std::move(runtime);
  auto l7 = L7Database::build(*t->state_, localPods, options.workers, options.l7FlowsPerWorker);
  if (!l7) return l7.error();
  t->l7_ = std::move(*l7);
  if (t->l7_ != nullptr) t->runtime_->prepareL7();
  t->compiled_ = compilePolicies(*t->state_, localPods);
  for (const PolicySummary& p : t->compiled_.policies) {
    auto slot = t->runtime_->slotFor(p.key);
    if (!slot) return slot.error();
    t->slots_.push_back(*slot);
  }
  auto classifier = Classifier::build(t->compiled_.rules, options.socketId);
  if (!classifier) return classifier.error();
  t->classifier_ = std::move(*classifier);
  return t;
}

}  // namespace nodeplane::policy
