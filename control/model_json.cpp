#include "control/model_json.h"

#include "policy/model_json.h"

#include <netinet/in.h>

#include <algorithm>

namespace nodeplane::control {

Json podAttachmentToJson(const PodAttachment& s) {
  Json j = {{"namespace", s.namespaceName}, {"name", s.name},        {"containerId", s.containerId},
            {"interface", s.interface},     {"ip", s.ip.toString()}, {"mac", s.mac.toString()}};
  if (!s.hostInterface.empty()) j["hostInterface"] = s.hostInterface;
  if (!s.devargs.empty()) j["devargs"] = s.devargs;
  if (!s.netns.empty()) j["netns"] = s.netns;
  return j;
}

Result<PodAttachment> podAttachmentFromJson(const std::string& op, const Json& args) {
  ArgReader r(op, args);
  if (auto st = r.onlyFields({"namespace", "name", "containerId", "interface", "hostInterface",
                              "devargs", "netns", "ip", "mac"});
      !st)
    return st.error();
  PodAttachment s;
  struct Field {
    const char* name;
    std::string* out;
    std::optional<std::string> fallback;  // nullopt: required
  } fields[] = {{"namespace", &s.namespaceName, std::nullopt},
                {"name", &s.name, std::nullopt},
                {"containerId", &s.containerId, std::nullopt},
                {"interface", &s.interface, "eth0"},
                {"hostInterface", &s.hostInterface, ""},
                {"devargs", &s.devargs, ""},
                {"netns", &s.netns, ""}};
  for (const Field& f : fields) {
    auto v = f.fallback ? r.optionalString(f.name, *f.fallback) : r.string(f.name);
    if (!v) return v.error();
    *f.out = std::move(*v);
  }
  auto ipText = r.string("ip");
  if (!ipText) return ipText.error();
  auto ip = Ipv4Address::parse(*ipText);
  if (!ip) return r.error("ip", "'" + *ipText + "' is not an IPv4 address");
  s.ip = *ip;
  auto macText = r.string("mac");
  if (!macText) return macText.error();
  auto mac = MacAddress::parse(*macText);
  if (!mac) return r.error("mac", "'" + *macText + "' is not a MAC address");
  s.mac = *mac;
  return s;
}

namespace {

Result<std::vector<Ipv4Address>> addressList(const ArgReader& r, const Json& args,
                                             const char* field) {
  std::vector<Ipv4Address> out;
  if (!r.has(field)) return out;
  if (!args[field].is_array()) return r.error(field, "not an array");
  for (const Json& v : args[field]) {
    auto a = v.is_string() ? Ipv4Address::parse(v.get<std::string>()) : std::nullopt;
    if (!a) return r.error(field, v.dump() + " is not an IPv4 address");
    out.push_back(*a);
  }
  return out;
}

Json addresses(const std::vector<Ipv4Address>& list) {
  Json out = Json::array();
  for (const auto& a : list) out.push_back(a.toString());
  return out;
}

}  // namespace

Json endpointToJson(const EndpointSpec& e) {
  Json ports = Json::object();
  for (const auto& [name, port] : e.ports) ports[name] = port;
  return {{"ip", e.ip.toString()}, {"nodeName", e.nodeName}, {"ready", e.ready},
          {"serving", e.serving},  {"terminating", e.terminating}, {"ports", ports},
          {"weight", e.weight}};
}

Json serviceSpecToJson(const ServiceSpec& s) {
  Json ports = Json::array();
  for (const auto& p : s.ports) {
    Json j = {{"name", p.name},
              {"protocol", p.protocol == IPPROTO_UDP ? "UDP" : "TCP"},
              {"port", p.port}};
    if (!p.targetPortName.empty()) j["targetPort"] = p.targetPortName;
    else j["targetPort"] = p.targetPort != 0 ? p.targetPort : p.port;
    if (p.nodePort != 0) j["nodePort"] = p.nodePort;
    ports.push_back(j);
  }
  Json endpoints = Json::array();
  for (const auto& e : s.endpoints) endpoints.push_back(endpointToJson(e));
  return {{"namespace", s.namespaceName},
          {"name", s.name},
          {"type", s.type},
          {"clusterIPs", addresses(s.clusterIps)},
          {"externalIPs", addresses(s.externalIps)},
          {"loadBalancerIPs", addresses(s.loadBalancerIps)},
          {"ports", ports},
          {"sessionAffinity", s.affinityClientIp ? "ClientIP" : "None"},
          {"sessionAffinityTimeoutSeconds", s.affinityTimeoutSeconds},
          {"externalTrafficPolicy", s.externalTrafficLocal ? "Local" : "Cluster"},
          {"internalTrafficPolicy", s.internalTrafficLocal ? "Local" : "Cluster"},
          {"endpoints", endpoints}};
}

Result<std::vector<EndpointSpec>> endpointsFromJson(const std::string& op, const Json& list,
                                                   const std::string& field) {
  // The bulk of a desired state (100,000 endpoints is a large cluster): each endpoint's fields
  // are read in one pass over its members, and error texts are made only for errors.
  std::vector<EndpointSpec> out;
  if (!list.is_array()) return invalidArgument(op + ": field '" + field + "': not an array");
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& j = list[i];
    auto fail = [&](const std::string& sub, const std::string& why) {
      return invalidArgument(op + ": field '" + field + "[" + std::to_string(i) + "]" + sub +
                             "': " + why);
    };
    if (!j.is_object()) return fail("", "not an object");
    EndpointSpec e;
    bool haveIp = false, haveServing = false, haveReady = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      const Json& v = it.value();
      if (key == "targetRef") continue;  // informational (which pod)
      if (v.is_null()) {
        if (key == "ip") return fail(".ip", "missing or not a string");
        haveReady |= key == "ready";  // as written, for the serving default below
        haveServing |= key == "serving";
        continue;  // otherwise absent
      }
      if (key == "ip") {
        if (!v.is_string()) return fail(".ip", "missing or not a string");
        const std::string& text = v.get_ref<const std::string&>();
        auto ip = Ipv4Address::parse(text);
        if (!ip) return fail(".ip", "'" + text + "' is not IPv4");
        e.ip = *ip;
        haveIp = true;
      } else if (key == "nodeName") {
        if (!v.is_string()) return fail(".nodeName", "not a string");
        e.nodeName = v.get_ref<const std::string&>();
      } else if (key == "ready" || key == "serving" || key == "terminating") {
        if (!v.is_boolean()) return fail("." + key, "not a boolean");
        const bool b = v.get<bool>();
        if (key == "ready") e.ready = b, haveReady = true;
        else if (key == "serving") e.serving = b, haveServing = true;
        else e.terminating = b;
      } else if (key == "ports") {
        if (!v.is_object()) return fail(".ports", "not an object of name: port");
        for (auto p = v.begin(); p != v.end(); ++p) {
          const Json& port = p.value();
          if (!port.is_number_unsigned() || port.get<uint64_t>() == 0 || port.get<uint64_t>() > 65535)
            return fail(".ports." + p.key(), "not a port number");
          e.ports[p.key()] = port.get<uint16_t>();
        }
      } else if (key == "weight") {
        if (!v.is_number_unsigned() || v.get<uint64_t>() > 65535) return fail(".weight", "not 0-65535");
        e.weight = v.get<uint32_t>();
      } else {
        return fail("", op + ": unknown field '" + key + "'");
      }
    }
    if (!haveIp) return fail(".ip", "missing or not a string");
    if (haveReady && !haveServing) e.serving = e.ready;
    out.push_back(std::move(e));
  }
  return out;
}

