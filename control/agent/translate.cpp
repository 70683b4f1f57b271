#include "control/agent/translate.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <regex>

#include "core/json.h"
#include "policy/labels.h"
#include "policy/model_json.h"

namespace nodeplane::agent {

namespace {

std::string typeName(const Json& j) {
  return j.type_name();
}

// Reads one object, collecting problems under its name.
class Reader {
 public:
  Reader(std::string what, std::vector<std::string>& problems)
      : what_(std::move(what)), problems_(problems) {}
  void fail(const std::string& field, const std::string& why) {
    problems_.push_back(what_ + ": field '" + field + "': " + why);
    ok_ = false;
  }
  bool ok() const { return ok_; }
  const std::string& what() const { return what_; }

  // The value at a dotted path, or null when absent.
  static const Json& at(const Json& o, const std::string& path) { return json::path(o, path); }
  const Json* object(const Json& o, const std::string& path, bool required) {
    const Json& v = at(o, path);
    if (v.is_null()) {
      if (required) fail(path, "missing");
      return nullptr;
    }
    if (!v.is_object()) {
      fail(path, "must be an object, not " + typeName(v));
      return nullptr;
    }
    return &v;
  }
  const Json* list(const Json& o, const std::string& path, bool required) {
    const Json& v = at(o, path);
    if (v.is_null()) {
      if (required) fail(path, "missing");
      return nullptr;
    }
    if (!v.is_array()) {
      fail(path, "must be a list, not " + typeName(v));
      return nullptr;
    }
    return &v;
  }
  std::optional<std::string> string(const Json& o, const std::string& path, bool required) {
    const Json& v = at(o, path);
    if (v.is_null()) {
      if (required) fail(path, "missing");
      return std::nullopt;
    }
    if (!v.is_string()) {
      fail(path, "must be a string, not " + typeName(v));
      return std::nullopt;
    }
    return v.get<std::string>();
  }
  Json labels(const Json& o, const std::string& path) {
    Json out = Json::object();
    const Json* l = object(o, path, false);
    if (l == nullptr) return out;
    for (auto it = l->begin(); it != l->end(); ++it) {
      if (!it->is_string()) {
        fail(path + "." + it.key(), "label values are strings, not " + typeName(*it));
        continue;
      }
      out[it.key()] = *it;
    }
    return out;
  }

