// Kubernetes labels and label selectors (metav1.LabelSelector): matching, and the name/value
// rules the API server validates, so that what it would refuse we refuse too.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace nodeplane::policy {

using Labels = std::map<std::string, std::string>;

struct SelectorRequirement {
  enum class Operator { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Operator op = Operator::kExists;
  std::vector<std::string> values;
  bool operator==(const SelectorRequirement&) const = default;
};

// matchLabels AND every matchExpressions requirement. An empty selector selects everything.
struct LabelSelector {
  Labels matchLabels;
  std::vector<SelectorRequirement> matchExpressions;

  bool matches(const Labels& labels) const;
  bool empty() const { return matchLabels.empty() && matchExpressions.empty(); }
  std::string toString() const;  // as kubectl shows it: "app=web,tier in (a,b)"
  bool operator==(const LabelSelector&) const = default;
};

// A label key: an optional DNS-subdomain prefix and '/', then a name of up to 63 characters,
// alphanumeric at both ends, '-', '_' and '.' inside.
bool isLabelKey(std::string_view key);
// A label value: empty, or a name as above.
bool isLabelValue(std::string_view value);
// An IANA service name (a named port): up to 15 lower-case alphanumerics and '-', at least one
// letter, no leading, trailing or double '-'.
bool isPortName(std::string_view name);

}  // namespace nodeplane::policy