Result<ServiceSpec> serviceSpecFromJson(const std::string& op, const Json& args) {
  ArgReader r(op, args);
  if (auto st = r.onlyFields({"namespace", "name", "type", "clusterIPs", "clusterIP",
                              "externalIPs", "loadBalancerIPs", "ports", "sessionAffinity",
                              "sessionAffinityTimeoutSeconds", "externalTrafficPolicy",
                              "internalTrafficPolicy", "endpoints"});
      !st)
    return st.error();
  ServiceSpec s;
  auto ns = r.string("namespace");
  if (!ns) return ns.error();
  auto name = r.string("name");
  if (!name) return name.error();
  s.namespaceName = *ns;
  s.name = *name;
  auto type = r.optionalString("type", "ClusterIP");
  if (!type) return type.error();
  s.type = *type;
  auto cluster = addressList(r, args, "clusterIPs");
  if (!cluster) return cluster.error();
  s.clusterIps = *cluster;
  if (r.has("clusterIP")) {
    auto one = r.string("clusterIP");
    if (!one) return one.error();
    if (*one != "None") {  // headless: no virtual IP
      auto a = Ipv4Address::parse(*one);
      if (!a) return r.error("clusterIP", "'" + *one + "' is not an IPv4 address");
      if (std::find(s.clusterIps.begin(), s.clusterIps.end(), *a) == s.clusterIps.end())
        s.clusterIps.push_back(*a);
    }
  }
  auto external = addressList(r, args, "externalIPs");
  if (!external) return external.error();
  s.externalIps = *external;
  auto lbIps = addressList(r, args, "loadBalancerIPs");
  if (!lbIps) return lbIps.error();
  s.loadBalancerIps = *lbIps;

  if (!r.has("ports") || !args["ports"].is_array()) return r.error("ports", "missing or not an array");
  for (size_t i = 0; i < args["ports"].size(); ++i) {
    const Json& j = args["ports"][i];
    const std::string f = "ports[" + std::to_string(i) + "]";
    auto fail = [&](const std::string& sub, const std::string& why) {
      return invalidArgument(op + ": service " + s.namespaceName + "/" + s.name + ": field '" + f +
                             sub + "': " + why);
    };
    if (!j.is_object()) return fail("", "not an object");
    ServicePortSpec p;
    p.name = j.value("name", "");
    const std::string proto = j.value("protocol", "TCP");
    if (proto == "TCP") p.protocol = IPPROTO_TCP;
    else if (proto == "UDP") p.protocol = IPPROTO_UDP;
    else return fail(".protocol", "'" + proto + "': only TCP and UDP are supported");
    if (!j.contains("port") || !j["port"].is_number_unsigned() || j["port"].get<uint32_t>() == 0 ||
        j["port"].get<uint32_t>() > 65535)
      return fail(".port", "missing or not 1-65535");
    p.port = j["port"].get<uint16_t>();
    if (j.contains("targetPort")) {
      const Json& t = j["targetPort"];
      if (t.is_string()) {
        // Kubernetes allows a number written as a string ("8080").
        const std::string text = t.get<std::string>();
        if (!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)) {
          const unsigned long v = std::stoul(text);
          if (v == 0 || v > 65535) return fail(".targetPort", "not 1-65535");
          p.targetPort = static_cast<uint16_t>(v);
        } else if (!text.empty()) {
          p.targetPortName = text;
        }
      } else if (t.is_number_unsigned() && t.get<uint32_t>() >= 1 && t.get<uint32_t>() <= 65535) {
        p.targetPort = t.get<uint16_t>();
      } else {
        return fail(".targetPort", "neither a port number nor a port name");
      }
    }
    if (j.contains("nodePort") && !j["nodePort"].is_null()) {
      if (!j["nodePort"].is_number_unsigned() || j["nodePort"].get<uint32_t>() > 65535)
        return fail(".nodePort", "not a port number");
      p.nodePort = j["nodePort"].get<uint16_t>();
    }
    s.ports.push_back(p);
  }
  auto affinity = r.optionalString("sessionAffinity", "None");
  if (!affinity) return affinity.error();
  if (*affinity != "None" && *affinity != "ClientIP")
    return r.error("sessionAffinity", "'" + *affinity + "' is not None or ClientIP");
  s.affinityClientIp = *affinity == "ClientIP";
  if (r.has("sessionAffinityTimeoutSeconds")) {
    auto t = r.integer("sessionAffinityTimeoutSeconds", 1, 86400);
    if (!t) return t.error();
    s.affinityTimeoutSeconds = static_cast<uint32_t>(*t);
  }
  for (auto [field, out] : {std::pair{"externalTrafficPolicy", &s.externalTrafficLocal},
                            std::pair{"internalTrafficPolicy", &s.internalTrafficLocal}}) {
    auto v = r.optionalString(field, "Cluster");
    if (!v) return v.error();
    if (*v != "Cluster" && *v != "Local")
      return r.error(field, "'" + *v + "' is not Cluster or Local");
    *out = *v == "Local";
  }
  if (r.has("endpoints")) {
    auto eps = endpointsFromJson(op, args["endpoints"], "endpoints");
    if (!eps) return eps.error();
    s.endpoints = std::move(*eps);
  }
  return s;
}

