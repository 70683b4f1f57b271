#include "daemon/options.h"

#include "control/host_path.h"
#include "core/names.h"

#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace nodeplane::daemon {

namespace po = boost::program_options;

namespace {

constexpr const char* kVersion = "nodeplane 0.1.0";
const std::set<std::string> kLogLevels = {"trace", "debug",    "info", "warn",
                                          "error", "critical", "off"};
// EAL options we derive ourselves; giving them after "--" would contradict --workers.
const std::set<std::string> kReservedEalArgs = {"-l", "--lcores", "-c", "--main-lcore"};

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

Error optionError(const std::string& option, const std::string& message) {
  return invalidArgument("--" + option + ": " + message);
}

template <typename T>
Result<T> parseWith(const po::variables_map& vm, const std::string& option,
                    std::optional<T> (*parser)(std::string_view), const char* expected) {
  const std::string text = vm[option].as<std::string>();
  auto value = parser(text);
  if (!value) return optionError(option, "'" + text + "' is not " + expected);
  return *value;
}

// --cluster-global-cidr or --clusterset-cidr (unset: nullopt): a prefix of 8 to 30 bits that
// needs --cluster-id and overlaps none of the node's other prefixes (nor, for the clusterset
// CIDR, the global one, read first).
Result<std::optional<Ipv4Prefix>> clusterPrefix(const po::variables_map& vm, const char* name,
                                                const DaemonOptions& o) {
  if (!vm.count(name)) return std::optional<Ipv4Prefix>{};
  auto prefix =
      parseWith<Ipv4Prefix>(vm, name, &Ipv4Prefix::parse, "an IPv4 CIDR with host bits zero");
  if (!prefix) return prefix.error();
  if (o.clusterId.empty()) return optionError(name, "needs --cluster-id");
  if (prefix->length > 30 || prefix->length < 8)
    return optionError(name, "its length must be 8 to 30");
  const std::pair<const char*, std::optional<Ipv4Prefix>> ours[] = {
      {"--pod-cidr", o.podCidr},
      {"--cluster-cidr", o.clusterCidr},
      {"--service-cidr", o.serviceCidr},
      {"--cluster-global-cidr", o.clusterGlobalCidr}};
  for (const auto& [flag, other] : ours)
    if (other && prefix->overlaps(*other))
      return optionError(name, prefix->toString() + " overlaps " + flag + " " + other->toString());
  return std::optional<Ipv4Prefix>{*prefix};
}

bool isPrimeNumber(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

bool isValidNodeName(const std::string& name) {
  // A Kubernetes node name: DNS subdomain (RFC 1123), at most 253 characters.
  if (name.empty() || name.size() > 253) return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
      return false;
  return std::isalnum(static_cast<unsigned char>(name.front())) &&
         std::isalnum(static_cast<unsigned char>(name.back()));
}

}  // namespace

std::optional<std::vector<unsigned>> parseLcoreList(const std::string& text) {
  std::vector<unsigned> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t dash = item.find('-');
    try {
      size_t used = 0;
      if (dash == std::string::npos) {
        unsigned long v = std::stoul(item, &used);
        if (used != item.size() || v >= 1024) return std::nullopt;
        out.push_back(static_cast<unsigned>(v));
      } else {
        std::string a = item.substr(0, dash), b = item.substr(dash + 1);
        unsigned long lo = std::stoul(a, &used);
        if (used != a.size()) return std::nullopt;
        unsigned long hi = std::stoul(b, &used);
        if (used != b.size() || lo > hi || hi >= 1024) return std::nullopt;
        for (unsigned long v = lo; v <= hi; ++v) out.push_back(static_cast<unsigned>(v));
      }
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (out.empty()) return std::nullopt;
  std::vector<unsigned> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) return std::nullopt;
  return out;
}

Result<ParsedOptions> parseDaemonOptions(int argc, const char* const* argv) {
  // Everything after "--" goes to EAL untouched.
  std::vector<std::string> ours, eal;
  bool afterSeparator = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!afterSeparator && arg == "--") {
      afterSeparator = true;
      continue;
    }
    (afterSeparator ? eal : ours).push_back(arg);
  }

  po::options_description desc("nodeplane options (command line, or KEY = VALUE in --config)");
  // clang-format off
  desc.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>(), "read options from this file (command line wins)")
      ("node-name", po::value<std::string>(), "this node's name (default: the host name)")
      ("node-ip", po::value<std::string>(),
          "this node's underlay IPv4 address, optionally with the uplink's prefix (a.b.c.d/24)")
      ("underlay-gateway", po::value<std::string>(),
          "underlay next hop for tunnel endpoints outside the uplink's prefix")
      ("mtu", po::value<uint16_t>()->default_value(1500), "underlay IP MTU of the uplink")
      ("vxlan-port", po::value<uint16_t>()->default_value(4789), "VXLAN UDP destination port")
      ("vxlan-vni", po::value<uint32_t>()->default_value(1), "VXLAN network identifier")
      ("vtep-mac", po::value<std::string>(),
          "inner MAC of this node's tunnel endpoint (default: 0e:4e + the node IP)")
      ("pod-cidr", po::value<std::string>(), "this node's pod CIDR, e.g. 10.244.1.0/24 (required)")
      ("cluster-cidr", po::value<std::string>(), "the cluster's pod CIDR, e.g. 10.244.0.0/16")
      ("service-cidr", po::value<std::string>(), "the cluster's service CIDR, e.g. 10.96.0.0/12")
      ("uplink", po::value<std::string>(), "uplink port: PCI address or vdev devargs")
      ("no-uplink-guard", po::bool_switch(),
          "on an af_packet uplink, do not install the nftables table that keeps the node's "
          "kernel from answering VXLAN and NodePorts (netdev nodeplane)")
      ("host-interface", po::value<std::string>(),
          "make the host path: a veth pair NAME / NAME-dp in the node's namespace, pod and "
          "service CIDRs routed into nodeplane, the node's address routed back (kubelet probes, "
          "pods to the node)")
      ("host-default-route", po::bool_switch(),
          "the uplink is the node's only NIC (bound to DPDK, or an af_packet interface without "
          "the kernel's address): the node address goes on the host interface with the kernel's "
          "default route, and the node's own traffic to and from outside the cluster crosses "
          "nodeplane (needs --host-interface, --uplink, --underlay-gateway)")
      ("main-lcore", po::value<unsigned>()->default_value(0), "lcore of the control thread")
      ("workers", po::value<std::string>()->default_value("1"), "worker lcores, e.g. 1 or 1-3,6")
      ("metrics-address", po::value<std::string>()->default_value("127.0.0.1:9964"),
          "IP:PORT of the HTTP endpoint for /metrics (Prometheus), /healthz and /readyz "
          "(PORT 0: any free port, npctl status tells; \"off\": none)")
      ("control-socket", po::value<std::string>()->default_value("/run/nodeplane/control.sock"),
          "control socket path")
      ("control-group", po::value<std::string>(), "group also allowed on the control socket")
      ("control-max-request", po::value<size_t>()->default_value(64u << 20),
          "largest accepted control request, bytes")
      ("control-idle-timeout", po::value<unsigned>()->default_value(60),
          "seconds without a byte either way before a control connection is closed")
      ("control-connections-per-uid", po::value<unsigned>()->default_value(8),
          "control connections a non-root uid may hold at once")
      ("state-dir", po::value<std::string>()->default_value("/run/nodeplane"),
          "where attached pods are recorded to survive a restart (\"\": nowhere)")
      ("log-level", po::value<std::string>()->default_value("info"),
          "trace, debug, info, warn, error, critical or off")
      ("gateway-ip", po::value<std::string>()->default_value("169.254.1.1"),
          "the pods' link-local default gateway")
      ("burst", po::value<uint16_t>()->default_value(32), "RX burst size (1-64)")
      ("mbufs", po::value<uint32_t>()->default_value(32767), "mbufs in the packet pool")
      ("idle-sleep-us", po::value<uint32_t>()->default_value(0),
          "sleep this long when a worker finds nothing to do (0: always busy-poll)")
      ("icmp-errors-per-second", po::value<uint32_t>()->default_value(1000),
          "ICMP errors a worker may generate per second")
      ("conntrack-max", po::value<uint32_t>()->default_value(1u << 20),
          "tracked flows at most (all workers together)")
      ("cluster-id", po::value<std::string>()->default_value(""),
          "this cluster's ID among linked clusters (cluster.peer.set); a DNS label, empty: none")
      ("cluster-heartbeat-ms", po::value<uint32_t>()->default_value(100),
          "how often gateways send heartbeats to peers' gateways and their cluster's nodes")
      ("cluster-gateway-dead-ms", po::value<uint32_t>()->default_value(500),
          "a gateway not heard for this long is replaced by the next of its list")
      ("cluster-rekey-seconds", po::value<uint32_t>()->default_value(3600),
          "a new generation of ESP SAs towards each peer gateway at least this often (1 to "
          "86400; linked clusters should agree: a generation older than twice theirs is refused)")
      ("clusterset-cidr", po::value<std::string>(),
          "clusterset services (Multi-Cluster Services: every exported name of linked clusters) "
          "get their addresses here, answered as <svc>.<ns>.svc.clusterset.local; unset: none")
      ("cluster-global-cidr", po::value<std::string>(),
          "this cluster's global CIDR (Globalnet: clusters whose pod and service CIDRs overlap): "
          "pods reach peer clusters from its first address, exported services get one each")
      ("flow-log-size", po::value<uint32_t>()->default_value(4096),
          "flow log records each worker buffers for the control thread (npctl observe); a power "
          "of two, 0: no flow log")
      ("maglev-table-size", po::value<uint32_t>()->default_value(16381),
          "largest Maglev table (a prime); a port with N backends gets the smallest prime of a ladder with >= 100 N entries, up to this")
      ("snat-ports", po::value<std::string>(),
          "SNAT source ports FIRST-LAST (default 32768-60999; 61000-65535 on an af_packet uplink "
          "the kernel shares, where the uplink guard keeps the kernel off them)")
      ("cluster-domain", po::value<std::string>()->default_value("cluster.local"),
          "the cluster DNS domain the workers answer (kubelet's --cluster-domain)")
      ("cluster-dns", po::value<std::vector<std::string>>()->multitoken(),
          "addresses DNS queries come to besides the kube-system/kube-dns Service's ClusterIPs "
          "(repeatable), e.g. a node-local 169.254.20.10")
      ("dns-ttl", po::value<uint32_t>()->default_value(5), "TTL of the answers, seconds")
      ("no-dns-responder", po::bool_switch(),
          "do not answer cluster DNS in the data plane: every query goes to the DNS Service's "
          "backends")
      ("policy-audit", po::bool_switch(),
          "NetworkPolicy audit mode: verdicts are counted and logged, nothing is dropped")
      ("max-policies", po::value<uint32_t>()->default_value(4096),
          "NetworkPolicies this node keeps counters for")
      ("l7-flows", po::value<uint32_t>()->default_value(4096),
          "flows each worker can scan with L7 rules at once (Hyperscan stream states)")
      ("ct-timeout-tcp-syn", po::value<uint32_t>()->default_value(60), "seconds, half-open TCP")
      ("ct-timeout-tcp-established", po::value<uint32_t>()->default_value(21600),
          "seconds, idle established TCP")
      ("ct-timeout-tcp-fin", po::value<uint32_t>()->default_value(120), "seconds, closing TCP")
      ("ct-timeout-tcp-time-wait", po::value<uint32_t>()->default_value(120), "seconds")
      ("ct-timeout-tcp-close", po::value<uint32_t>()->default_value(10), "seconds, after RST")
      ("ct-timeout-udp", po::value<uint32_t>()->default_value(30), "seconds, UDP never answered")
      ("ct-timeout-udp-stream", po::value<uint32_t>()->default_value(120),
          "seconds, UDP with replies")
      ("ct-timeout-icmp", po::value<uint32_t>()->default_value(30), "seconds, ICMP echo")
      ("rx-descriptors", po::value<uint16_t>()->default_value(1024), "RX ring size per queue")
      ("tx-descriptors", po::value<uint16_t>()->default_value(1024), "TX ring size per queue");
  // clang-format on

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(ours).options(desc).run(), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) return optionError("config", "cannot read '" + path + "'");
      po::store(po::parse_config_file(file, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return invalidArgument(e.what());
  }

  ParsedOptions parsed;
  if (vm.count("help")) {
    std::ostringstream out;
    out << "usage: nodeplane [options] [-- EAL options]\n\n" << desc;
    parsed.exitNow = true;
    parsed.output = out.str();
    return parsed;
  }
  if (vm.count("version")) {
    parsed.exitNow = true;
    parsed.output = std::string(kVersion) + "\n";
    return parsed;
  }

  DaemonOptions& o = parsed.options;
  o.nodeName = vm.count("node-name") ? vm["node-name"].as<std::string>() : hostName();
  if (!isValidNodeName(o.nodeName))
    return optionError("node-name", "'" + o.nodeName + "' is not a valid Kubernetes node name");

  if (!vm.count("node-ip")) return optionError("node-ip", "required");
  {
    const std::string text = vm["node-ip"].as<std::string>();
    const size_t slash = text.find('/');
    auto addr = Ipv4Address::parse(std::string_view(text).substr(0, slash));
    std::optional<Ipv4Prefix> subnet;
    if (addr && slash != std::string::npos) {
      // The subnet form: host bits are expected here.
      auto len = Ipv4Prefix::parse("0.0.0.0" + text.substr(slash));
      if (len)
        subnet =
            Ipv4Prefix{Ipv4Address{addr->value & Ipv4Prefix{{}, len->length}.mask()}, len->length};
    }
    if (!addr || (slash != std::string::npos && !subnet))
      return optionError("node-ip", "'" + text + "' is not an IPv4 address (or address/prefix)");
    o.nodeIp = *addr;
    o.underlayPrefixLength = subnet ? subnet->length : 32;
  }
  if (vm.count("underlay-gateway")) {
    auto gw =
        parseWith<Ipv4Address>(vm, "underlay-gateway", &Ipv4Address::parse, "an IPv4 address");
    if (!gw) return gw.error();
    Ipv4Prefix subnet{Ipv4Address{o.nodeIp.value & Ipv4Prefix{{}, o.underlayPrefixLength}.mask()},
                      o.underlayPrefixLength};
    if (o.underlayPrefixLength == 32 || !subnet.contains(*gw))
      return optionError("underlay-gateway", gw->toString() +
                                                 " is not inside the uplink's "
                                                 "subnet (give --node-ip as address/prefix)");
    o.underlayGateway = *gw;
  }
  o.mtu = vm["mtu"].as<uint16_t>();
  if (o.mtu < 576 || o.mtu > 9000) return optionError("mtu", "must be 576 to 9000");
  o.vxlanPort = vm["vxlan-port"].as<uint16_t>();
  if (o.vxlanPort == 0) return optionError("vxlan-port", "must not be 0");
  o.vxlanVni = vm["vxlan-vni"].as<uint32_t>();
  if (o.vxlanVni == 0 || o.vxlanVni > 0xffffff)
    return optionError("vxlan-vni", "must be 1 to 16777215");
  if (vm.count("vtep-mac")) {
    auto mac = parseWith<MacAddress>(vm, "vtep-mac", &MacAddress::parse, "a MAC address");
    if (!mac) return mac.error();
    if (mac->isMulticast() || mac->isZero())
      return optionError("vtep-mac", mac->toString() + " is not a unicast MAC address");
    o.vtepMac = *mac;
  }

  if (!vm.count("pod-cidr")) return optionError("pod-cidr", "required");
  auto podCidr =
      parseWith<Ipv4Prefix>(vm, "pod-cidr", &Ipv4Prefix::parse, "an IPv4 CIDR with host bits zero");
  if (!podCidr) return podCidr.error();
  o.podCidr = *podCidr;
  if (o.podCidr.length > 30) return optionError("pod-cidr", "a /31 or /32 leaves no pod address");

  for (const char* name : {"cluster-cidr", "service-cidr"}) {
    if (!vm.count(name)) continue;
    auto prefix =
        parseWith<Ipv4Prefix>(vm, name, &Ipv4Prefix::parse, "an IPv4 CIDR with host bits zero");
    if (!prefix) return prefix.error();
    (std::string(name) == "cluster-cidr" ? o.clusterCidr : o.serviceCidr) = *prefix;
  }
  if (o.clusterCidr && !o.clusterCidr->contains(o.podCidr.address))
    return optionError("pod-cidr", o.podCidr.toString() + " is not inside --cluster-cidr " +
                                       o.clusterCidr->toString());
  if (o.clusterCidr && o.serviceCidr && o.clusterCidr->overlaps(*o.serviceCidr))
    return optionError("service-cidr", o.serviceCidr->toString() + " overlaps --cluster-cidr " +
                                           o.clusterCidr->toString());
  if (o.serviceCidr && o.serviceCidr->overlaps(o.podCidr))
    return optionError("service-cidr",
                       o.serviceCidr->toString() + " overlaps --pod-cidr " + o.podCidr.toString());

  auto gateway = parseWith<Ipv4Address>(vm, "gateway-ip", &Ipv4Address::parse, "an IPv4 address");
  if (!gateway) return gateway.error();
  o.gatewayIp = *gateway;
  if (o.podCidr.contains(o.gatewayIp))
    return optionError("gateway-ip",
                       o.gatewayIp.toString() + " lies inside --pod-cidr " + o.podCidr.toString());

  if (vm.count("uplink")) o.uplink = vm["uplink"].as<std::string>();
  if (vm.count("uplink") && o.uplink.empty()) return optionError("uplink", "empty devargs");
  o.uplinkGuard = !vm["no-uplink-guard"].as<bool>();
  if (vm.count("host-interface")) {
    o.hostInterface = vm["host-interface"].as<std::string>();
    if (auto st = control::validateHostInterfaceName(o.hostInterface); !st)
      return optionError("host-interface", st.error().message);
  }
  o.hostDefaultRoute = vm["host-default-route"].as<bool>();
  if (o.hostDefaultRoute) {
    const char* missing = o.hostInterface.empty() ? "--host-interface"
                          : o.uplink.empty()      ? "--uplink"
                          : !o.underlayGateway    ? "--underlay-gateway"
                                                  : nullptr;
    if (missing)
      return optionError("host-default-route",
                         std::string("needs ") + missing +
                             " (the node's traffic leaves through the uplink to the underlay "
                             "gateway, from the host interface)");
  }

  o.mainLcore = vm["main-lcore"].as<unsigned>();
  auto workers = parseLcoreList(vm["workers"].as<std::string>());
  if (!workers)
    return optionError("workers", "'" + vm["workers"].as<std::string>() +
                                      "' is not a list of distinct lcores (e.g. 1 or 1-3,6)");
  o.workerLcores = *workers;
  if (std::find(o.workerLcores.begin(), o.workerLcores.end(), o.mainLcore) != o.workerLcores.end())
    return optionError("workers", "lcore " + std::to_string(o.mainLcore) +
                                      " is the --main-lcore (the control thread)");

  o.metricsAddress = vm["metrics-address"].as<std::string>();
  if (o.metricsAddress != "off") {
    const size_t colon = o.metricsAddress.rfind(':');
    const std::string host = colon == std::string::npos ? "" : o.metricsAddress.substr(0, colon);
    const std::string port = colon == std::string::npos ? "" : o.metricsAddress.substr(colon + 1);
    const bool portOk = !port.empty() && port.size() <= 5 &&
                        std::all_of(port.begin(), port.end(), ::isdigit) &&
                        std::stoul(port) <= 65535;
    if (!Ipv4Address::parse(host) || !portOk)
      return optionError("metrics-address", "'" + o.metricsAddress + "' is not IPv4:PORT (or off)");
  }
  o.controlSocket = vm["control-socket"].as<std::string>();
  if (o.controlSocket.empty() || o.controlSocket.front() != '/')
    return optionError("control-socket", "'" + o.controlSocket + "' is not an absolute path");
  if (o.controlSocket.size() >= 108)
    return optionError("control-socket", "longer than a Unix socket path may be (107 bytes)");
  if (vm.count("control-group")) o.controlGroup = vm["control-group"].as<std::string>();
  o.controlMaxRequestBytes = vm["control-max-request"].as<size_t>();
  if (o.controlMaxRequestBytes < 4096)
    return optionError("control-max-request", "below the minimum of 4096 bytes");
  o.controlIdleTimeoutSeconds = vm["control-idle-timeout"].as<unsigned>();
  if (o.controlIdleTimeoutSeconds < 1 || o.controlIdleTimeoutSeconds > 86400)
    return optionError("control-idle-timeout", "must be 1 to 86400 seconds");
  o.controlConnectionsPerUid = vm["control-connections-per-uid"].as<unsigned>();
  if (o.controlConnectionsPerUid < 1 || o.controlConnectionsPerUid > 64)
    return optionError("control-connections-per-uid", "must be 1 to 64");

  o.stateDir = vm["state-dir"].as<std::string>();
  if (!o.stateDir.empty() && o.stateDir.front() != '/')
    return optionError("state-dir", "'" + o.stateDir + "' is not an absolute path");
  o.logLevel = vm["log-level"].as<std::string>();
  if (!kLogLevels.count(o.logLevel))
    return optionError("log-level", "'" + o.logLevel +
                                        "' is not one of trace, debug, info, warn, error, "
                                        "critical, off");
  o.burstSize = vm["burst"].as<uint16_t>();
  if (o.burstSize < 1 || o.burstSize > 64) return optionError("burst", "must be 1 to 64");
  o.mbufs = vm["mbufs"].as<uint32_t>();
  if (o.mbufs < 1024) return optionError("mbufs", "below the minimum of 1024");
  o.idleSleepUs = vm["idle-sleep-us"].as<uint32_t>();
  if (o.idleSleepUs > 100000) return optionError("idle-sleep-us", "above 100000 (100 ms)");
  o.icmpErrorsPerSecond = vm["icmp-errors-per-second"].as<uint32_t>();
  o.conntrackMax = vm["conntrack-max"].as<uint32_t>();
  o.flowLogSize = vm["flow-log-size"].as<uint32_t>();
  o.clusterId = vm["cluster-id"].as<std::string>();
  if (!o.clusterId.empty() && !isDnsLabel(o.clusterId))
    return optionError("cluster-id", "'" + o.clusterId + "' is not a DNS label");
  o.heartbeatIntervalMs = vm["cluster-heartbeat-ms"].as<uint32_t>();
  o.gatewayDeadMs = vm["cluster-gateway-dead-ms"].as<uint32_t>();
  if (o.heartbeatIntervalMs < 10 || o.heartbeatIntervalMs > 10000)
    return optionError("cluster-heartbeat-ms", "must be 10 to 10000");
  if (o.gatewayDeadMs < 2 * o.heartbeatIntervalMs || o.gatewayDeadMs > 60000)
    return optionError("cluster-gateway-dead-ms",
                       "must be at least twice --cluster-heartbeat-ms, and at most 60000");
  o.clusterRekeySeconds = vm["cluster-rekey-seconds"].as<uint32_t>();
  if (o.clusterRekeySeconds < 1 || o.clusterRekeySeconds > 86400)
    return optionError("cluster-rekey-seconds", "must be 1 to 86400");
  for (const char* name : {"cluster-global-cidr", "clusterset-cidr"}) {
    auto prefix = clusterPrefix(vm, name, o);
    if (!prefix) return prefix.error();
    (std::string(name) == "clusterset-cidr" ? o.clustersetCidr : o.clusterGlobalCidr) = *prefix;
  }
  if (o.flowLogSize != 0 && (o.flowLogSize < 64 || o.flowLogSize > (1u << 20) ||
                             (o.flowLogSize & (o.flowLogSize - 1)) != 0))
    return optionError("flow-log-size", "not 0 or a power of two from 64 to 1048576");
  if (o.conntrackMax < 1024) return optionError("conntrack-max", "below the minimum of 1024");
  if (vm.count("snat-ports")) {
    const std::string text = vm["snat-ports"].as<std::string>();
    unsigned first = 0, last = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%u-%u%c", &first, &last, &tail) != 2 || first < 1024 ||
        last > 65535 || first > last || last - first + 1 < 1024)
      return optionError("snat-ports", "'" + text +
                                           "' is not FIRST-LAST within 1024-65535, at least "
                                           "1024 ports");
    o.snatPorts =
        std::pair<uint16_t, uint16_t>{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
  }
  o.dnsResponder = !vm["no-dns-responder"].as<bool>();
  o.clusterDomain = vm["cluster-domain"].as<std::string>();
  while (o.clusterDomain.ends_with('.')) o.clusterDomain.pop_back();
  if (!isDnsSubdomain(o.clusterDomain))
    return optionError("cluster-domain", "'" + o.clusterDomain + "' is not a DNS name");
  o.dnsTtl = vm["dns-ttl"].as<uint32_t>();
  if (o.dnsTtl > 86400) return optionError("dns-ttl", "must be 0 to 86400");
  if (vm.count("cluster-dns"))
    for (const std::string& text : vm["cluster-dns"].as<std::vector<std::string>>()) {
      auto ip = Ipv4Address::parse(text);
      if (!ip || ip->value == 0 || (ip->value >> 28) >= 0xe)
        return optionError("cluster-dns", "'" + text + "' is not a unicast IPv4 address");
      o.clusterDns.push_back(*ip);
    }
  o.policyAudit = vm["policy-audit"].as<bool>();
  o.maxPolicies = vm["max-policies"].as<uint32_t>();
  if (o.maxPolicies < 1 || o.maxPolicies > (1u << 20))
    return optionError("max-policies", "must be 1 to 1048576");
  o.l7FlowsPerWorker = vm["l7-flows"].as<uint32_t>();
  if (o.l7FlowsPerWorker < 16 || o.l7FlowsPerWorker > (1u << 20))
    return optionError("l7-flows", "must be 16 to 1048576");
  o.maglevSize = vm["maglev-table-size"].as<uint32_t>();
  if (o.maglevSize < 7 || o.maglevSize > 1000003 || !isPrimeNumber(o.maglevSize))
    return optionError("maglev-table-size",
                       std::to_string(o.maglevSize) + " is not a prime between 7 and 1000003");
  struct Timeout {
    const char* name;
    uint32_t* out;
  } timeouts[] = {{"ct-timeout-tcp-syn", &o.ctTcpSyn},
                  {"ct-timeout-tcp-established", &o.ctTcpEstablished},
                  {"ct-timeout-tcp-fin", &o.ctTcpFin},
                  {"ct-timeout-tcp-time-wait", &o.ctTcpTimeWait},
                  {"ct-timeout-tcp-close", &o.ctTcpClose},
                  {"ct-timeout-udp", &o.ctUdp},
                  {"ct-timeout-udp-stream", &o.ctUdpReplied},
                  {"ct-timeout-icmp", &o.ctIcmp}};
  for (const Timeout& t : timeouts) {
    *t.out = vm[t.name].as<uint32_t>();
    if (*t.out == 0 || *t.out > 40 * 86400)  // the millisecond clock wraps after 49 days
      return optionError(t.name, "must be 1 to 3456000 seconds");
  }
  o.rxDescriptors = vm["rx-descriptors"].as<uint16_t>();
  o.txDescriptors = vm["tx-descriptors"].as<uint16_t>();
  if (o.rxDescriptors < 64) return optionError("rx-descriptors", "below the minimum of 64");
  if (o.txDescriptors < 64) return optionError("tx-descriptors", "below the minimum of 64");

  for (const std::string& arg : eal) {
    const std::string key = arg.substr(0, arg.find('='));
    if (kReservedEalArgs.count(key))
      return invalidArgument("EAL option " + key +
                             " is set by nodeplane: use --workers and --main-lcore");
  }
  o.ealArgs = std::move(eal);
  return parsed;
}

