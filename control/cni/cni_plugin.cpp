#include "control/cni/cni_plugin.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include "control/client.h"
#include "control/cni/ipam.h"
#include "control/cni/netlink.h"
#include "core/ipv4.h"
#include "core/json.h"
#include "core/result.h"

namespace nodeplane::cni {

namespace {

constexpr const char* kLatestVersion = "1.0.0";
const std::set<std::string> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
constexpr const char* kDefaultSocket = "/run/nodeplane/control.sock";
constexpr unsigned kDefaultMtu = 1450;  // 1500 underlay minus 50 bytes of VXLAN overhead

// CNI spec error codes.
constexpr int kErrIncompatibleVersion = 1;
constexpr int kErrUnsupportedField = 2;
constexpr int kErrUnknownContainer = 3;
constexpr int kErrInvalidEnvironment = 4;
constexpr int kErrIoFailure = 5;
constexpr int kErrDecode = 6;
constexpr int kErrInvalidConfig = 7;
constexpr int kErrTryAgainLater = 11;
// Plugin-specific codes (>= 100).
constexpr int kErrDaemon = 100;
constexpr int kErrIpam = 101;
constexpr int kErrCheckFailed = 102;

struct NetConf {
  std::string cniVersion;
  std::string name;
  unsigned mtu = kDefaultMtu;
  Ipv4Address gateway{0xa9fe0101};
  std::string controlSocket = kDefaultSocket;
  std::string ipamType;
  Json prevResult;
};

struct Failure {
  int code;
  std::string msg;
  std::string details;
};

template <typename T>
using Outcome = std::variant<T, Failure>;

// JSON text; invalid UTF-8 (a container id or pod name from the environment) is replaced, not
// thrown about.
std::string dumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

CniOutcome failureOutput(const std::string& version, const Failure& f) {
  Json j = {
      {"cniVersion", version.empty() ? kLatestVersion : version}, {"code", f.code}, {"msg", f.msg}};
  if (!f.details.empty()) j["details"] = f.details;
  return CniOutcome{1, dumpJson(j) + "\n"};
}

Outcome<NetConf> parseNetConf(const std::string& text, Json* raw) {
  std::string why;
  auto parsed = json::parse(text, &why);
  if (!parsed) return Failure{kErrDecode, "network configuration on stdin is " + why, ""};
  if (!parsed->is_object())
    return Failure{kErrDecode, "network configuration on stdin is not a JSON object", ""};
  const Json& doc = *parsed;
  *raw = doc;
  NetConf c;
  if (!doc.contains("cniVersion") || !doc["cniVersion"].is_string())
    return Failure{kErrInvalidConfig, "network configuration: field 'cniVersion' missing", ""};
  c.cniVersion = doc["cniVersion"].get<std::string>();
  if (!kSupportedVersions.count(c.cniVersion))
    return Failure{kErrIncompatibleVersion,
                   "network configuration: cniVersion " + c.cniVersion + " not supported",
                   "supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0"};
  if (!doc.contains("name") || !doc["name"].is_string() || doc["name"].get<std::string>().empty())
    return Failure{kErrInvalidConfig, "network configuration: field 'name' missing", ""};
  c.name = doc["name"].get<std::string>();
  if (doc.contains("mtu")) {
    if (!doc["mtu"].is_number_unsigned() || doc["mtu"].get<unsigned>() < 576 ||
        doc["mtu"].get<unsigned>() > 9000)
      return Failure{kErrInvalidConfig, "network configuration: field 'mtu': not 576..9000", ""};
    c.mtu = doc["mtu"].get<unsigned>();
  }
  if (doc.contains("gateway")) {
    auto gw = doc["gateway"].is_string() ? Ipv4Address::parse(doc["gateway"].get<std::string>())
                                         : std::nullopt;
    if (!gw)
      return Failure{kErrInvalidConfig,
                     "network configuration: field 'gateway': not an IPv4 address", ""};
    c.gateway = *gw;
  }
  if (doc.contains("controlSocket")) {
    if (!doc["controlSocket"].is_string())
      return Failure{kErrInvalidConfig, "network configuration: field 'controlSocket' not a string",
                     ""};
    c.controlSocket = doc["controlSocket"].get<std::string>();
  }
  if (!doc.contains("ipam") || !doc["ipam"].is_object() || !doc["ipam"].contains("type") ||
      !doc["ipam"]["type"].is_string())
    return Failure{kErrInvalidConfig, "network configuration: field 'ipam.type' missing", ""};
  c.ipamType = doc["ipam"]["type"].get<std::string>();
  if (doc.contains("prevResult")) c.prevResult = doc["prevResult"];
  return c;
}

// The first IPv4 address of an IPAM result, in any supported result version.
Outcome<Ipv4Address> firstIpv4(const Json& result) {
  if (result.is_object() && result.contains("ips") && result["ips"].is_array()) {
    for (const Json& ip : result["ips"]) {
      if (!ip.is_object() || !ip.contains("address") || !ip["address"].is_string()) continue;
      const std::string cidr = ip["address"].get<std::string>();
      auto addr = Ipv4Address::parse(cidr.substr(0, cidr.find('/')));
      if (addr) return *addr;
    }
  }
  return Failure{kErrIpam, "IPAM result holds no IPv4 address", dumpJson(result)};
}

Json buildResult(const NetConf& conf, const CniEnv& env, const std::string& hostIf,
                 const LinkInfo& host, const LinkInfo& pod, Ipv4Address ip, const Json& ipam) {
  const bool v1 = conf.cniVersion == "1.0.0";
  Json ipEntry = {
      {"address", ip.toString() + "/32"}, {"gateway", conf.gateway.toString()}, {"interface", 1}};
  if (!v1) ipEntry["version"] = "4";
  Json result = {
      {"cniVersion", conf.cniVersion},
      {"interfaces",
       Json::array({{{"name", hostIf}, {"mac", host.mac.toString()}},
                    {{"name", env.ifname}, {"mac", pod.mac.toString()}, {"sandbox", env.netns}}})},
      {"ips", Json::array({ipEntry})},
      {"routes", Json::array({{{"dst", "0.0.0.0/0"}, {"gw", conf.gateway.toString()}}})}};
  result["dns"] = ipam.is_object() && ipam.contains("dns") ? ipam["dns"] : Json::object();
  return result;
}

Outcome<Json> cmdAdd(const CniEnv& env, const NetConf& conf, const std::string& stdinText) {
  const auto k8s = parseCniArgs(env.args);
  const std::string hostIf = hostInterfaceName(env.containerId, env.ifname);

  int netnsFd = ::open(env.netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (netnsFd < 0)
    return Failure{kErrUnknownContainer, "network namespace " + env.netns + " cannot be opened",
                   strerror(errno)};
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{netnsFd};

  {
    auto inNs = NetnsScope::enter(env.netns);
    if (!inNs) return Failure{kErrUnknownContainer, inNs.error().message, ""};
    if (linkExists(env.ifname))
      return Failure{kErrInvalidConfig,
                     "interface " + env.ifname + " already exists in " + env.netns, ""};
  }

  PluginError ipamError;
  auto ipam = invokeDelegate(conf.ipamType, "ADD", stdinText, env.path, &ipamError);
  if (!ipam)
    return Failure{ipamError.code != 0 ? ipamError.code : kErrIpam, ipam.error().message,
                   ipamError.details};
  auto releaseIpam = [&] {
    (void)invokeDelegate(conf.ipamType, "DEL", stdinText, env.path, nullptr);
  };
  auto ipResult = firstIpv4(*ipam);
  if (auto* f = std::get_if<Failure>(&ipResult)) {
    releaseIpam();
    return *f;
  }
  const Ipv4Address ip = std::get<Ipv4Address>(ipResult);

  // From here on every failure removes what was made: the veth pair and the IPAM lease.
  auto fail = [&](int code, const std::string& msg, const std::string& details = "") {
    (void)deleteLink(hostIf);
    releaseIpam();
    return Failure{code, msg, details};
  };

  (void)deleteLink(hostIf);  // a leftover from an interrupted ADD of the same container
  if (auto st = createVethPair(hostIf, env.ifname, netnsFd, conf.mtu); !st)
    return fail(kErrIoFailure, st.error().message);

  LinkInfo podLink;
  {
    auto inNs = NetnsScope::enter(env.netns);
    if (!inNs) return fail(kErrUnknownContainer, inNs.error().message);
    (void)setLinkUp("lo", 0);
    Status st = setLinkUp(env.ifname, conf.mtu);
    if (st) st = addAddress(env.ifname, Ipv4Prefix{ip, 32});
    if (st) st = addRoute(env.ifname, Ipv4Prefix{conf.gateway, 32}, std::nullopt);
    if (st) st = addRoute(env.ifname, Ipv4Prefix{Ipv4Address{0}, 0}, conf.gateway);
    // Checksum offload and TSO stay on (the daemon's pod port carries them, dataplane/vnet.h);
    // UDP segmentation offload goes: nodeplane carries no UDP super-packets.
    if (st) st = disableFeature(env.ifname, "tx-udp-segmentation");
    if (!st) return fail(kErrIoFailure, "configuring " + env.ifname + ": " + st.error().message);
    auto info = getLink(env.ifname);
    if (!info) return fail(kErrIoFailure, info.error().message);
    podLink = *info;
  }
  // The host end carries only what the daemon sends; the host kernel must stay quiet on it.
  (void)writeSysctl("net/ipv6/conf/" + hostIf + "/disable_ipv6", "1");
  if (auto st = setLinkUp(hostIf, conf.mtu); !st) return fail(kErrIoFailure, st.error().message);
  auto hostLink = getLink(hostIf);
  if (!hostLink) return fail(kErrIoFailure, hostLink.error().message);

  const std::string ns = k8s.count("K8S_POD_NAMESPACE") ? k8s.at("K8S_POD_NAMESPACE") : "default";
  const std::string name =
      k8s.count("K8S_POD_NAME") ? k8s.at("K8S_POD_NAME") : env.containerId.substr(0, 63);
  control::ControlClient client(conf.controlSocket);
  auto attached = client.call("pod.attach", {{"namespace", ns},
                                             {"name", name},
                                             {"containerId", env.containerId},
                                             {"interface", env.ifname},
                                             {"hostInterface", hostIf},
                                             {"netns", env.netns},
                                             {"ip", ip.toString()},
                                             {"mac", podLink.mac.toString()}});
  if (!attached) {
    const bool down = attached.error().code == ErrorCode::kUnavailable;
    return fail(down ? kErrTryAgainLater : kErrDaemon,
                "nodeplane daemon refused the pod: " + attached.error().message);
  }
  return buildResult(conf, env, hostIf, *hostLink, podLink, ip, *ipam);
}

Outcome<Json> cmdDel(const CniEnv& env, const NetConf& conf, const std::string& stdinText) {
  control::ControlClient client(conf.controlSocket);
  auto detached =
      client.call("pod.detach", {{"containerId", env.containerId}, {"interface", env.ifname}});
  if (!detached && detached.error().code != ErrorCode::kNotFound &&
      detached.error().code != ErrorCode::kUnavailable)
    return Failure{kErrDaemon, "nodeplane daemon: " + detached.error().message, ""};

  if (auto st = deleteLink(hostInterfaceName(env.containerId, env.ifname)); !st)
    return Failure{kErrIoFailure, st.error().message, ""};
  if (!env.netns.empty()) {
    if (auto inNs = NetnsScope::enter(env.netns)) (void)deleteLink(env.ifname);
  }
  PluginError ipamError;
  if (auto r = invokeDelegate(conf.ipamType, "DEL", stdinText, env.path, &ipamError); !r)
    return Failure{ipamError.code != 0 ? ipamError.code : kErrIpam, r.error().message,
                   ipamError.details};
  return Json(nullptr);
}

Outcome<Json> cmdCheck(const CniEnv& env, const NetConf& conf, const std::string& stdinText) {
  if (conf.prevResult.is_null())
    return Failure{kErrInvalidConfig, "CHECK needs prevResult in the network configuration", ""};
  auto ipResult = firstIpv4(conf.prevResult);
  if (auto* f = std::get_if<Failure>(&ipResult)) return *f;
  const Ipv4Address ip = std::get<Ipv4Address>(ipResult);
  PluginError ipamError;
  if (auto r = invokeDelegate(conf.ipamType, "CHECK", stdinText, env.path, &ipamError); !r)
    return Failure{ipamError.code != 0 ? ipamError.code : kErrIpam, r.error().message, ""};

  const std::string hostIf = hostInterfaceName(env.containerId, env.ifname);
  auto host = getLink(hostIf);
  if (!host || !host->up)
    return Failure{kErrCheckFailed, "host interface " + hostIf + " is missing or down", ""};
  {
    auto inNs = NetnsScope::enter(env.netns);
    if (!inNs) return Failure{kErrUnknownContainer, inNs.error().message, ""};
    auto pod = getLink(env.ifname);
    if (!pod || !pod->up)
      return Failure{kErrCheckFailed, "interface " + env.ifname + " is missing or down", ""};
    if (!hasAddress(env.ifname, ip))
      return Failure{kErrCheckFailed, env.ifname + " lacks address " + ip.toString(), ""};
    if (!hasRoute(env.ifname, Ipv4Prefix{Ipv4Address{0}, 0}, conf.gateway))
      return Failure{kErrCheckFailed,
                     "no default route via " + conf.gateway.toString() + " on " + env.ifname, ""};
  }
  control::ControlClient client(conf.controlSocket);
  auto pods = client.call("pod.list");
  if (!pods) return Failure{kErrDaemon, "nodeplane daemon: " + pods.error().message, ""};
  const Json& list = json::field(*pods, "pods");
  if (list.is_array())
    for (const Json& p : list)
      if (json::string(p, "containerId") == env.containerId &&
          json::string(p, "interface") == env.ifname) {
        if (json::string(p, "ip") != ip.toString())
          return Failure{kErrCheckFailed,
                         "daemon has the pod with address " + json::string(p, "ip"), ""};
        return Json(nullptr);
      }
  return Failure{kErrCheckFailed, "the daemon has no attachment for this container", ""};
}

}  // namespace

CniEnv CniEnv::fromProcess() {
  auto get = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  return CniEnv{get("CNI_COMMAND"), get("CNI_CONTAINERID"), get("CNI_NETNS"),
                get("CNI_IFNAME"),  get("CNI_ARGS"),        get("CNI_PATH")};
}

std::string hostInterfaceName(const std::string& containerId, const std::string& ifname) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64
  for (char c : containerId + "/" + ifname) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "np%013llx",
                static_cast<unsigned long long>(h & 0xfffffffffffffull));
  return buf;
}