 private:
  std::string what_;
  std::vector<std::string>& problems_;
  bool ok_ = true;
};

bool isIpv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool isIpv4Cidr(const std::string& s) {
  const size_t slash = s.find('/');
  return slash != std::string::npos && isIpv4(s.substr(0, slash));
}

std::string nameOf(const Json& o) {
  const Json& md = Reader::at(o, "metadata");
  const std::string ns = json::string(md, "namespace");
  const std::string name = json::string(md, "name", "<unnamed>");
  return ns.empty() ? name : ns + "/" + name;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

Json translateNode(const Json& o, std::vector<std::string>& problems) {
  Reader r("node " + nameOf(o), problems);
  auto name = r.string(o, "metadata.name", true);
  std::string ip;
  if (const Json* addrs = r.list(o, "status.addresses", true)) {
    for (const Json& a : *addrs)
      if (a.is_object() && json::string(a, "type") == "InternalIP" && a.contains("address") &&
          a["address"].is_string() && isIpv4(a["address"].get<std::string>())) {
        ip = a["address"].get<std::string>();
        break;
      }
    if (ip.empty()) r.fail("status.addresses", "no IPv4 InternalIP");
  }
  Json cidrs = Json::array();
  if (const Json* list = r.list(o, "spec.podCIDRs", false)) {
    for (const Json& c : *list)
      if (c.is_string() && isIpv4Cidr(c.get<std::string>())) cidrs.push_back(c);
  } else if (auto one = r.string(o, "spec.podCIDR", false); one && isIpv4Cidr(*one)) {
    cidrs.push_back(*one);
  }
  if (cidrs.empty() && r.ok()) r.fail("spec.podCIDRs", "no IPv4 pod CIDR assigned yet");
  if (!r.ok() || !name) return nullptr;
  Json n = {{"name", *name}, {"ip", ip}, {"podCidrs", cidrs}};
  const Json& ann = Reader::at(o, "metadata.annotations");
  if (ann.is_object() && ann.contains("nodeplane.io/vtep-mac") &&
      ann["nodeplane.io/vtep-mac"].is_string())
    n["vtepMac"] = ann["nodeplane.io/vtep-mac"];
  return n;
}

struct PodInfo {
  const Json* object;
  std::string ns, name, ip, node;
  Json labels;
  bool ready = true;
  bool terminating = false;
};

// A pod as an identity and an endpoint, or nothing: host-network and finished pods, and pods
// without an IPv4 address yet (named in *withoutAddress).
std::optional<PodInfo> readPod(const Json& o, std::vector<std::string>& problems,
                               std::set<std::string>* withoutAddress) {
  Reader r("pod " + nameOf(o), problems);
  PodInfo p;
  p.object = &o;
  auto ns = r.string(o, "metadata.namespace", true);
  auto name = r.string(o, "metadata.name", true);
  p.labels = r.labels(o, "metadata.labels");
  if (Reader::at(o, "spec.hostNetwork") == true) return std::nullopt;  // the node's own address
  const std::string phase = Reader::at(o, "status.phase").is_string()
                                ? Reader::at(o, "status.phase").get<std::string>()
                                : "";
  if (phase == "Succeeded" || phase == "Failed") return std::nullopt;
  auto ip = r.string(o, "status.podIP", false);
  if (!r.ok() || !ns || !name) return std::nullopt;
  if (!ip || !isIpv4(*ip)) {
    // podIPs may list an IPv4 address after an IPv6 one (dual stack).
    const Json& ips = Reader::at(o, "status.podIPs");
    if (ips.is_array())
      for (const Json& e : ips)
        if (e.is_object() && e.contains("ip") && e["ip"].is_string() &&
            isIpv4(e["ip"].get<std::string>()))
          ip = e["ip"].get<std::string>();
  }
  if (!ip || !isIpv4(*ip)) {  // not scheduled or not started yet
    withoutAddress->insert(*ns + "/" + *name);
    return std::nullopt;
  }
  p.ns = *ns;
  p.name = *name;
  p.ip = *ip;
  p.node = Reader::at(o, "spec.nodeName").is_string()
               ? Reader::at(o, "spec.nodeName").get<std::string>()
               : "";
  const Json& conditions = Reader::at(o, "status.conditions");
  if (conditions.is_array())
    for (const Json& c : conditions)
      if (c.is_object() && json::string(c, "type") == "Ready")
        p.ready = json::string(c, "status") == "True";
  p.terminating = !Reader::at(o, "metadata.deletionTimestamp").is_null();
  return p;
}

Json podPorts(const Json& pod) {
  Json ports = Json::array();
  const Json& containers = Reader::at(pod, "spec.containers");
  if (!containers.is_array()) return ports;
  for (const Json& c : containers) {
    if (!c.is_object() || !c.contains("ports") || !c["ports"].is_array()) continue;
    for (const Json& p : c["ports"]) {
      if (!p.is_object() || !p.contains("containerPort") || !p["containerPort"].is_number_integer())
        continue;
      // Name and protocol as given (the policy reader names a wrong type); TCP by default.
      const Json& protocol = json::field(p, "protocol");
      Json cp = {{"containerPort", p["containerPort"]},
                 {"protocol", protocol.is_null() ? Json("TCP") : protocol}};
      if (!json::field(p, "name").is_null()) cp["name"] = p["name"];
      ports.push_back(cp);
    }
  }
  return ports;
}

uint16_t namedContainerPort(const Json& pod, const std::string& name, const std::string& proto) {
  for (const Json& p : podPorts(pod))
    if (json::string(p, "name") == name && json::string(p, "protocol") == proto)
      return p["containerPort"].get<uint16_t>();
  return 0;
}

// Endpoints of a Service from its EndpointSlices.
bool endpointsFromSlices(const ClusterState& state, const std::string& ns, const std::string& svc,
                         Json& out, std::vector<std::string>& problems) {
  bool any = false;
  std::set<std::string> seen;
  for (const Json* slice : state.list("EndpointSlice")) {
    const Json& md = Reader::at(*slice, "metadata");
    if (!md.is_object() || json::string(md, "namespace") != ns) continue;
    const Json& owner = Reader::at(*slice, "metadata.labels");
    if (!owner.is_object() || json::string(owner, "kubernetes.io/service-name") != svc) continue;
    any = true;
    if (const Json& type = json::field(*slice, "addressType"); !type.is_null() && type != "IPv4")
      continue;
    Reader r("endpointslice " + nameOf(*slice), problems);
    std::map<std::string, uint16_t> ports;
    if (const Json* list = r.list(*slice, "ports", false))
      for (const Json& p : *list)
        if (p.is_object() && p.contains("port") && p["port"].is_number_integer())
          ports[json::string(p, "name")] = p["port"].get<uint16_t>();
    const Json* eps = r.list(*slice, "endpoints", false);
    if (eps == nullptr) continue;
    for (size_t i = 0; i < eps->size(); ++i) {
      const Json& e = (*eps)[i];
      const std::string f = "endpoints[" + std::to_string(i) + "]";
      if (!e.is_object()) {
        r.fail(f, "must be an object");
        continue;
      }
      const Json& addrs = e.contains("addresses") ? e["addresses"] : Json();
      if (!addrs.is_array() || addrs.empty() || !addrs[0].is_string() ||
          !isIpv4(addrs[0].get<std::string>())) {
        r.fail(f + ".addresses", "missing or not an IPv4 address list");
        continue;
      }
      const std::string ip = addrs[0].get<std::string>();
      if (!seen.insert(ip).second) continue;  // the same endpoint in two slices
      const Json cond = json::field(e, "conditions");
      auto flag = [&](const char* k, bool fallback) {
        return cond.is_object() && cond.contains(k) && cond[k].is_boolean() ? cond[k].get<bool>()
                                                                            : fallback;
      };
      const bool ready = flag("ready", true);
      Json ep = {{"ip", ip},
                 {"ready", ready},
                 {"serving", flag("serving", ready)},
                 {"terminating", flag("terminating", false)},
                 {"ports", ports}};
      if (e.contains("nodeName") && e["nodeName"].is_string()) ep["nodeName"] = e["nodeName"];
      if (e.contains("hostname") && e["hostname"].is_string()) ep["hostname"] = e["hostname"];
      out.push_back(ep);
    }
  }
  return any;
}

// Endpoints of a Service from its v1 Endpoints object.
bool endpointsFromEndpoints(const ClusterState& state, const std::string& ns,
                            const std::string& svc, Json& out) {
  const Json* eps = state.find("Endpoints", ns, svc);
  if (eps == nullptr) return false;
  const Json& subsets = Reader::at(*eps, "subsets");
  if (!subsets.is_array()) return true;
  for (const Json& s : subsets) {
    if (!s.is_object()) continue;
    std::map<std::string, uint16_t> ports;
    if (s.contains("ports") && s["ports"].is_array())
      for (const Json& p : s["ports"])
        if (p.is_object() && p.contains("port") && p["port"].is_number_integer())
          ports[json::string(p, "name")] = p["port"].get<uint16_t>();
    for (const char* key : {"addresses", "notReadyAddresses"}) {
      if (!s.contains(key) || !s[key].is_array()) continue;
      for (const Json& a : s[key]) {
        if (!a.is_object() || !a.contains("ip") || !a["ip"].is_string() ||
            !isIpv4(a["ip"].get<std::string>()))
          continue;
        const bool ready = std::string(key) == "addresses";
        Json ep = {{"ip", a["ip"]},
                   {"ready", ready},
                   {"serving", ready},
                   {"terminating", false},
                   {"ports", ports}};
        if (a.contains("nodeName") && a["nodeName"].is_string()) ep["nodeName"] = a["nodeName"];
        if (a.contains("hostname") && a["hostname"].is_string()) ep["hostname"] = a["hostname"];
        out.push_back(ep);
      }
    }
  }
  return true;
}

bool selects(const Json& selector, const Json& labels) {
  for (auto it = selector.begin(); it != selector.end(); ++it)
    if (!labels.contains(it.key()) || labels[it.key()] != *it) return false;
  return true;
}

Json translateService(const ClusterState& state, const Json& o, const std::vector<PodInfo>& pods,
                      std::vector<std::string>& problems, size_t* endpoints) {
  Reader r("service " + nameOf(o), problems);
  auto ns = r.string(o, "metadata.namespace", true);
  auto name = r.string(o, "metadata.name", true);
  const Json* spec = r.object(o, "spec", true);
  if (!r.ok() || spec == nullptr) return nullptr;
  const std::string type = json::string(*spec, "type", "ClusterIP");
  if (type == "ExternalName") {  // DNS only: a CNAME to its externalName
    auto target = r.string(o, "spec.externalName", true);
    if (!r.ok() || !target) return nullptr;
    return Json{{"namespace", *ns}, {"name", *name}, {"type", type}, {"externalName", *target}};
  }
  Json clusterIps = Json::array();
  if (const Json* ips = r.list(o, "spec.clusterIPs", false)) {
    for (const Json& ip : *ips)
      if (ip.is_string() && isIpv4(ip.get<std::string>())) clusterIps.push_back(ip);
  } else if (auto ip = r.string(o, "spec.clusterIP", false); ip && isIpv4(*ip)) {
    clusterIps.push_back(*ip);
  }
  Json externalIps = Json::array(), lbIps = Json::array();
  if (const Json* ips = r.list(o, "spec.externalIPs", false))
    for (const Json& ip : *ips)
      if (ip.is_string() && isIpv4(ip.get<std::string>())) externalIps.push_back(ip);
  if (const Json* ingress = r.list(o, "status.loadBalancer.ingress", false))
    for (const Json& i : *ingress)
      if (i.is_object() && i.contains("ip") && i["ip"].is_string() &&
          isIpv4(i["ip"].get<std::string>()))
        lbIps.push_back(i["ip"]);
  // Headless (clusterIP None): no virtual address; DNS gives the ready endpoints' addresses.
  const bool headless = clusterIps.empty() && externalIps.empty() && lbIps.empty();

  Json ports = Json::array();
  const Json* list = r.list(o, "spec.ports", !headless);
  if (list != nullptr) {
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& p = (*list)[i];
      const std::string f = "spec.ports[" + std::to_string(i) + "]";
      if (!p.is_object()) {
        r.fail(f, "must be an object, not " + typeName(p));
        continue;
      }
      if (const Json& given = json::field(p, "protocol"); !given.is_null() && !given.is_string()) {
        r.fail(f + ".protocol", "must be TCP or UDP, not " + typeName(given));
        continue;
      }
      const std::string proto = json::string(p, "protocol", "TCP");
      if (proto == "SCTP") {
        r.fail(f + ".protocol", "SCTP services are not supported (the port is left out)");
        continue;
      }
      if (!p.contains("port") || !p["port"].is_number_integer()) {
        r.fail(f + ".port",
               p.contains("port") ? "must be a number, not " + typeName(p["port"]) : "missing");
        continue;
      }
      Json port = {{"protocol", proto}, {"port", p["port"]}};
      if (p.contains("name") && p["name"].is_string()) port["name"] = p["name"];
      if (p.contains("targetPort")) {
        if (p["targetPort"].is_number_integer() || p["targetPort"].is_string())
          port["targetPort"] = p["targetPort"];
        else {
          r.fail(f + ".targetPort", "must be a number or a name, not " + typeName(p["targetPort"]));
          continue;
        }
      }
      if (p.contains("nodePort") && !p["nodePort"].is_null()) {
        if (!p["nodePort"].is_number_integer()) {
          r.fail(f + ".nodePort", "must be a number, not " + typeName(p["nodePort"]));
          continue;
        }
        if (type != "ClusterIP") port["nodePort"] = p["nodePort"];
      }
      ports.push_back(port);
    }
  }
  if (ports.empty() && !headless) {
    if (r.ok()) r.fail("spec.ports", "no usable port");
    return nullptr;
  }
  Json s = {{"namespace", *ns},
            {"name", *name},
            {"type", type},
            {"clusterIPs", clusterIps},
            {"externalIPs", externalIps},
            {"loadBalancerIPs", lbIps},
            {"ports", ports}};
  if (auto a = r.string(o, "spec.sessionAffinity", false)) s["sessionAffinity"] = *a;
  const Json& timeout = Reader::at(o, "spec.sessionAffinityConfig.clientIP.timeoutSeconds");
  if (timeout.is_number_integer()) s["sessionAffinityTimeoutSeconds"] = timeout;
  if (auto p = r.string(o, "spec.externalTrafficPolicy", false)) s["externalTrafficPolicy"] = *p;
  if (auto p = r.string(o, "spec.internalTrafficPolicy", false)) s["internalTrafficPolicy"] = *p;

  Json eps = Json::array();
  if (!endpointsFromSlices(state, *ns, *name, eps, problems) &&
      !endpointsFromEndpoints(state, *ns, *name, eps)) {
    // No endpoint object at all (manifests without a controller): the selector's pods.
    const Json& selector = Reader::at(o, "spec.selector");
    if (selector.is_object() && !selector.empty())
      for (const PodInfo& pod : pods) {
        if (pod.ns != *ns || !selects(selector, pod.labels)) continue;
        Json named = Json::object();
        for (const Json& p : ports) {
          const std::string pname = json::string(p, "name");
          const Json target = p.contains("targetPort") ? p["targetPort"] : p["port"];
          if (target.is_number_integer())
            named[pname] = target;
          else if (uint16_t n =
                       namedContainerPort(*pod.object, target.get<std::string>(), p["protocol"]))
            named[pname] = n;
        }
        Json ep = {{"ip", pod.ip},
                   {"nodeName", pod.node},
                   {"ready", pod.ready && !pod.terminating},
                   {"serving", pod.ready},
                   {"terminating", pod.terminating},
                   {"ports", named}};
        // hostname.subdomain: as the EndpointSlice controller names a headless service's pods.
        const Json& hostname = Reader::at(*pod.object, "spec.hostname");
        if (headless && hostname.is_string() &&
            Reader::at(*pod.object, "spec.subdomain") == Json(*name))
          ep["hostname"] = hostname;
        eps.push_back(std::move(ep));
      }
  }
  *endpoints += eps.size();
  s["endpoints"] = eps;
  return s;
}

}  // namespace

Translation translate(const ClusterState& state, const std::set<std::string>& excluded) {
  Translation t;
  auto skip = [&](const std::string& kind, const Json& o) {
    return excluded.count(lower(kind) + " " + nameOf(o)) > 0;
  };
  Json nodes = Json::array();
  for (const Json* o : state.list("Node")) {
    if (skip("node", *o)) continue;
    Json n = translateNode(*o, t.problems);
    if (!n.is_null()) nodes.push_back(std::move(n));
  }
  std::vector<PodInfo> pods;
  for (const Json* o : state.list("Pod")) {
    if (skip("pod", *o)) continue;
    if (auto p = readPod(*o, t.problems, &t.podsWithoutAddress)) pods.push_back(std::move(*p));
  }
  Json services = Json::array();
  for (const Json* o : state.list("Service")) {
    if (skip("service", *o)) continue;
    Json s = translateService(state, *o, pods, t.problems, &t.endpoints);
    if (!s.is_null()) services.push_back(std::move(s));
  }

  // Policy: identities, then the policies themselves (checked as the daemon will read them).
  Json namespaces = Json::array();
  for (const Json* o : state.list("Namespace")) {
    if (skip("namespace", *o)) continue;
    Reader r("namespace " + nameOf(*o), t.problems);
    auto name = r.string(*o, "metadata.name", true);
    Json labels = r.labels(*o, "metadata.labels");
    if (r.ok() && name) namespaces.push_back({{"name", *name}, {"labels", labels}});
  }
  Json identities = Json::array();
  std::set<std::string> ips;
  for (const PodInfo& p : pods) {
    if (!ips.insert(p.ip).second) continue;  // an address reused while the old pod terminates
    Json identity = {{"namespace", p.ns},
                     {"name", p.name},
                     {"ip", p.ip},
                     {"labels", p.labels},
                     {"ports", podPorts(*p.object)},
                     {"node", p.node}};
    // Checked as the daemon will read it: a pod it would refuse is left out here, named.
    policy::Problems problems;
    (void)policy::podIdentityFromJson(identity, problems);
    for (const std::string& problem : problems.list()) t.problems.push_back(problem);
    if (problems.empty()) identities.push_back(std::move(identity));
  }
  Json policies = Json::array(), l7 = Json::array();
  for (const Json* o : state.list("NetworkPolicy")) {
    if (skip("networkpolicy", *o)) continue;
    policy::Problems problems;
    (void)policy::networkPolicyFromJson(*o, problems);
    for (const std::string& p : problems.list()) t.problems.push_back(p);
    if (problems.empty())
      policies.push_back({{"apiVersion", "networking.k8s.io/v1"},
                          {"kind", "NetworkPolicy"},
                          {"metadata", Reader::at(*o, "metadata")},
                          {"spec", Reader::at(*o, "spec")}});
  }
  for (const Json* o : state.list("L7Rule")) {
    if (skip("l7rule", *o)) continue;
    policy::Problems problems;
    (void)policy::l7RuleFromJson(*o, problems);
    for (const std::string& p : problems.list()) t.problems.push_back(p);
    if (problems.empty())
      l7.push_back({{"apiVersion", "nodeplane.io/v1"},
                    {"kind", "L7Rule"},
                    {"metadata",
                     {{"namespace", Reader::at(*o, "metadata.namespace")},
                      {"name", Reader::at(*o, "metadata.name")}}},
                    {"spec", Reader::at(*o, "spec")}});
  }
  // Only what the daemon reads of a policy's metadata: names and our annotation.
  for (Json& p : policies) {
    Json md = {{"namespace", json::string(p["metadata"], "namespace")},
               {"name", json::string(p["metadata"], "name")}};
    const Json ann = json::field(p["metadata"], "annotations");
    if (ann.is_object() && ann.contains("nodeplane.io/audit"))
      md["annotations"] = {{"nodeplane.io/audit", ann["nodeplane.io/audit"]}};
    p["metadata"] = md;
  }
  // Multi-Cluster Services: the services this cluster exports (ServiceExport's name is the
  // service's).
  Json exports = Json::array();
  for (const Json* o : state.list("ServiceExport")) {
    if (skip("serviceexport", *o)) continue;
    Reader r("serviceexport " + nameOf(*o), t.problems);
    auto ns = r.string(*o, "metadata.namespace", true);
    auto name = r.string(*o, "metadata.name", true);
    if (r.ok() && ns && name) exports.push_back({{"namespace", *ns}, {"name", *name}});
  }
  t.nodes = nodes.size();
  t.services = services.size();
  t.exports = exports.size();
  t.pods = identities.size();
  t.policies = policies.size();
  t.l7Rules = l7.size();
  t.args = {{"nodes", nodes},
            {"services", services},
            {"exports", exports},
            {"policy",
             {{"namespaces", namespaces},
              {"pods", identities},
              {"networkPolicies", policies},
              {"l7Rules", l7}}}};
  return t;
}

std::set<std::string> objectsNamedIn(const std::string& message) {
  // Each problem starts with the object it is about ("apply: " may lead the first one).
  std::set<std::string> out;
  static const std::regex re(
      R"(^(?:apply: )?(node|service|pod|namespace|networkpolicy|l7rule|serviceexport) ([a-z0-9][-a-z0-9.]*(/[a-z0-9][-a-z0-9.]*)?)[: ])");
  size_t start = 0;
  while (start < message.size()) {
    size_t end = message.find("; ", start);
    if (end == std::string::npos) end = message.size();
    const std::string part = message.substr(start, end - start);
    std::smatch m;
    if (std::regex_search(part, m, re)) out.insert(m[1].str() + " " + m[2].str());
    start = end + 2;
  }
  return out;
}

}  // namespace nodeplane::agent