Json nodeSpecToJson(const NodeSpec& n) {
  Json cidrs = Json::array();
  for (const Ipv4Prefix& c : n.podCidrs) cidrs.push_back(c.toString());
  Json j = {{"name", n.name}, {"ip", n.ip.toString()}, {"podCidrs", cidrs}};
  if (n.vtepMac) j["vtepMac"] = n.vtepMac->toString();
  return j;
}

Result<NodeSpec> nodeSpecFromJson(const std::string& op, const Json& args) {
  ArgReader r(op, args);
  if (auto st = r.onlyFields({"name", "ip", "podCidrs", "podCidr", "vtepMac"}); !st)
    return st.error();
  NodeSpec n;
  auto name = r.string("name");
  if (!name) return name.error();
  n.name = *name;
  auto ipText = r.string("ip");
  if (!ipText) return ipText.error();
  auto ip = Ipv4Address::parse(*ipText);
  if (!ip) return r.error("ip", "'" + *ipText + "' is not an IPv4 address");
  n.ip = *ip;
  std::vector<std::string> cidrs;
  if (r.has("podCidrs")) {
    if (!args["podCidrs"].is_array()) return r.error("podCidrs", "not an array");
    for (const Json& c : args["podCidrs"]) {
      if (!c.is_string()) return r.error("podCidrs", "has a member that is not a string");
      cidrs.push_back(c.get<std::string>());
    }
  } else if (r.has("podCidr")) {
    auto c = r.string("podCidr");
    if (!c) return c.error();
    cidrs.push_back(*c);
  }
  for (const std::string& c : cidrs) {
    auto prefix = Ipv4Prefix::parse(c);
    if (!prefix) return r.error("podCidrs", "'" + c + "' is not an IPv4 CIDR with host bits zero");
    n.podCidrs.push_back(*prefix);
  }
  if (r.has("vtepMac")) {
    auto text = r.string("vtepMac");
    if (!text) return text.error();
    auto mac = MacAddress::parse(*text);
    if (!mac) return r.error("vtepMac", "'" + *text + "' is not a MAC address");
    n.vtepMac = *mac;
  }
  return n;
}

