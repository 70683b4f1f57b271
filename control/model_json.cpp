#include "control/model_json.h"

#include "control/model_json_reader.h"
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

Json addresses(const std::vector<Ipv4Address>& list) {
  Json out = Json::array();
  for (const auto& a : list) out.push_back(a.toString());
  return out;
}

}  // namespace

Json endpointToJson(const EndpointSpec& e) {
  Json ports = Json::object();
  for (const auto& [name, port] : e.ports) ports[name] = port;
  return {{"ip", e.ip.toString()}, {"nodeName", e.nodeName},       {"ready", e.ready},
          {"serving", e.serving},  {"terminating", e.terminating}, {"ports", ports},
          {"weight", e.weight},    {"hostname", e.hostname}};
}

Json serviceSpecToJson(const ServiceSpec& s) {
  Json ports = Json::array();
  for (const auto& p : s.ports) {
    Json j = {{"name", p.name},
              {"protocol", p.protocol == IPPROTO_UDP ? "UDP" : "TCP"},
              {"port", p.port}};
    if (!p.targetPortName.empty())
      j["targetPort"] = p.targetPortName;
    else
      j["targetPort"] = p.targetPort != 0 ? p.targetPort : p.port;
    if (p.nodePort != 0) j["nodePort"] = p.nodePort;
    ports.push_back(j);
  }
  Json endpoints = Json::array();
  for (const auto& e : s.endpoints) endpoints.push_back(endpointToJson(e));
  return {{"namespace", s.namespaceName},
          {"name", s.name},
          {"type", s.type},
          {"externalName", s.externalName},
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
  return reader::readEndpoints(op, reader::NlohmannView(list), field);
}

Result<ServiceSpec> serviceSpecFromJson(const std::string& op, const Json& args) {
  return reader::readService(op, reader::NlohmannView(args));
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
  return reader::readDesiredState(reader::NlohmannView(args));
}

}  // namespace nodeplane::control
