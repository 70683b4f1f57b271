#include "control/uplink_guard.h"

#include <fstream>

#include "control/nftables.h"
#include "lb/snat_ports.h"

namespace nodeplane::control {

namespace {

constexpr const char* kTable = "netdev nodeplane";

}  // namespace

std::pair<uint16_t, uint16_t> snatPortRange(bool guardedSharedUplink,
                                            std::optional<std::pair<uint16_t, uint16_t>> setting) {
  if (setting) return *setting;
  if (guardedSharedUplink) return {lb::SnatPorts::kSharedFirst, lb::SnatPorts::kSharedLast};
  return {lb::SnatPorts::kFirst, lb::SnatPorts::kLast};
}

std::pair<uint16_t, uint16_t> snatPortRange(const NodeSettings& settings) {
  return snatPortRange(
      (settings.uplinkGuard && sharedUplinkInterface(settings.uplinkDevargs).has_value()) ||
          (settings.hostDefaultRoute && !settings.hostInterface.empty()),
      settings.snatPorts);
}

std::pair<uint16_t, uint16_t> kernelEphemeralPorts() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned first = 0, last = 0;
  if (in >> first >> last && first <= last && last <= 65535)
    return {static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
  return {lb::SnatPorts::kFirst, lb::SnatPorts::kLast};  // Linux's default
}

std::optional<std::string> sharedUplinkInterface(const std::string& devargs) {
  if (devargs.rfind("net_af_packet", 0) != 0) return std::nullopt;
  const size_t at = devargs.find(",iface=");
  if (at == std::string::npos) return std::nullopt;
  const size_t start = at + 7;
  std::string name = devargs.substr(start, devargs.find(',', start) - start);
  if (!isSafeInterfaceName(name)) return std::nullopt;
  return name;
}

std::string uplinkGuardRules(const UplinkGuardConfig& c) {
  const std::string ip = c.nodeIp.toString();
  const std::string ports = std::to_string(c.nodePortFirst) + "-" + std::to_string(c.nodePortLast);
  std::string s;
  // Create-then-delete makes the script idempotent: a table left by a daemon that died goes.
  s += "table " + std::string(kTable) + "\n";
  s += "delete table " + std::string(kTable) + "\n";
  s += "table " + std::string(kTable) + " {\n";
  s += "  chain uplink {\n";
  s +=
      "    type filter hook ingress device \"" + c.interface + "\" priority -500; policy accept;\n";
  if (c.whole) {
    s += "    counter drop comment \"the node address is the host path's: the uplink is "
         "nodeplane's alone\"\n";
    s += "  }\n}\n";
    return s;
  }
  s += "    ip daddr " + ip + " udp dport " + std::to_string(c.vxlanPort) +
       " counter drop comment \"VXLAN: nodeplane decapsulates\"\n";
  s += "    ip daddr " + ip + " tcp dport " + ports + " counter drop comment \"NodePorts\"\n";
  s += "    ip daddr " + ip + " udp dport " + ports + " counter drop comment \"NodePorts\"\n";
  if (c.snatPortFirst != 0 && c.snatPortLast >= c.snatPortFirst) {
    const std::string snat = std::to_string(c.snatPortFirst) + "-" + std::to_string(c.snatPortLast);
    for (const char* proto : {"tcp", "udp"})
      s += "    ip daddr " + ip + " " + proto + " dport " + snat +
           " counter drop comment \"replies to masqueraded flows\"\n";
  }
  s += "  }\n";
  s += "}\n";
  return s;
}

Status installUplinkGuard(const UplinkGuardConfig& config) {
  if (!isSafeInterfaceName(config.interface))
    return makeError(ErrorCode::kInvalidArgument,
                     "uplink guard: interface \"" + config.interface + "\" is not a valid name");
  return runNftScript(uplinkGuardRules(config), "uplink guard on " + config.interface);
}

void removeUplinkGuard() {
  (void)runNftScript(
      "table " + std::string(kTable) + "\ndelete table " + std::string(kTable) + "\n",
      "removing the uplink guard");
}

}  // namespace nodeplane::control
