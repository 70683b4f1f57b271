#include "policy/labels.h"

#include <algorithm>

#include "core/names.h"

namespace nodeplane::policy {

namespace {

bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool isLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63.
bool isQualifiedNamePart(std::string_view s) {
  if (s.empty() || s.size() > 63 || !isAlnum(s.front()) || !isAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return isAlnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool contains(const std::vector<std::string>& values, const std::string& v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

}  // namespace

bool isLabelKey(std::string_view key) {
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return isQualifiedNamePart(key);
  return isDnsSubdomain(key.substr(0, slash)) && isQualifiedNamePart(key.substr(slash + 1));
}

bool isLabelValue(std::string_view value) {
  return value.empty() || isQualifiedNamePart(value);
}

bool isPortName(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  if (s.find("--") != std::string_view::npos) return false;
  bool letter = false;
  for (char c : s) {
    if (!isLowerAlnum(c) && c != '-') return false;
    letter |= c >= 'a' && c <= 'z';
  }
  return letter;
}

bool LabelSelector::matches(const Labels& labels) const {
  for (const auto& [k, v] : matchLabels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const SelectorRequirement& r : matchExpressions) {
    auto it = labels.find(r.key);
    const bool has = it != labels.end();
    switch (r.op) {
      case SelectorRequirement::Operator::kIn:
        if (!has || !contains(r.values, it->second)) return false;
        break;
      case SelectorRequirement::Operator::kNotIn:
        if (has && contains(r.values, it->second)) return false;
        break;
      case SelectorRequirement::Operator::kExists:
        if (!has) return false;
        break;
      case SelectorRequirement::Operator::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

std::string LabelSelector::toString() const {
  std::string out;
  auto sep = [&] {
    if (!out.empty()) out += ",";
  };
  for (const auto& [k, v] : matchLabels) {
    sep();
    out += k + "=" + v;
  }
  for (const SelectorRequirement& r : matchExpressions) {
    sep();
    std::string values;
    for (const std::string& v : r.values) values += (values.empty() ? "" : ",") + v;
    switch (r.op) {
      case SelectorRequirement::Operator::kIn:
        out += r.key + " in (" + values + ")";
        break;
      case SelectorRequirement::Operator::kNotIn:
        out += r.key + " notin (" + values + ")";
        break;
      case SelectorRequirement::Operator::kExists:
        out += r.key;
        break;
      case SelectorRequirement::Operator::kDoesNotExist:
        out += "!" + r.key;
        break;
    }
  }
  return out.empty() ? "<all>" : out;
}

}  // namespace nodeplane::policy
