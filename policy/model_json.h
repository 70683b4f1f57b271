// Reads the policy model from JSON: NetworkPolicy objects exactly as the Kubernetes API serves
// them (networking.k8s.io/v1), our L7Rule kind, and the namespace and pod identities the agent
// derives. Validates as the API server would; every problem is reported as
//   "<kind> <namespace>/<name>: field '<path>': <why>"
// and parsing goes on, so one apply reports all of them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/result.h"
#include "policy/model.h"

namespace nodeplane::policy {

using Json = nlohmann::json;

// Collects validation problems (a failed apply reports every one).
class Problems {
 public:
  void add(const std::string& object, const std::string& field, const std::string& why);
  void add(std::string message) { list_.push_back(std::move(message)); }
  bool empty() const { return list_.empty(); }
  const std::vector<std::string>& list() const { return list_; }
  Error toError() const;  // kInvalidArgument, the problems joined by "; "

 private:
  std::vector<std::string> list_;
};

// policy.apply arguments: {"namespaces": [...], "pods": [...], "networkPolicies": [...],
// "l7Rules": [...], "audit": bool}. Any problem: the error lists them all.
Result<PolicyState> policyStateFromJson(const Json& args);

// One object each; problems are added to `problems` (the result is only meaningful without).
NetworkPolicy networkPolicyFromJson(const Json& object, Problems& problems);
L7Rule l7RuleFromJson(const Json& object, Problems& problems);
PodIdentity podIdentityFromJson(const Json& object, Problems& problems);
NamespaceIdentity namespaceFromJson(const Json& object, Problems& problems);
LabelSelector labelSelectorFromJson(const Json& j, const std::string& object,
                                    const std::string& field, Problems& problems);

Json labelSelectorToJson(const LabelSelector& s);
Json networkPolicyToJson(const NetworkPolicy& p);  // the spec as Kubernetes writes it

}  // namespace nodeplane::policy