Result<DesiredState> desiredStateFromJson(const Json& args) {
  std::vector<std::string> problems;
  DesiredState state;
  if (!args.is_object()) return invalidArgument("apply: arguments must be an object");
  for (auto it = args.begin(); it != args.end(); ++it)
    if (it.key() != "generation" && it.key() != "nodes" && it.key() != "services" &&
        it.key() != "policy")
      problems.push_back("apply: field '" + it.key() + "': unknown field");
  if (args.contains("generation")) {
    if (!args["generation"].is_number_unsigned()) problems.push_back("apply: field 'generation': not a non-negative integer");
    else state.generation = args["generation"].get<uint64_t>();
  }
  auto list = [&](const char* key) -> const Json* {
    if (!args.contains(key) || args[key].is_null()) return nullptr;
    if (!args[key].is_array()) {
      problems.push_back(std::string("apply: field '") + key + "': not a list");
      return nullptr;
    }
    return &args[key];
  };
  if (const Json* nodes = list("nodes")) {
    state.nodes.emplace();
    for (size_t i = 0; i < nodes->size(); ++i) {
      const Json& j = (*nodes)[i];
      const std::string who = "node " + (j.is_object() && j.contains("name") && j["name"].is_string()
                                             ? j["name"].get<std::string>()
                                             : "nodes[" + std::to_string(i) + "]");
      auto n = nodeSpecFromJson(who, j);
      if (!n) problems.push_back(n.error().message);
      else state.nodes->push_back(std::move(*n));
    }
  }
  if (const Json* services = list("services")) {
    state.services.emplace();
    for (const Json& j : *services) {
      auto sv = serviceSpecFromJson("apply", j);
      if (!sv) problems.push_back(sv.error().message);
      else state.services->push_back(std::move(*sv));
    }
  }
  if (args.contains("policy") && !args["policy"].is_null()) {
    auto p = policy::policyStateFromJson(args["policy"]);
    if (!p) problems.push_back(p.error().message);
    else state.policy = std::move(*p);
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
    return invalidArgument(message);
  }
  return state;
}

}  // namespace nodeplane::control
