// The service and endpoint readers of the control protocol, written once over a read-only JSON
// view so that the same code reads nlohmann-json values (every op) and simdjson's DOM (the bulk
// of an `apply`, see apply_reader.h). A view V provides:
//   isNull isObject isArray isString isBool isInteger isUnsigned   (type tests)
//   string() -> std::string_view, boolean(), integer() -> int64_t, unsignedValue() -> uint64_t
//   size() (arrays), members(f(std::string_view key, V) -> Status), elements(f(size_t, V) ->
//   Status) dump() -> std::string (the value as JSON, for error texts) json() -> a control::Json
//   (or a reference to one), for the sections read by Json readers
// Each object's members are read in one pass; error texts are made only for errors.
#pragma once

#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "control/model.h"
#include "control/model_json.h"
#include "core/names.h"
#include "core/result.h"
#include "policy/model_json.h"

namespace nodeplane::control::reader {

// The view over nlohmann-json values.
class NlohmannView {
 public:
  explicit NlohmannView(const Json& j) : j_(&j) {}
  bool isNull() const { return j_->is_null(); }
  bool isObject() const { return j_->is_object(); }
  bool isArray() const { return j_->is_array(); }
  bool isString() const { return j_->is_string(); }
  bool isBool() const { return j_->is_boolean(); }
  bool isInteger() const { return j_->is_number_integer(); }
  bool isUnsigned() const { return j_->is_number_unsigned(); }
  std::string_view string() const { return j_->get_ref<const std::string&>(); }
  bool boolean() const { return j_->get<bool>(); }
  int64_t integer() const { return j_->get<int64_t>(); }
  uint64_t unsignedValue() const { return j_->get<uint64_t>(); }
  size_t size() const { return j_->size(); }
  template <class F>
  Status members(F&& f) const {
    for (auto it = j_->begin(); it != j_->end(); ++it)
      if (auto st = f(std::string_view(it.key()), NlohmannView(it.value())); !st) return st;
    return okStatus();
  }
  template <class F>
  Status elements(F&& f) const {
    for (size_t i = 0; i < j_->size(); ++i)
      if (auto st = f(i, NlohmannView((*j_)[i])); !st) return st;
    return okStatus();
  }
  std::string dump() const { return j_->dump(); }
  const Json& json() const { return *j_; }

