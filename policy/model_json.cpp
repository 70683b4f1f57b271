#include "policy/model_json.h"

#include <algorithm>
#include <set>

#include "core/names.h"

namespace nodeplane::policy {

namespace {

std::string quoted(const Json& j) {
  if (j.is_string()) return "'" + j.get<std::string>() + "'";
  return j.dump();
}

// The string at `key` of object `j`; `fallback` when absent, null or not a string (the caller's
// validation then names the field). Never throws, unlike Json::value on a wrong type.
std::string stringOr(const Json& j, const char* key, const char* fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// One object being read: its description ("networkpolicy x/name") and where problems go.
struct Reader {
  std::string object;
  Problems& problems;

  void fail(const std::string& field, const std::string& why) const {
    problems.add(object, field, why);
  }
  // Reports fields of `j` outside `known` (a typo must not silently widen a policy).
  void onlyFields(const Json& j, const std::string& field,
                  std::initializer_list<const char*> known) const {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (std::none_of(known.begin(), known.end(), [&](const char* k) { return it.key() == k; }))
        fail(field.empty() ? it.key() : field + "." + it.key(), "unknown field");
    }
  }
  bool isObject(const Json& j, const std::string& field) const {
    if (j.is_object()) return true;
    fail(field, "must be an object, not " + std::string(j.type_name()));
    return false;
  }
  bool isArray(const Json& j, const std::string& field) const {
    if (j.is_array()) return true;
    fail(field, "must be a list, not " + std::string(j.type_name()));
    return false;
  }
  // A list that may also be absent or null (Kubernetes omits empty lists).
  const Json* list(const Json& parent, const char* key, const std::string& field) const {
    auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return nullptr;
    return isArray(*it, field) ? &*it : nullptr;
  }
};

// "a.b.c.d/n"; host bits are cleared (the API server accepts them in ipBlock.cidr).
std::optional<Ipv4Prefix> parseCidr(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto address = Ipv4Address::parse(text.substr(0, slash));
  const std::string len = text.substr(slash + 1);
  if (!address || len.empty() || len.size() > 2 ||
      !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const int n = std::stoi(len);
  if (n > 32) return std::nullopt;
  Ipv4Prefix p{*address, static_cast<uint8_t>(n)};
  p.address.value &= p.mask();
  return p;
}

std::optional<uint8_t> parseProtocol(const std::string& s) {
  if (s == "TCP") return kProtoTcp;
  if (s == "UDP") return kProtoUdp;
  if (s == "SCTP") return kProtoSctp;
  return std::nullopt;
}

Labels labelsFromJson(const Json* j, const Reader& r, const std::string& field) {
  Labels labels;
  if (j == nullptr || j->is_null()) return labels;
  if (!r.isObject(*j, field)) return labels;
  for (auto it = j->begin(); it != j->end(); ++it) {
    const std::string f = field + "." + it.key();
    if (!isLabelKey(it.key())) {
      r.fail(f, "'" + it.key() + "' is not a valid label key");
      continue;
    }
    if (!it->is_string()) {
      r.fail(f, "label values are strings, not " + std::string(it->type_name()));
      continue;
    }
    const std::string v = it->get<std::string>();
    if (!isLabelValue(v)) r.fail(f, "'" + v + "' is not a valid label value");
    labels[it.key()] = v;
  }
  return labels;
}

// metadata.namespace and metadata.name of a namespaced object; `kind` names it in messages.
bool readMetadata(const Json& object, const std::string& kind, std::string* ns, std::string* name,
                  Problems& problems, const Json** metadataOut = nullptr) {
  Reader r{kind + " <unnamed>", problems};
  if (!object.is_object()) {
    r.fail("", "must be an object, not " + std::string(object.type_name()));
    return false;
  }
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) {
    r.fail("metadata", "missing or not an object");
    return false;
  }
  if (metadataOut) *metadataOut = &*md;
  *ns = stringOr(*md, "namespace");
  *name = stringOr(*md, "name");
  r.object = kind + " " + (ns->empty() ? "<no namespace>" : *ns) + "/" +
             (name->empty() ? "<unnamed>" : *name);
  bool ok = true;
  if (!md->contains("namespace") || !(*md)["namespace"].is_string() || !isDnsLabel(*ns)) {
    r.fail("metadata.namespace", md->contains("namespace")
                                     ? quoted((*md)["namespace"]) + " is not a namespace name"
                                     : "missing");
    ok = false;
  }
  if (!md->contains("name") || !(*md)["name"].is_string() || !isDnsSubdomain(*name)) {
    r.fail("metadata.name",
           md->contains("name") ? quoted((*md)["name"]) + " is not a valid name" : "missing");
    ok = false;
  }
  return ok;
}

std::vector<PortMatch> portsFromJson(const Json* list, const Reader& r, const std::string& field,
                                     bool tcpOnly) {
  std::vector<PortMatch> out;
  if (list == nullptr) return out;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& j = (*list)[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (!r.isObject(j, f)) continue;
    r.onlyFields(j, f, {"protocol", "port", "endPort"});
    PortMatch p;
    if (j.contains("protocol") && !j["protocol"].is_null()) {
      auto proto = j["protocol"].is_string() ? parseProtocol(j["protocol"].get<std::string>())
                                             : std::nullopt;
      if (!proto) {
        r.fail(f + ".protocol", quoted(j["protocol"]) + " is not one of TCP, UDP, SCTP");
        continue;
      }
      p.protocol = *proto;
    }
    if (tcpOnly && p.protocol != kProtoTcp) {
      r.fail(f + ".protocol", "L7 rules apply to TCP ports only");
      continue;
    }
    if (j.contains("port") && !j["port"].is_null()) {
      const Json& port = j["port"];
      if (port.is_number_integer()) {
        const int64_t n = port.get<int64_t>();
        if (n < 1 || n > 65535) {
          r.fail(f + ".port", std::to_string(n) + " is not 1-65535");
          continue;
        }
        p.port = static_cast<uint16_t>(n);
      } else if (port.is_string()) {
        const std::string name = port.get<std::string>();
        if (!isPortName(name)) {
          r.fail(f + ".port", "'" + name + "' is neither a port number nor a valid port name");
          continue;
        }
        p.name = name;
      } else {
        r.fail(f + ".port",
               "must be a number or a port name, not " + std::string(port.type_name()));
        continue;
      }
    }
    if (j.contains("endPort") && !j["endPort"].is_null()) {
      const Json& end = j["endPort"];
      if (!end.is_number_integer() || end.get<int64_t>() < 1 || end.get<int64_t>() > 65535) {
        r.fail(f + ".endPort", quoted(end) + " is not 1-65535");
        continue;
      }
      if (tcpOnly) {
        r.fail(f + ".endPort", "L7 rules take single ports, not ranges");
        continue;
      }
      if (p.port == 0) {
        r.fail(f + ".endPort", "needs a numeric 'port'");
        continue;
      }
      if (end.get<int64_t>() < p.port) {
        r.fail(f + ".endPort",
               std::to_string(end.get<int64_t>()) + " is below port " + std::to_string(p.port));
        continue;
      }
      p.endPort = end.get<uint16_t>();
    }
    out.push_back(p);
  }
  return out;
}

std::optional<IpBlock> ipBlockFromJson(const Json& j, const Reader& r, const std::string& f) {
  if (!r.isObject(j, f)) return std::nullopt;
  r.onlyFields(j, f, {"cidr", "except"});
  if (!j.contains("cidr") || !j["cidr"].is_string()) {
    r.fail(f + ".cidr", "missing or not a string");
    return std::nullopt;
  }
  auto cidr = parseCidr(j["cidr"].get<std::string>());
  if (!cidr) {
    r.fail(f + ".cidr", quoted(j["cidr"]) + " is not an IPv4 CIDR");
    return std::nullopt;
  }
  IpBlock block{*cidr, {}};
  bool ok = true;
  if (const Json* except = r.list(j, "except", f + ".except")) {
    for (size_t i = 0; i < except->size(); ++i) {
      const std::string ef = f + ".except[" + std::to_string(i) + "]";
      auto e = (*except)[i].is_string() ? parseCidr((*except)[i].get<std::string>()) : std::nullopt;
      if (!e) {
        r.fail(ef, quoted((*except)[i]) + " is not an IPv4 CIDR");
        ok = false;
      } else if (!(cidr->contains(e->address) && e->length > cidr->length)) {
        r.fail(ef, "'" + e->toString() + "' is not a strict subset of cidr " + cidr->toString());
        ok = false;
      } else {
        block.except.push_back(*e);
      }
    }
  }
  return ok ? std::optional<IpBlock>(block) : std::nullopt;
}

std::vector<PolicyRule> rulesFromJson(const Json* list, const Reader& r, const std::string& field,
                                      const char* peersKey) {
  std::vector<PolicyRule> rules;
  if (list == nullptr) return rules;
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& j = (*list)[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (!r.isObject(j, f)) continue;
    r.onlyFields(j, f, {peersKey, "ports"});
    PolicyRule rule;
    rule.ports = portsFromJson(r.list(j, "ports", f + ".ports"), r, f + ".ports", false);
    if (const Json* peers = r.list(j, peersKey, f + "." + peersKey)) {
      for (size_t k = 0; k < peers->size(); ++k) {
        const Json& pj = (*peers)[k];
        const std::string pf = f + "." + peersKey + "[" + std::to_string(k) + "]";
        if (!r.isObject(pj, pf)) continue;
        r.onlyFields(pj, pf, {"podSelector", "namespaceSelector", "ipBlock"});
        Peer peer;
        auto present = [&](const char* key) { return pj.contains(key) && !pj[key].is_null(); };
        if (present("podSelector"))
          peer.podSelector =
              labelSelectorFromJson(pj["podSelector"], r.object, pf + ".podSelector", r.problems);
        if (present("namespaceSelector"))
          peer.namespaceSelector = labelSelectorFromJson(pj["namespaceSelector"], r.object,
                                                         pf + ".namespaceSelector", r.problems);
        if (present("ipBlock")) {
          if (peer.podSelector || peer.namespaceSelector) {
            r.fail(pf + ".ipBlock", "may not be combined with podSelector or namespaceSelector");
            continue;
          }
          peer.ipBlock = ipBlockFromJson(pj["ipBlock"], r, pf + ".ipBlock");
          if (!peer.ipBlock) continue;
        }
        if (!peer.podSelector && !peer.namespaceSelector && !peer.ipBlock) {
          r.fail(pf, "must specify podSelector, namespaceSelector or ipBlock");
          continue;
        }
        rule.peers.push_back(std::move(peer));
      }
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

bool annotationTrue(const Json* metadata, const char* key) {
  if (metadata == nullptr) return false;
  auto a = metadata->find("annotations");
  if (a == metadata->end() || !a->is_object()) return false;
  auto v = a->find(key);
  return v != a->end() && v->is_string() && v->get<std::string>() == "true";
}

}  // namespace

const char* protocolName(uint8_t protocol) {
  switch (protocol) {
    case kProtoTcp:
      return "TCP";
    case kProtoUdp:
      return "UDP";
    case kProtoSctp:
      return "SCTP";
    case 1:
      return "ICMP";
    default:
      return "IP";
  }
}

const char* l7ActionName(L7Action a) {
  switch (a) {
    case L7Action::kAllow:
      return "allow";
    case L7Action::kDeny:
      return "deny";
    case L7Action::kLog:
      return "log";
  }
  return "?";
}

uint16_t PodIdentity::namedPort(const std::string& portName, uint8_t protocol) const {
  for (const ContainerPort& p : ports)
    if (p.name == portName && p.protocol == protocol) return p.port;
  return 0;
}

void Problems::add(const std::string& object, const std::string& field, const std::string& why) {
  list_.push_back(field.empty() ? object + ": " + why : object + ": field '" + field + "': " + why);
}

Error Problems::toError() const {
  std::string message;
  for (const std::string& p : list_) message += (message.empty() ? "" : "; ") + p;
  return invalidArgument(message);
}

LabelSelector labelSelectorFromJson(const Json& j, const std::string& object,
                                    const std::string& field, Problems& problems) {
  Reader r{object, problems};
  LabelSelector s;
  if (j.is_null()) return s;
  if (!r.isObject(j, field)) return s;
  r.onlyFields(j, field, {"matchLabels", "matchExpressions"});
  auto ml = j.find("matchLabels");
  s.matchLabels = labelsFromJson(ml == j.end() ? nullptr : &*ml, r, field + ".matchLabels");
  if (const Json* exprs = r.list(j, "matchExpressions", field + ".matchExpressions")) {
    for (size_t i = 0; i < exprs->size(); ++i) {
      const Json& e = (*exprs)[i];
      const std::string f = field + ".matchExpressions[" + std::to_string(i) + "]";
      if (!r.isObject(e, f)) continue;
      r.onlyFields(e, f, {"key", "operator", "values"});
      SelectorRequirement req;
      req.key = stringOr(e, "key");
      if (!e.contains("key") || !e["key"].is_string() || !isLabelKey(req.key)) {
        r.fail(f + ".key",
               e.contains("key") ? quoted(e["key"]) + " is not a valid label key" : "missing");
        continue;
      }
      const std::string op = e.contains("operator") && e["operator"].is_string()
                                 ? e["operator"].get<std::string>()
                                 : "";
      if (op == "In")
        req.op = SelectorRequirement::Operator::kIn;
      else if (op == "NotIn")
        req.op = SelectorRequirement::Operator::kNotIn;
      else if (op == "Exists")
        req.op = SelectorRequirement::Operator::kExists;
      else if (op == "DoesNotExist")
        req.op = SelectorRequirement::Operator::kDoesNotExist;
      else {
        r.fail(f + ".operator", (e.contains("operator") ? quoted(e["operator"]) : "missing") +
                                    std::string(" is not one of In, NotIn, Exists, DoesNotExist"));
        continue;
      }
      bool ok = true;
      if (const Json* values = r.list(e, "values", f + ".values")) {
        for (size_t k = 0; k < values->size(); ++k) {
          const Json& v = (*values)[k];
          if (!v.is_string() || !isLabelValue(v.get<std::string>())) {
            r.fail(f + ".values[" + std::to_string(k) + "]",
                   quoted(v) + " is not a valid label value");
            ok = false;
            continue;
          }
          req.values.push_back(v.get<std::string>());
        }
      }
      const bool set = req.op == SelectorRequirement::Operator::kIn ||
                       req.op == SelectorRequirement::Operator::kNotIn;
      if (set && req.values.empty() && ok) {
        r.fail(f + ".values", "must be non-empty for operator " + op);
        continue;
      }
      if (!set && !req.values.empty()) {
        r.fail(f + ".values", "must be empty for operator " + op);
        continue;
      }
      if (ok) s.matchExpressions.push_back(std::move(req));
    }
  }
  return s;
}

NetworkPolicy networkPolicyFromJson(const Json& object, Problems& problems) {
  NetworkPolicy p;
  const Json* metadata = nullptr;
  if (!readMetadata(object, "networkpolicy", &p.namespaceName, &p.name, problems, &metadata))
    return p;
  Reader r{"networkpolicy " + p.key(), problems};
  if (object.contains("kind") && object["kind"] != "NetworkPolicy")
    r.fail("kind", quoted(object["kind"]) + " is not NetworkPolicy");
  p.audit = annotationTrue(metadata, "nodeplane.io/audit");
  auto spec = object.find("spec");
  if (spec == object.end() || !r.isObject(*spec, "spec")) {
    if (spec == object.end()) r.fail("spec", "missing");
    return p;
  }
  r.onlyFields(*spec, "spec", {"podSelector", "policyTypes", "ingress", "egress"});
  if (!spec->contains("podSelector"))
    r.fail("spec.podSelector", "missing (use {} to select every pod of the namespace)");
  else
    p.podSelector =
        labelSelectorFromJson((*spec)["podSelector"], r.object, "spec.podSelector", problems);
  const Json* ingress = r.list(*spec, "ingress", "spec.ingress");
  const Json* egress = r.list(*spec, "egress", "spec.egress");
  p.ingressRules = rulesFromJson(ingress, r, "spec.ingress", "from");
  p.egressRules = rulesFromJson(egress, r, "spec.egress", "to");
  if (const Json* types = r.list(*spec, "policyTypes", "spec.policyTypes");
      types != nullptr && !types->empty()) {
    p.ingress = p.egress = false;
    for (size_t i = 0; i < types->size(); ++i) {
      const Json& t = (*types)[i];
      if (t == "Ingress")
        p.ingress = true;
      else if (t == "Egress")
        p.egress = true;
      else
        r.fail("spec.policyTypes[" + std::to_string(i) + "]",
               quoted(t) + " is not one of Ingress, Egress");
    }
  } else {
    // As the API server defaults it: Ingress always, Egress when there are egress rules.
    p.ingress = true;
    p.egress = egress != nullptr && !egress->empty();
  }
  return p;
}

L7Rule l7RuleFromJson(const Json& object, Problems& problems) {
  L7Rule rule;
  if (!readMetadata(object, "l7rule", &rule.namespaceName, &rule.name, problems)) return rule;
  Reader r{"l7rule " + rule.key(), problems};
  if (object.contains("kind") && object["kind"] != "L7Rule")
    r.fail("kind", quoted(object["kind"]) + " is not L7Rule");
  if (object.contains("apiVersion") && object["apiVersion"] != "nodeplane.io/v1")
    r.fail("apiVersion", quoted(object["apiVersion"]) + " is not nodeplane.io/v1");
  auto spec = object.find("spec");
  if (spec == object.end() || !r.isObject(*spec, "spec")) {
    if (spec == object.end()) r.fail("spec", "missing");
    return rule;
  }
  r.onlyFields(*spec, "spec", {"podSelector", "ports", "rules"});
  if (!spec->contains("podSelector"))
    r.fail("spec.podSelector", "missing (use {} to select every pod of the namespace)");
  else
    rule.podSelector =
        labelSelectorFromJson((*spec)["podSelector"], r.object, "spec.podSelector", problems);
  rule.ports = portsFromJson(r.list(*spec, "ports", "spec.ports"), r, "spec.ports", true);
  const Json* rules = r.list(*spec, "rules", "spec.rules");
  if (rules == nullptr || rules->empty()) r.fail("spec.rules", "missing or empty");
  if (rules == nullptr) return rule;
  for (size_t i = 0; i < rules->size(); ++i) {
    const Json& j = (*rules)[i];
    const std::string f = "spec.rules[" + std::to_string(i) + "]";
    if (!r.isObject(j, f)) continue;
    r.onlyFields(j, f, {"action", "http", "pattern"});
    L7Match m;
    const Json action = j.value("action", Json());
    if (action == "allow")
      m.action = L7Action::kAllow;
    else if (action == "deny")
      m.action = L7Action::kDeny;
    else if (action == "log")
      m.action = L7Action::kLog;
    else {
      r.fail(f + ".action", (action.is_null() ? std::string("missing") : quoted(action)) +
                                " is not one of allow, deny, log");
      continue;
    }
    const bool hasHttp = j.contains("http"), hasPattern = j.contains("pattern");
    if (hasHttp == hasPattern) {
      r.fail(f, "needs exactly one of 'http' and 'pattern'");
      continue;
    }
    if (hasPattern) {
      if (!j["pattern"].is_string() || j["pattern"].get<std::string>().empty()) {
        r.fail(f + ".pattern", "must be a non-empty string");
        continue;
      }
      if (m.action == L7Action::kAllow) {
        r.fail(f + ".action", "'allow' needs an 'http' match (a request is what is allowed)");
        continue;
      }
      m.pattern = j["pattern"].get<std::string>();
    } else {
      const Json& h = j["http"];
      if (!r.isObject(h, f + ".http")) continue;
      r.onlyFields(h, f + ".http", {"method", "path", "host"});
      m.http = true;
      bool ok = true;
      for (const char* key : {"method", "path", "host"}) {
        if (!h.contains(key)) continue;
        if (!h[key].is_string() || h[key].get<std::string>().empty()) {
          r.fail(f + ".http." + key, "must be a non-empty string");
          ok = false;
        }
      }
      if (!ok) continue;
      m.method = h.value("method", "");
      m.path = h.value("path", "");
      m.host = h.value("host", "");
      if (!m.method.empty() && !std::all_of(m.method.begin(), m.method.end(),
                                            [](char c) { return c >= 'A' && c <= 'Z'; })) {
        r.fail(f + ".http.method", "'" + m.method + "' is not an HTTP method (upper-case letters)");
        continue;
      }
      if (m.method.empty() && m.path.empty() && m.host.empty()) {
        r.fail(f + ".http", "needs at least one of method, path, host");
        continue;
      }
    }
    rule.rules.push_back(std::move(m));
  }
  return rule;
}

PodIdentity podIdentityFromJson(const Json& object, Problems& problems) {
  PodIdentity pod;
  Reader r{"pod <unnamed>", problems};
  if (!r.isObject(object, "")) return pod;
  pod.namespaceName = stringOr(object, "namespace");
  pod.name = stringOr(object, "name");
  r.object = "pod " + pod.key();
  r.onlyFields(object, "", {"namespace", "name", "ip", "labels", "ports", "node"});
  if (!isDnsLabel(pod.namespaceName)) r.fail("namespace", "missing or not a namespace name");
  if (!isDnsSubdomain(pod.name)) r.fail("name", "missing or not a valid name");
  auto ip = object.contains("ip") && object["ip"].is_string()
                ? Ipv4Address::parse(object["ip"].get<std::string>())
                : std::nullopt;
  if (!ip)
    r.fail("ip",
           object.contains("ip") ? quoted(object["ip"]) + " is not an IPv4 address" : "missing");
  else
    pod.ip = *ip;
  auto labels = object.find("labels");
  pod.labels = labelsFromJson(labels == object.end() ? nullptr : &*labels, r, "labels");
  if (const Json* ports = r.list(object, "ports", "ports")) {
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& j = (*ports)[i];
      const std::string f = "ports[" + std::to_string(i) + "]";
      if (!r.isObject(j, f)) continue;
      r.onlyFields(j, f, {"name", "containerPort", "protocol", "hostPort", "hostIP"});
      ContainerPort p;
      p.name = stringOr(j, "name");
      if (j.contains("name") && !j["name"].is_null() && !j["name"].is_string()) {
        r.fail(f + ".name", quoted(j["name"]) + " is not a port name");
        continue;
      }
      if (!p.name.empty() && !isPortName(p.name)) {
        r.fail(f + ".name", "'" + p.name + "' is not a valid port name");
        continue;
      }
      if (!j.contains("containerPort") || !j["containerPort"].is_number_integer() ||
          j["containerPort"].get<int64_t>() < 1 || j["containerPort"].get<int64_t>() > 65535) {
        r.fail(f + ".containerPort", "missing or not 1-65535");
        continue;
      }
      p.port = j["containerPort"].get<uint16_t>();
      const bool protocolGiven = j.contains("protocol") && !j["protocol"].is_null();
      auto proto = protocolGiven && !j["protocol"].is_string()
                       ? std::nullopt
                       : parseProtocol(stringOr(j, "protocol", "TCP"));
      if (!proto) {
        r.fail(f + ".protocol", quoted(j["protocol"]) + " is not one of TCP, UDP, SCTP");
        continue;
      }
      p.protocol = *proto;
      pod.ports.push_back(p);
    }
  }
  return pod;
}

NamespaceIdentity namespaceFromJson(const Json& object, Problems& problems) {
  NamespaceIdentity ns;
  Reader r{"namespace <unnamed>", problems};
  if (!r.isObject(object, "")) return ns;
  // Either {"name", "labels"} or a v1 Namespace object (metadata.name, metadata.labels).
  const Json& md = object.contains("metadata") ? object["metadata"] : object;
  if (!md.is_object()) {
    r.fail("metadata", "must be an object");
    return ns;
  }
  ns.name = stringOr(md, "name");
  r.object = "namespace " + ns.name;
  if (!isDnsLabel(ns.name)) r.fail("name", "missing or not a namespace name");
  auto labels = md.find("labels");
  ns.labels = labelsFromJson(labels == md.end() ? nullptr : &*labels, r, "labels");
  ns.labels.try_emplace("kubernetes.io/metadata.name", ns.name);
  return ns;
}

Result<PolicyState> policyStateFromJson(const Json& args) {
  Problems problems;
  PolicyState state;
  Reader r{"policy.apply", problems};
  if (!args.is_object()) return invalidArgument("policy.apply: arguments must be an object");
  r.onlyFields(args, "", {"namespaces", "pods", "networkPolicies", "l7Rules", "audit"});
  if (args.contains("audit")) {
    if (!args["audit"].is_boolean())
      r.fail("audit", "must be true or false");
    else
      state.audit = args["audit"].get<bool>();
  }
  std::set<std::string> seen;
  if (const Json* list = r.list(args, "namespaces", "namespaces"))
    for (const Json& j : *list) {
      NamespaceIdentity ns = namespaceFromJson(j, problems);
      if (!seen.insert("ns/" + ns.name).second)
        problems.add("namespace " + ns.name + ": listed twice");
      state.namespaces.push_back(std::move(ns));
    }
  std::set<uint32_t> ips;
  if (const Json* list = r.list(args, "pods", "pods"))
    for (const Json& j : *list) {
      PodIdentity pod = podIdentityFromJson(j, problems);
      if (!seen.insert("pod/" + pod.key()).second)
        problems.add("pod " + pod.key() + ": listed twice");
      else if (pod.ip.value != 0 && !ips.insert(pod.ip.value).second)
        problems.add("pod " + pod.key(), "ip", "'" + pod.ip.toString() + "' is another pod's too");
      state.pods.push_back(std::move(pod));
    }
  if (const Json* list = r.list(args, "networkPolicies", "networkPolicies"))
    for (const Json& j : *list) {
      NetworkPolicy p = networkPolicyFromJson(j, problems);
      if (!seen.insert("np/" + p.key()).second)
        problems.add("networkpolicy " + p.key() + ": listed twice");
      state.policies.push_back(std::move(p));
    }
  if (const Json* list = r.list(args, "l7Rules", "l7Rules"))
    for (const Json& j : *list) {
      L7Rule rule = l7RuleFromJson(j, problems);
      if (!seen.insert("l7/" + rule.key()).second)
        problems.add("l7rule " + rule.key() + ": listed twice");
      state.l7Rules.push_back(std::move(rule));
    }
  if (!problems.empty()) return problems.toError();
  return state;
}

Json labelSelectorToJson(const LabelSelector& s) {
  Json j = Json::object();
  if (!s.matchLabels.empty()) j["matchLabels"] = s.matchLabels;
  for (const SelectorRequirement& e : s.matchExpressions) {
    static const char* kOps[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    Json x = {{"key", e.key}, {"operator", kOps[static_cast<int>(e.op)]}};
    if (!e.values.empty()) x["values"] = e.values;
    j["matchExpressions"].push_back(x);
  }
  return j;
}

namespace {

Json rulesToJson(const std::vector<PolicyRule>& rules, const char* peersKey) {
  Json out = Json::array();
  for (const PolicyRule& rule : rules) {
    Json r = Json::object();
    for (const Peer& p : rule.peers) {
      Json pj = Json::object();
      if (p.podSelector) pj["podSelector"] = labelSelectorToJson(*p.podSelector);
      if (p.namespaceSelector) pj["namespaceSelector"] = labelSelectorToJson(*p.namespaceSelector);
      if (p.ipBlock) {
        pj["ipBlock"]["cidr"] = p.ipBlock->cidr.toString();
        for (const Ipv4Prefix& e : p.ipBlock->except)
          pj["ipBlock"]["except"].push_back(e.toString());
      }
      r[peersKey].push_back(pj);
    }
    for (const PortMatch& p : rule.ports) {
      Json pj = {{"protocol", protocolName(p.protocol)}};
      if (!p.name.empty())
        pj["port"] = p.name;
      else if (p.port)
        pj["port"] = p.port;
      if (p.endPort) pj["endPort"] = p.endPort;
      r["ports"].push_back(pj);
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace

Json networkPolicyToJson(const NetworkPolicy& p) {
  Json spec = {{"podSelector", labelSelectorToJson(p.podSelector)}};
  Json types = Json::array();
  if (p.ingress) types.push_back("Ingress");
  if (p.egress) types.push_back("Egress");
  spec["policyTypes"] = types;
  if (!p.ingressRules.empty()) spec["ingress"] = rulesToJson(p.ingressRules, "from");
  if (!p.egressRules.empty()) spec["egress"] = rulesToJson(p.egressRules, "to");
  return spec;
}

}  // namespace nodeplane::policy
