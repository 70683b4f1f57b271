#include "control/model_json.h"

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

}  // namespace nodeplane::control