std::vector<std::string> buildEalArgs(const std::string& program, const DaemonOptions& options) {
  std::vector<std::string> args{program};
  std::string lcores = std::to_string(options.mainLcore);
  for (unsigned l : options.workerLcores) lcores += "," + std::to_string(l);
  args.insert(args.end(), {"-l", lcores, "--main-lcore", std::to_string(options.mainLcore)});

  bool hasPrefix = false;
  for (const std::string& a : options.ealArgs)
    if (a.rfind("--file-prefix", 0) == 0) hasPrefix = true;
  // Several daemons (one per emulated node) can share a host when each has its own prefix.
  if (!hasPrefix) args.insert(args.end(), {"--file-prefix", "nodeplane-" + options.nodeName});

  // DPDK's own messages at a level matching ours; a --log-level after "--" still wins.
  static const std::pair<const char*, const char*> kEalLevels[] = {
      {"trace", "debug"}, {"debug", "debug"},       {"info", "notice"},  {"warn", "warning"},
      {"error", "error"}, {"critical", "critical"}, {"off", "emergency"}};
  for (const auto& [ours, eal] : kEalLevels)
    if (options.logLevel == ours) args.push_back(std::string("--log-level=") + eal);
  args.insert(args.end(), options.ealArgs.begin(), options.ealArgs.end());
  return args;
}

}  // namespace nodeplane::daemon