std::map<std::string, std::string> parseCniArgs(const std::string& args) {
  std::map<std::string, std::string> out;
  std::stringstream ss(args);
  std::string pair;
  while (std::getline(ss, pair, ';')) {
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    out[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return out;
}

CniOutcome runCni(const CniEnv& env, const std::string& stdinText) {
  if (env.command == "VERSION") {
    Json j = {{"cniVersion", kLatestVersion},
              {"supportedVersions", Json::array({"0.3.0", "0.3.1", "0.4.0", "1.0.0"})}};
    return CniOutcome{0, dumpJson(j) + "\n"};
  }
  if (env.command != "ADD" && env.command != "DEL" && env.command != "CHECK")
    return failureOutput(
        "", Failure{kErrInvalidEnvironment, "CNI_COMMAND '" + env.command + "' is not supported",
                    "supported: ADD, DEL, CHECK, VERSION"});
  Json raw;
  auto parsed = parseNetConf(stdinText, &raw);
  if (auto* f = std::get_if<Failure>(&parsed))
    return failureOutput(json::string(raw, "cniVersion"), *f);
  const NetConf& conf = std::get<NetConf>(parsed);
  if (env.command == "CHECK" && conf.cniVersion.rfind("0.3", 0) == 0)
    return failureOutput(conf.cniVersion, Failure{kErrIncompatibleVersion,
                                                  "CHECK needs cniVersion 0.4.0 or later", ""});

  if (env.containerId.empty())
    return failureOutput(conf.cniVersion,
                         Failure{kErrInvalidEnvironment, "CNI_CONTAINERID is not set", ""});
  if (env.ifname.empty() || env.ifname.size() > 15 || env.ifname.find('/') != std::string::npos)
    return failureOutput(conf.cniVersion,
                         Failure{kErrInvalidEnvironment,
                                 "CNI_IFNAME '" + env.ifname + "' is not an interface name", ""});
  if (env.command != "DEL" && env.netns.empty())
    return failureOutput(conf.cniVersion,
                         Failure{kErrInvalidEnvironment, "CNI_NETNS is not set", ""});
  if (env.command != "DEL" && env.path.empty())
    return failureOutput(conf.cniVersion,
                         Failure{kErrInvalidEnvironment, "CNI_PATH is not set", ""});

  Outcome<Json> outcome = env.command == "ADD"   ? cmdAdd(env, conf, stdinText)
                          : env.command == "DEL" ? cmdDel(env, conf, stdinText)
                                                 : cmdCheck(env, conf, stdinText);
  if (auto* f = std::get_if<Failure>(&outcome)) return failureOutput(conf.cniVersion, *f);
  const Json& result = std::get<Json>(outcome);
  return CniOutcome{0, result.is_null() ? "" : dumpJson(result) + "\n"};
}

}  // namespace nodeplane::cni