 private:
  const Json* j_;
};

inline Error fieldError(const std::string& op, std::string_view field, const std::string& why) {
  return invalidArgument(op + ": field '" + std::string(field) + "': " + why);
}

// Takes an object's members into named slots (the last of a repeated name wins); a name not in
// `names` is an error, the first in byte order among several: simdjson gives members in document
// order, nlohmann in key order, and both paths must say the same.
template <class V, size_t N>
Status takeMembers(const std::string& op, const V& object,
                   const std::array<std::string_view, N>& names,
                   std::array<std::optional<V>, N>& slots) {
  std::optional<std::string_view> unknown;
  (void)object.members([&](std::string_view key, const V& value) -> Status {
    for (size_t i = 0; i < N; ++i)
      if (names[i] == key) {
        slots[i] = value;
        return okStatus();
      }
    if (!unknown || key < *unknown) unknown = key;
    return okStatus();
  });
  if (unknown) return invalidArgument(op + ": unknown field '" + std::string(*unknown) + "'");
  return okStatus();
}

template <class V>
Result<std::vector<EndpointSpec>> readEndpoints(const std::string& op, const V& list,
                                                const std::string& field) {
  std::vector<EndpointSpec> out;
  if (!list.isArray()) return invalidArgument(op + ": field '" + field + "': not an array");
  out.reserve(list.size());
  auto st = list.elements([&](size_t i, const V& j) -> Status {
    auto fail = [&](const std::string& sub, const std::string& why) {
      return invalidArgument(op + ": field '" + field + "[" + std::to_string(i) + "]" + sub +
                             "': " + why);
    };
    if (!j.isObject()) return fail("", "not an object");
    // Members into slots first, then checked in this order, whatever order they came in.
    enum : size_t {
      kIp,
      kNodeName,
      kReady,
      kServing,
      kTerminating,
      kPorts,
      kWeight,
      kTargetRef,
      kHostname
    };
    static constexpr std::array<std::string_view, 9> names = {"ip",      "nodeName",    "ready",
                                                              "serving", "terminating", "ports",
                                                              "weight",  "targetRef",   "hostname"};
    std::array<std::optional<V>, 9> f;
    if (auto st = takeMembers(op, j, names, f); !st) return fail("", st.error().message);
    EndpointSpec e;
    auto given = [&](size_t k) { return f[k] && !f[k]->isNull(); };
    if (!given(kIp) || !f[kIp]->isString()) return fail(".ip", "missing or not a string");
    auto ip = Ipv4Address::parse(f[kIp]->string());
    if (!ip) return fail(".ip", "'" + std::string(f[kIp]->string()) + "' is not IPv4");
    e.ip = *ip;
    if (given(kNodeName)) {
      if (!f[kNodeName]->isString()) return fail(".nodeName", "not a string");
      e.nodeName = f[kNodeName]->string();
    }
    if (given(kHostname)) {
      if (!f[kHostname]->isString()) return fail(".hostname", "not a string");
      e.hostname = f[kHostname]->string();
    }
    for (size_t k : {kReady, kServing, kTerminating}) {
      if (!given(k)) continue;
      if (!f[k]->isBool()) return fail("." + std::string(names[k]), "not a boolean");
      (k == kReady ? e.ready : k == kServing ? e.serving : e.terminating) = f[k]->boolean();
    }
    if (given(kPorts)) {
      if (!f[kPorts]->isObject()) return fail(".ports", "not an object of name: port");
      std::optional<std::string> bad;  // the first in byte order, as for unknown fields
      (void)f[kPorts]->members([&](std::string_view name, const V& port) -> Status {
        if (!port.isUnsigned() || port.unsignedValue() == 0 || port.unsignedValue() > 65535) {
          if (!bad || name < *bad) bad = std::string(name);
        } else {
          e.ports[std::string(name)] = static_cast<uint16_t>(port.unsignedValue());
        }
        return okStatus();
      });
      if (bad) return fail(".ports." + *bad, "not a port number");
    }
    if (given(kWeight)) {
      if (!f[kWeight]->isUnsigned() || f[kWeight]->unsignedValue() > 65535)
        return fail(".weight", "not 0-65535");
      e.weight = static_cast<uint32_t>(f[kWeight]->unsignedValue());
    }
    // ready given (null counts: written), serving not: serving follows ready.
    const bool haveReady = f[kReady].has_value(), haveServing = f[kServing].has_value();
    if (haveReady && !haveServing) e.serving = e.ready;
    out.push_back(std::move(e));
    return okStatus();
  });
  if (!st) return st.error();
  return out;
}

template <class V>
Result<ServiceSpec> readService(const std::string& op, const V& args) {
  enum : size_t {
    kNamespace,
    kName,
    kType,
    kClusterIps,
    kClusterIp,
    kExternalIps,
    kLoadBalancerIps,
    kPorts,
    kAffinity,
    kAffinityTimeout,
    kExternalPolicy,
    kInternalPolicy,
    kEndpoints,
    kExternalName,
    kFields
  };
  static constexpr std::array<std::string_view, kFields> names = {"namespace",
                                                                  "name",
                                                                  "type",
                                                                  "clusterIPs",
                                                                  "clusterIP",
                                                                  "externalIPs",
                                                                  "loadBalancerIPs",
                                                                  "ports",
                                                                  "sessionAffinity",
                                                                  "sessionAffinityTimeoutSeconds",
                                                                  "externalTrafficPolicy",
                                                                  "internalTrafficPolicy",
                                                                  "endpoints",
                                                                  "externalName"};
  if (!args.isObject()) return invalidArgument(op + ": a service must be an object");
  std::array<std::optional<V>, kFields> f;
  if (auto st = takeMembers(op, args, names, f); !st) return st.error();
  auto present = [&](size_t i) { return f[i] && !f[i]->isNull(); };
  auto string = [&](size_t i, const char* fallback) -> Result<std::string> {
    if (!f[i]) {
      if (fallback) return std::string(fallback);
      return fieldError(op, names[i], "missing");
    }
    if (fallback && f[i]->isNull()) return std::string(fallback);
    if (!f[i]->isString()) return fieldError(op, names[i], "not a string");
    return std::string(f[i]->string());
  };
  auto addresses = [&](size_t i) -> Result<std::vector<Ipv4Address>> {
    std::vector<Ipv4Address> out;
    if (!present(i)) return out;
    if (!f[i]->isArray()) return fieldError(op, names[i], "not an array");
    auto st = f[i]->elements([&](size_t, const V& v) -> Status {
      auto a = v.isString() ? Ipv4Address::parse(v.string()) : std::nullopt;
      if (!a) return fieldError(op, names[i], v.dump() + " is not an IPv4 address");
      out.push_back(*a);
      return okStatus();
    });
    if (!st) return st.error();
    return out;
  };

  ServiceSpec s;
  auto ns = string(kNamespace, nullptr);
  if (!ns) return ns.error();
  auto name = string(kName, nullptr);
  if (!name) return name.error();
  s.namespaceName = std::move(*ns);
  s.name = std::move(*name);
  auto type = string(kType, "ClusterIP");
  if (!type) return type.error();
  s.type = std::move(*type);
  auto cluster = addresses(kClusterIps);
  if (!cluster) return cluster.error();
  s.clusterIps = std::move(*cluster);
  bool explicitlyHeadless = false;
  if (present(kClusterIp)) {
    auto one = string(kClusterIp, nullptr);
    if (!one) return one.error();
    explicitlyHeadless = *one == "None";
    if (*one != "None") {  // headless: no virtual IP
      auto a = Ipv4Address::parse(*one);
      if (!a) return fieldError(op, "clusterIP", "'" + *one + "' is not an IPv4 address");
      if (std::find(s.clusterIps.begin(), s.clusterIps.end(), *a) == s.clusterIps.end())
        s.clusterIps.push_back(*a);
    }
  }
  auto external = addresses(kExternalIps);
  if (!external) return external.error();
  s.externalIps = std::move(*external);
  auto lbIps = addresses(kLoadBalancerIps);
  if (!lbIps) return lbIps.error();
  s.loadBalancerIps = std::move(*lbIps);

  if (present(kExternalName)) {
    auto target = string(kExternalName, nullptr);
    if (!target) return target.error();
    s.externalName = std::move(*target);
  }
  // Headless and ExternalName services may have no ports (DNS only).
  const bool noPorts =
      !present(kPorts) && s.dnsOnly() && (explicitlyHeadless || s.type == "ExternalName");
  if (!noPorts && (!present(kPorts) || !f[kPorts]->isArray()))
    return fieldError(op, "ports", "missing or not an array");
  auto readPort = [&](size_t i, const V& j) -> Status {
    auto fail = [&](const std::string& sub, const std::string& why) {
      return invalidArgument(op + ": service " + s.namespaceName + "/" + s.name +
                             ": field 'ports[" + std::to_string(i) + "]" + sub + "': " + why);
    };
    if (!j.isObject()) return fail("", "not an object");
    static constexpr std::array<std::string_view, 6> portNames = {
        "name", "protocol", "port", "targetPort", "nodePort", "appProtocol"};
    std::array<std::optional<V>, 6> pf;
    if (auto st = takeMembers(op, j, portNames, pf); !st) return fail("", st.error().message);
    ServicePortSpec p;
    if (pf[0] && !pf[0]->isNull()) {
      if (!pf[0]->isString()) return fail(".name", "not a string");
      p.name = pf[0]->string();
    }
    std::string_view proto = "TCP";
    if (pf[1] && !pf[1]->isNull()) {
      if (!pf[1]->isString()) return fail(".protocol", "not a string");
      proto = pf[1]->string();
    }
    if (proto == "TCP")
      p.protocol = IPPROTO_TCP;
    else if (proto == "UDP")
      p.protocol = IPPROTO_UDP;
    else
      return fail(".protocol", "'" + std::string(proto) + "': only TCP and UDP are supported");
    if (!pf[2] || !pf[2]->isUnsigned() || pf[2]->unsignedValue() == 0 ||
        pf[2]->unsignedValue() > 65535)
      return fail(".port", "missing or not 1-65535");
    p.port = static_cast<uint16_t>(pf[2]->unsignedValue());
    if (pf[3] && !pf[3]->isNull()) {
      const V& t = *pf[3];
      if (t.isString()) {
        // Kubernetes allows a number written as a string ("8080").
        const std::string_view text = t.string();
        const bool number = !text.empty() && std::all_of(text.begin(), text.end(), ::isdigit);
        if (number) {
          const unsigned long v = text.size() <= 5 ? std::stoul(std::string(text)) : 0;
          if (v == 0 || v > 65535) return fail(".targetPort", "not 1-65535");
          p.targetPort = static_cast<uint16_t>(v);
        } else if (!text.empty()) {
          p.targetPortName = text;
        }
      } else if (t.isUnsigned() && t.unsignedValue() >= 1 && t.unsignedValue() <= 65535) {
        p.targetPort = static_cast<uint16_t>(t.unsignedValue());
      } else {
        return fail(".targetPort", "neither a port number nor a port name");
      }
    }
    if (pf[4] && !pf[4]->isNull()) {
      if (!pf[4]->isUnsigned() || pf[4]->unsignedValue() > 65535)
        return fail(".nodePort", "not a port number");
      p.nodePort = static_cast<uint16_t>(pf[4]->unsignedValue());
    }
    s.ports.push_back(std::move(p));
    return okStatus();
  };
  if (!noPorts)
    if (auto ports = f[kPorts]->elements(readPort); !ports) return ports.error();
  auto affinity = string(kAffinity, "None");
  if (!affinity) return affinity.error();
  if (*affinity != "None" && *affinity != "ClientIP")
    return fieldError(op, "sessionAffinity", "'" + *affinity + "' is not None or ClientIP");
  s.affinityClientIp = *affinity == "ClientIP";
  if (present(kAffinityTimeout)) {
    const V& t = *f[kAffinityTimeout];
    if (!t.isInteger()) return fieldError(op, names[kAffinityTimeout], "not an integer");
    const int64_t v = t.integer();
    if (v < 1 || v > 86400)
      return fieldError(op, names[kAffinityTimeout], std::to_string(v) + " outside 1..86400");
    s.affinityTimeoutSeconds = static_cast<uint32_t>(v);
  }
  for (auto [i, out] : {std::pair{size_t{kExternalPolicy}, &s.externalTrafficLocal},
                        std::pair{size_t{kInternalPolicy}, &s.internalTrafficLocal}}) {
    auto v = string(i, "Cluster");
    if (!v) return v.error();
    if (*v != "Cluster" && *v != "Local")
      return fieldError(op, names[i], "'" + *v + "' is not Cluster or Local");
    *out = *v == "Local";
  }
  if (present(kEndpoints)) {
    auto eps = readEndpoints(op, *f[kEndpoints], "endpoints");
    if (!eps) return eps.error();
    s.endpoints = std::move(*eps);
  }
  return s;
}

// apply arguments: {"generation", "nodes": [node.set args], "services": [service.set args],
// "policy": {policy.apply args}}. Every problem of every object is reported, joined by "; ".
template <class V>
Result<DesiredState> readDesiredState(const V& args) {
  std::vector<std::string> problems;
  DesiredState state;
  if (!args.isObject()) return invalidArgument("apply: arguments must be an object");
  static constexpr std::array<std::string_view, 5> names = {"generation", "nodes", "services",
                                                            "policy", "exports"};
  std::array<std::optional<V>, 5> f;
  std::vector<std::string> unknown;
  (void)args.members([&](std::string_view key, const V& value) -> Status {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == key) {
        f[i] = value;
        return okStatus();
      }
    unknown.push_back(std::string(key));
    return okStatus();
  });
  // In byte order, whichever order the members came in, once each (nlohmann keeps only the last
  // of a repeated name; simdjson shows them all): see takeMembers.
  std::sort(unknown.begin(), unknown.end());
  unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
  for (const std::string& key : unknown)
    problems.push_back("apply: field '" + key + "': unknown field");
  if (f[0]) {
    if (!f[0]->isUnsigned())
      problems.push_back("apply: field 'generation': not a non-negative integer");
    else
      state.generation = f[0]->unsignedValue();
  }
  auto list = [&](size_t i) -> const V* {
    if (!f[i] || f[i]->isNull()) return nullptr;
    if (!f[i]->isArray()) {
      problems.push_back("apply: field '" + std::string(names[i]) + "': not a list");
      return nullptr;
    }
    return &*f[i];
  };
  if (const V* nodes = list(1)) {
    state.nodes.emplace();
    (void)nodes->elements([&](size_t i, const V& v) -> Status {
      const auto& j = v.json();
      const std::string who =
          "node " + (j.is_object() && j.contains("name") && j["name"].is_string()
                         ? j["name"].template get<std::string>()
                         : "nodes[" + std::to_string(i) + "]");
      auto n = nodeSpecFromJson(who, j);
      if (!n)
        problems.push_back(n.error().message);
      else
        state.nodes->push_back(std::move(*n));
      return okStatus();
    });
  }
  if (const V* services = list(2)) {
    state.services.emplace();
    state.services->reserve(services->size());
    (void)services->elements([&](size_t, const V& v) -> Status {
      auto sv = readService("apply", v);
      if (!sv)
        problems.push_back(sv.error().message);
      else
        state.services->push_back(std::move(*sv));
      return okStatus();
    });
  }
  if (const V* exports = list(4)) {
    state.exports.emplace();
    (void)exports->elements([&](size_t i, const V& v) -> Status {
      const auto& j = v.json();
      const std::string where = "apply: field 'exports[" + std::to_string(i) + "]'";
      if (!j.is_object() || !j.contains("namespace") || !j["namespace"].is_string() ||
          !j.contains("name") || !j["name"].is_string() || j.size() != 2) {
        problems.push_back(where + ": not an object of namespace and name");
        return okStatus();
      }
      const auto ns = j["namespace"].template get<std::string>();
      const auto name = j["name"].template get<std::string>();
      if (!isDnsLabel(ns) || !isDnsLabel(name))
        problems.push_back(where + ": '" + ns + "/" + name + "' is not a service's name");
      else
        state.exports->push_back(ns + "/" + name);
      return okStatus();
    });
  }
  if (f[3] && !f[3]->isNull()) {
    auto p = policy::policyStateFromJson(f[3]->json());
    if (!p)
      problems.push_back(p.error().message);
    else
      state.policy = std::move(*p);
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
    return invalidArgument(message);
  }
  return state;
}

}  // namespace nodeplane::control::reader
