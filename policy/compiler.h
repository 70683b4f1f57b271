// Compiles NetworkPolicies into classifier rules for one node: selectors are resolved to the pod
// addresses they pick now, ipBlocks with except to plain prefixes, named ports to numbers per pod.
// Only pods of this node are ever isolated here (egress is enforced on the source's node, ingress
// on the destination's), so rules exist only for them.
//
// Four categories, evaluated in one classifier lookup:
//   0 egress, effective   1 ingress, effective   (enforced policies: the verdict that drops)
//   2 egress, audit       3 ingress, audit       (every policy: what audit mode reports)
// Per category the best match decides: an allow rule (priority 2) of a policy that selects the
// pod, else the pod's isolation rule (priority 1, deny), else nothing (the pod is not isolated).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ipv4.h"
#include "policy/model.h"

namespace nodeplane::policy {

inline constexpr unsigned kCategories = 4;
inline constexpr uint32_t kCatEgress = 1u << 0, kCatIngress = 1u << 1;
inline constexpr uint32_t kCatEgressAudit = 1u << 2, kCatIngressAudit = 1u << 3;
inline constexpr int32_t kPriorityAllow = 2, kPriorityIsolate = 1;

// Rule results (rte_acl userdata, never 0): the policy's index in PolicyState::policies + 1, and
// the allow bit.
inline constexpr uint32_t kResultAllow = 0x80000000u;
inline constexpr uint32_t resultPolicy(uint32_t result) {
  return (result & ~kResultAllow) - 1;
}

struct AclRule {
  uint32_t categories = 0;
  int32_t priority = 0;
  uint32_t result = 0;
  uint8_t protocol = 0;
  bool anyProtocol = true;
  Ipv4Prefix src;
  Ipv4Prefix dst;
  uint16_t dportLow = 0;
  uint16_t dportHigh = 0xffff;
  auto operator<=>(const AclRule&) const = default;
};

struct PolicySummary {
  std::string key;  // namespace/name
  bool ingress = false, egress = false, audit = false;
  uint32_t localPods = 0;  // pods of this node it selects
  uint32_t rules = 0;      // classifier rules it produced
};

struct CompiledPolicies {
  std::vector<AclRule> rules;
  std::vector<PolicySummary> policies;               // by policy index
  uint32_t isolatedIngress = 0, isolatedEgress = 0;  // local pods isolated (effective)
};

// CIDR minus the excepted prefixes, as the fewest prefixes.
std::vector<Ipv4Prefix> subtractPrefixes(const Ipv4Prefix& cidr,
                                         const std::vector<Ipv4Prefix>& except);

CompiledPolicies compilePolicies(const PolicyState& state, const Ipv4Prefix& localPods);

}  // namespace nodeplane::policy
