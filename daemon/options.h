// The nodeplane daemon's options (command line or config file, Boost.Program_options) and the
// EAL arguments derived from them. Parsing is pure, so it is unit-tested without EAL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::daemon {

struct DaemonOptions {
  std::string nodeName;
  std::string clusterId;  // among linked clusters (control/cluster_links.h); empty: none
  std::optional<Ipv4Prefix> clusterGlobalCidr;  // Globalnet (control/global_net.h)
  std::optional<Ipv4Prefix> clustersetCidr;     // clusterset services (control/cluster_imports.h)
  uint32_t heartbeatIntervalMs = 100;           // gateway heartbeats (control/cluster_health.h)
  uint32_t gatewayDeadMs = 500;
  uint32_t clusterRekeySeconds = 3600;  // ESP SA generations (control/cluster_links.h)
  Ipv4Address nodeIp;
  uint8_t underlayPrefixLength = 32;           // --node-ip a.b.c.d/len: the uplink's subnet
  std::optional<Ipv4Address> underlayGateway;  // next hop for tunnel endpoints off that subnet
  uint16_t mtu = 1500;                         // underlay (uplink) IP MTU
  uint16_t vxlanPort = 4789;
  uint32_t vxlanVni = 1;
  std::optional<MacAddress> vtepMac;  // default: derived from the node IP
  Ipv4Prefix podCidr;
  std::optional<Ipv4Prefix> clusterCidr;
  std::optional<Ipv4Prefix> serviceCidr;
  std::string uplink;             // devargs or PCI address; empty: no uplink
  std::string hostInterface;      // the host path's kernel-side interface; empty: no host path
  bool uplinkGuard = true;        // nftables guard on a shared (af_packet) uplink
  bool hostDefaultRoute = false;  // the node's own way out is the host path (model.h)
  unsigned mainLcore = 0;
  std::vector<unsigned> workerLcores;
  std::string controlSocket = "/run/nodeplane/control.sock";
  std::string metricsAddress = "127.0.0.1:9964";  // "off": no HTTP endpoint
  std::string controlGroup;  // also allowed on the socket, besides root and our own uid
  size_t controlMaxRequestBytes = 64u << 20;
  unsigned controlIdleTimeoutSeconds = 60;
  unsigned controlConnectionsPerUid = 8;
  std::string stateDir = "/run/nodeplane";  // empty: attachments are not kept across restarts
  std::string logLevel = "info";
  Ipv4Address gatewayIp{0xa9fe0101};  // 169.254.1.1
  uint16_t burstSize = 32;
  uint32_t mbufs = 32767;
  uint32_t idleSleepUs = 0;
  uint32_t icmpErrorsPerSecond = 1000;
  uint32_t conntrackMax = 1 << 20;
  uint32_t flowLogSize = 4096;  // flow log records per worker; 0: none
  uint32_t maglevSize = 16381;
  std::optional<std::pair<uint16_t, uint16_t>> snatPorts;  // unset: by uplink kind
  bool dnsResponder = true;                                // cluster DNS answered by the workers
  std::string clusterDomain = "cluster.local";
  uint32_t dnsTtl = 5;
  std::vector<Ipv4Address> clusterDns;
  bool policyAudit = false;          // every NetworkPolicy in audit mode
  uint32_t maxPolicies = 4096;       // NetworkPolicies with counters on this node
  uint32_t l7FlowsPerWorker = 4096;  // L7-scanned flows a worker can follow at once
  // Connection-tracking idle timeouts, seconds.
  uint32_t ctTcpSyn = 60, ctTcpEstablished = 21600, ctTcpFin = 120, ctTcpTimeWait = 120,
           ctTcpClose = 10, ctUdp = 30, ctUdpReplied = 120, ctIcmp = 30;
  uint16_t rxDescriptors = 1024;
  uint16_t txDescriptors = 1024;
  std::vector<std::string> ealArgs;  // as given after "--"
};

struct ParsedOptions {
  DaemonOptions options;
  bool exitNow = false;  // --help or --version was handled
  std::string output;    // what to print for --help / --version
};

// argv[0] is the program name. Errors are one line naming the option.
Result<ParsedOptions> parseDaemonOptions(int argc, const char* const* argv);

// "1", "1,3", "2-5", "1,4-6" -> lcore ids; empty/invalid -> nullopt.
std::optional<std::vector<unsigned>> parseLcoreList(const std::string& text);

// The full EAL argv (program name first): our lcores and file prefix, then the user's EAL args.
std::vector<std::string> buildEalArgs(const std::string& program, const DaemonOptions& options);

}  // namespace nodeplane::daemon
