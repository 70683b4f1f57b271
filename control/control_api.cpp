#include "control/control_api.h"

#include "control/apply_reader.h"
#include "control/dns_zone.h"

#include <netinet/in.h>
#include "control/model_json.h"
#include "control/trace.h"
#include "control/uplink_guard.h"
#include "core/drop_reason.h"
#include "core/names.h"
#include "lb/conntrack.h"
#include "overlay/vxlan.h"
#include "policy/model_json.h"
#include "policy/reference.h"

#include <cstring>

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

constexpr const char* kVersion = "0.1.0";

Json countersToJson(const CounterTotals& c) {
  Json j = Json::object();
#define NP_COUNTER_JSON(member, name, help) j[name] = c.member;
  NP_FOREACH_WORKER_COUNTER(NP_COUNTER_JSON)
#undef NP_COUNTER_JSON
  return j;
}

const char* roleName(dp::PortRole r) {
  switch (r) {
    case dp::PortRole::kPod:
      return "pod";
    case dp::PortRole::kUplink:
      return "uplink";
    case dp::PortRole::kHost:
      return "host";
    case dp::PortRole::kUnused:
      return "unused";
  }
  return "unused";
}

}  // namespace

Json podToJson(const AttachedPod& pod) {
  Json j = podAttachmentToJson(pod.spec);
  j["port"] = pod.port.id;
  j["portName"] = pod.port.name;
  j["gatewayMac"] = pod.port.mac.toString();
  return j;
}

ControlApi::ControlApi(NodeController& node, dp::DataplaneBackend& backend)
    : node_(node), backend_(backend), flows_(node, backend), capture_(node, backend) {
  ops_["status"] = {"node, addresses, generation, workers, ports, pods",
                    [this](const ArgReader&, const Json&) { return status(); }};
  ops_["ports"] = {"ports with role, MAC and ethdev statistics",
                   [this](const ArgReader&, const Json&) { return ports(); }};
  ops_["workers"] = {"per-worker counters and load",
                     [this](const ArgReader&, const Json&) { return workers(); }};
  ops_["drops"] = {"drop counters by reason; args: {\"all\": bool} to include zeros",
                   [this](const ArgReader& a, const Json& raw) { return drops(a, raw); }};
  ops_["pod.attach"] = {"attach a pod interface (see control/README.md)",
                        [this](const ArgReader& a, const Json& raw) { return podAttach(a, raw); }};
  ops_["pod.detach"] = {"detach by containerId [+ interface] or namespace + name",
                        [this](const ArgReader& a, const Json&) { return podDetach(a); }};
  ops_["pod.list"] = {"attached pods", [this](const ArgReader&, const Json&) { return podList(); }};
  ops_["node.set"] = {"add or replace a node: name, ip, podCidrs, [vtepMac]",
                      [this](const ArgReader&, const Json& raw) { return nodeSet(raw); }};
  ops_["node.delete"] = {"remove a node: name",
                         [this](const ArgReader& a, const Json&) { return nodeDelete(a); }};
  ops_["node.list"] = {"nodes with their tunnel state",
                       [this](const ArgReader&, const Json&) { return nodeList(); }};
  ops_["neighbors"] = {"the underlay ARP table",
                       [this](const ArgReader&, const Json&) { return neighbors(); }};
  ops_["service.set"] = {"add or replace a service with its endpoints (see control/README.md)",
                         [this](const ArgReader&, const Json& raw) { return serviceSet(raw); }};
  ops_["service.endpoints"] = {
      "replace a service's endpoints: namespace, name, endpoints",
      [this](const ArgReader& a, const Json& raw) { return serviceEndpoints(a, raw); }};
  ops_["service.delete"] = {"remove a service: namespace, name",
                            [this](const ArgReader& a, const Json&) { return serviceDelete(a); }};
  ops_["service.list"] = {"services with their backends and Maglev shares",
                          [this](const ArgReader&, const Json&) { return serviceList(); }};
  ops_["flows"] = {"tracked flows; args: service (ns/name), address, port, limit (default 1000)",
                   [this](const ArgReader& a, const Json& raw) { return flows(a, raw); }};
  ops_["flows.flush"] = {
      "end the flows of a service (service: ns/name) or backend (backend: ip:port)",
      [this](const ArgReader& a, const Json&) { return flowsFlush(a); }};
  ops_["affinity"] = {"session-affinity records: client, service, backend slot, idle time",
                      [this](const ArgReader&, const Json&) { return affinity(); }};
  ops_["conntrack"] = {"connection table statistics",
                       [this](const ArgReader&, const Json&) { return conntrackStats(); }};
  ops_["apply"] = {
      "the node's whole desired state at once: generation, nodes, services, policy (see "
      "control/README.md); sections left out are kept, sections given are replaced",
      [this](const ArgReader&, const Json& raw) { return apply(raw); }};
  ops_["trace"] = {
      "a described packet through the real stages, not transmitted: from (ns/name or uplink), "
      "src, dst, protocol, sport, dport, flags, payload, ttl",
      [this](const ArgReader&, const Json& raw) { return tracePacket(node_, backend_, raw); }};
  ops_["dns"] = {
      "a name looked up in the cluster DNS zone the workers answer: name, type (A)",
      [this](const ArgReader&, const Json& raw) { return lookUpName(node_.current(), raw); }};
  ops_["policy.apply"] = {
      "replace the node's policy state: namespaces, pods, networkPolicies, l7Rules, audit "
      "(see control/README.md)",
      [this](const ArgReader&, const Json& raw) { return policyApply(raw); }};
  ops_["policy.list"] = {"NetworkPolicies with their counters, L7 rules with their matches",
                         [this](const ArgReader&, const Json&) { return policyList(); }};
  ops_["cluster.peer.set"] = {
      "add or replace a peer cluster linked by ESP to its gateway; args: clusterId, gatewayIp "
      "(or gatewayIps: active, then standbys), "
      "cidrs (its pod and service prefixes), secret (shared by the two clusters), globalCidr "
      "(Globalnet: its global CIDR, then the only prefix routed to it)",
      [this](const ArgReader& a, const Json& raw) { return clusterPeerSet(a, raw); }};
  ops_["cluster.peer.delete"] = {
      "remove a peer cluster; args: clusterId",
      [this](const ArgReader& a, const Json&) { return clusterPeerDelete(a); }};
  ops_["cluster.gateways.set"] = {
      "this cluster's gateway nodes in order of preference (the first is active); the others "
      "send other clusters' traffic to it through the overlay; args: nodes (empty: this node)",
      [this](const ArgReader& a, const Json& raw) { return clusterGatewaysSet(a, raw); }};
  ops_["cluster.peers"] = {"peer clusters: gateways, prefixes, SPIs, link state",
                           [this](const ArgReader&, const Json&) { return clusterPeers(); }};
  ops_["cluster.export.set"] = {
      "Globalnet: give a service a global address its peers reach it at; args: namespace, name, "
      "globalIp (optional: the lowest free one of the global CIDR)",
      [this](const ArgReader& a, const Json&) { return clusterExportSet(a); }};
  ops_["cluster.export.delete"] = {
      "Globalnet: withdraw a service's global address; args: namespace, name",
      [this](const ArgReader& a, const Json&) { return clusterExportDelete(a); }};
  ops_["cluster.imports"] = {
      "Multi-Cluster Services: what peers export (by service: each cluster's address, ports, "
      "when last announced) and the clusterset services with their addresses",
      [this](const ArgReader&, const Json&) { return clusterImports(); }};
  ops_["cluster.exports"] = {
      "Globalnet: the global CIDR, the egress address, the exported services and their state",
      [this](const ArgReader&, const Json&) { return clusterExports(); }};
  ops_["observe"] = {
      "the flow log: new flows' verdicts (forwarded with their translation, policy-denied with "
      "the policy, l7-denied) and drops with their reason; args: after (cursor), limit (default "
      "100), pod, namespace, verdict, port, protocol, interface",
      [this](const ArgReader& a, const Json&) { return observe(a); }};
  ops_["capture.start"] = {
      "capture a port's packets (npctl capture); args: port (uplink, host, NS/NAME), filter "
      "(tcpdump syntax), snaplen, direction (rx, tx, both)",
      [this](const ArgReader& a, const Json&) { return capture_.start(a); }};
  ops_["capture.read"] = {"the packets a capture session has taken since; args: session",
                          [this](const ArgReader& a, const Json&) { return capture_.read(a); }};
  ops_["capture.stop"] = {"end a capture session; args: session",
                          [this](const ArgReader& a, const Json&) { return capture_.stop(a); }};
  ops_["policy.log"] = {"recent denied flows and L7 events; args: limit (default 100)",
                        [this](const ArgReader& a, const Json&) { return policyLog(a); }};
  ops_["policy.check"] = {
      "how the policies judge a flow: src, dst (addresses), protocol (TCP/UDP/SCTP/ICMP), port",
      [this](const ArgReader& a, const Json&) { return policyCheck(a); }};
  ops_["ops"] = {"this list", [this](const ArgReader&, const Json&) -> Result<Json> {
                   Json out = Json::object();
                   for (const auto& [name, op] : ops_) out[name] = op.help;
                   return out;
                 }};
}

Result<Json> ControlApi::handle(const Request& request) {
  auto it = ops_.find(request.op);
  if (it == ops_.end())
    return makeError(ErrorCode::kUnknownOperation,
                     "unknown op '" + request.op + "' (op \"ops\" lists them)");
  ArgReader args(request.op, request.args);
  return it->second.run(args, request.args);
}

std::string ControlApi::handleLine(std::string_view line) {
  // Only a line that can be an apply is read twice when it is not one.
  if (auto request = line.find("\"apply\"") != std::string_view::npos ? readApplyRequest(line)
                                                                      : std::nullopt) {
    auto reply = apply(std::move(request->state));
    return formatReply(request->id, reply);
  }
  Json id;
  auto request = parseRequest(line, &id);
  if (!request) return formatReply(id, request.error());
  return formatReply(request->id, handle(*request));
}

Result<Json> ControlApi::status() const {
  const NodeSettings& s = node_.settings();
  Json j = {{"version", kVersion},
            {"protocol", kProtocolVersion},
            {"node", s.nodeName},
            {"nodeIp", s.nodeIp.toString()},
            {"podCidr", s.podCidr.toString()},
            {"gatewayIp", s.gatewayIp.toString()},
            {"generation", node_.generation()},
            {"appliedGeneration", node_.appliedGeneration()},
            {"workers", backend_.workerCount()},
            {"pods", node_.pods().size()},
            {"uptimeSeconds", std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - started_)
                                  .count()}};
  j["clusterCidr"] = s.clusterCidr ? Json(s.clusterCidr->toString()) : Json(nullptr);
  j["serviceCidr"] = s.serviceCidr ? Json(s.serviceCidr->toString()) : Json(nullptr);
  j["uplink"] = node_.uplink() ? Json(node_.uplink()->name) : Json(nullptr);
  j["hostInterface"] = node_.hostPort() ? Json(s.hostInterface) : Json(nullptr);
  j["hostDefaultRoute"] = s.hostDefaultRoute && node_.hostPort();
  j["uplinkGuard"] =
      node_.uplinkGuardState().empty() ? Json(nullptr) : Json(node_.uplinkGuardState());
  const auto [snatFirst, snatLast] = snatPortRange(s);
  j["snatPorts"] = std::to_string(snatFirst) + "-" + std::to_string(snatLast);
  j["metrics"] = metricsState_;
  j["dns"] = s.dnsResponder ? Json{{"domain", s.clusterDomain}, {"ttl", s.dnsTtl}} : Json(nullptr);
  j["services"] = node_.serviceRegistry().services().size();
  if (auto* ct = backend_.conntrack()) j["flows"] = ct->live();
  j["overlay"] = {{"vni", s.vni},
                  {"udpPort", s.vxlanPort},
                  {"vtepMac", node_.vtepMac().toString()},
                  {"mtu", s.mtu},
                  {"podMtu", s.mtu - overlay::kOverhead},
                  {"nodes", node_.nodes().size()}};
  return j;
}

Result<Json> ControlApi::ports() const {
  Json list = Json::array();
  auto add = [&](const dp::PortInfo& port, dp::PortRole role, const std::string& owner) {
    Json j = {{"id", port.id},
              {"name", port.name},
              {"driver", port.driver},
              {"role", roleName(role)},
              {"mac", port.mac.toString()},
              {"rxQueues", port.rxQueues},
              {"txQueues", port.txQueues},
              {"owner", owner}};
    if (auto st = backend_.portStats(port.id)) {
      j["linkUp"] = st->linkUp;
      j["linkSpeedMbps"] = st->linkSpeedMbps;
      j["stats"] = {{"rxPackets", st->rxPackets}, {"txPackets", st->txPackets},
                    {"rxBytes", st->rxBytes},     {"txBytes", st->txBytes},
                    {"rxMissed", st->rxMissed},   {"rxErrors", st->rxErrors},
                    {"txErrors", st->txErrors},   {"rxNoMbuf", st->rxNoMbuf}};
    }
    list.push_back(std::move(j));
  };
  if (node_.uplink()) add(*node_.uplink(), dp::PortRole::kUplink, "");
  if (node_.hostPort()) add(node_.hostPort()->port, dp::PortRole::kHost, "node");
  for (const AttachedPod& pod : node_.pods())
    add(pod.port, dp::PortRole::kPod, pod.spec.namespaceName + "/" + pod.spec.name);
  return Json{{"ports", list}};
}

Result<Json> ControlApi::workers() const {
  Json list = Json::array();
  for (const dp::WorkerStats& w : backend_.workerStats()) {
    const uint64_t total = w.counters.busyCycles + w.counters.idleCycles;
    list.push_back({{"index", w.index},
                    {"lcore", w.lcore},
                    {"control", w.control},
                    {"busyPercent", total == 0 ? 0.0 : 100.0 * w.counters.busyCycles / total},
                    {"counters", countersToJson(w.counters)}});
  }
  return Json{{"workers", list}};
}

Result<Json> ControlApi::drops(const ArgReader& args, const Json& raw) const {
  if (auto st = args.onlyFields({"all"}); !st) return st.error();
  bool all = false;
  if (args.has("all")) {
    if (!raw["all"].is_boolean()) return args.error("all", "not a boolean");
    all = raw["all"].get<bool>();
  }
  const auto workers = backend_.workerStats();
  Json list = Json::array();
  for (const auto& info : kDropReasons) {
    if (info.id == DropReason::kNone) continue;
    const auto i = static_cast<size_t>(info.id);
    uint64_t total = 0;
    Json perWorker = Json::array();
    for (const auto& w : workers) {
      total += w.counters.drops[i];
      perWorker.push_back(w.counters.drops[i]);
    }
    if (total == 0 && !all) continue;
    list.push_back(
        {{"reason", info.name}, {"help", info.help}, {"packets", total}, {"perWorker", perWorker}});
  }
  return Json{{"drops", list}};
}

Result<Json> ControlApi::podAttach(const ArgReader&, const Json& raw) {
  auto spec = podAttachmentFromJson("pod.attach", raw);
  if (!spec) return spec.error();
  auto pod = node_.attachPod(*spec);
  if (!pod) return pod.error();
  return podToJson(*pod);
}

Result<Json> ControlApi::podDetach(const ArgReader& args) {
  if (auto st = args.onlyFields({"containerId", "interface", "namespace", "name"}); !st)
    return st.error();
  PodKey key;
  if (args.has("containerId")) {
    auto cid = args.string("containerId");
    if (!cid) return cid.error();
    auto ifname = args.optionalString("interface", "eth0");
    if (!ifname) return ifname.error();
    key = PodKey{*cid, *ifname};
  } else {
    auto ns = args.string("namespace");
    if (!ns) return ns.error();
    auto name = args.string("name");
    if (!name) return name.error();
    auto found = node_.findPod(*ns, *name);
    if (!found) return makeError(ErrorCode::kNotFound, "pod.detach: no pod " + *ns + "/" + *name);
    key = *found;
  }
  if (auto st = node_.detachPod(key); !st) return st.error();
  return Json{{"detached", {{"containerId", key.containerId}, {"interface", key.interface}}},
              {"generation", node_.generation()}};
}

Result<Json> ControlApi::nodeSet(const Json& raw) {
  auto spec = nodeSpecFromJson("node.set", raw);
  if (!spec) return spec.error();
  if (auto st = node_.setNode(*spec); !st) return st.error();
  return Json{{"node", nodeSpecToJson(*spec)}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::nodeDelete(const ArgReader& args) {
  if (auto st = args.onlyFields({"name"}); !st) return st.error();
  auto name = args.string("name");
  if (!name) return name.error();
  if (auto st = node_.deleteNode(*name); !st) return st.error();
  return Json{{"deleted", *name}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::nodeList() const {
  const dp::Snapshot* snap = node_.current();
  Json list = Json::array();
  for (const NodeSpec& n : node_.nodes()) {
    Json j = nodeSpecToJson(n);
    const bool self = n.name == node_.settings().nodeName;
    j["self"] = self;
    if (!self) {
      j["nextHop"] = node_.nextHopFor(n.ip).toString();
      bool resolved = false;
      if (snap && snap->overlay)
        for (size_t i = 0; i < snap->overlay->nodeCount(); ++i)
          if (snap->overlay->node(i).ip == rte_cpu_to_be_32(n.ip.value))
            resolved = snap->overlay->node(i).resolved;
      j["resolved"] = resolved;
      if (!n.vtepMac) {
        const rte_ether_addr e = overlay::defaultVtepMac(n.ip.value);
        MacAddress m;
        std::memcpy(m.bytes.data(), e.addr_bytes, 6);
        j["vtepMac"] = m.toString();
      }
    }
    list.push_back(std::move(j));
  }
  return Json{{"nodes", list}};
}

Result<Json> ControlApi::neighbors() const {
  Json list = Json::array();
  for (const auto& v : node_.neighbors(std::chrono::steady_clock::now()))
    list.push_back({{"ip", v.ip.toString()},
                    {"mac", v.mac ? Json(v.mac->toString()) : Json(nullptr)},
                    {"state", overlay::NeighborTable::stateName(v.state)},
                    {"held", v.held},
                    {"probes", v.probesSent},
                    {"confirmedMsAgo", v.mac ? Json(v.sinceConfirmed.count()) : Json(nullptr)}});
  return Json{{"neighbors", list}};
}

Result<Json> ControlApi::serviceSet(const Json& raw) {
  auto spec = serviceSpecFromJson("service.set", raw);
  if (!spec) return spec.error();
  if (auto st = node_.setService(*spec); !st) return st.error();
  return Json{{"service", spec->key()}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::serviceEndpoints(const ArgReader& args, const Json& raw) {
  if (auto st = args.onlyFields({"namespace", "name", "endpoints"}); !st) return st.error();
  auto ns = args.string("namespace");
  if (!ns) return ns.error();
  auto name = args.string("name");
  if (!name) return name.error();
  if (!args.has("endpoints")) return args.error("endpoints", "missing");
  auto eps = endpointsFromJson("service.endpoints", raw["endpoints"], "endpoints");
  if (!eps) return eps.error();
  if (auto st = node_.setEndpoints(*ns, *name, *eps); !st) return st.error();
  return Json{{"service", *ns + "/" + *name},
              {"endpoints", eps->size()},
              {"generation", node_.generation()}};
}

Result<Json> ControlApi::serviceDelete(const ArgReader& args) {
  if (auto st = args.onlyFields({"namespace", "name"}); !st) return st.error();
  auto ns = args.string("namespace");
  if (!ns) return ns.error();
  auto name = args.string("name");
  if (!name) return name.error();
  if (auto st = node_.deleteService(*ns, *name); !st) return st.error();
  return Json{{"deleted", *ns + "/" + *name}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::serviceList() const {
  const ServiceRegistry& reg = node_.serviceRegistry();
  const dp::Snapshot* snap = node_.current();
  const lb::ServiceTable* table = snap ? snap->services.get() : nullptr;
  Json list = Json::array();
  for (const auto& [key, s] : reg.services()) {
    Json j = serviceSpecToJson(s);
    j.erase("endpoints");
    Json ports = Json::array();
    for (const auto& p : s.ports) {
      Json pj = {{"port", p.port},
                 {"protocol", p.protocol == IPPROTO_UDP ? "UDP" : "TCP"},
                 {"name", p.name}};
      if (p.nodePort) pj["nodePort"] = p.nodePort;
      // The data plane's view: backends, and how many Maglev entries each holds.
      uint32_t index = 0;
      lb::ServiceAccess access;
      const bool found = table && !s.clusterIps.empty() &&
                         table->find(rte_cpu_to_be_32(s.clusterIps[0].value),
                                     rte_cpu_to_be_16(p.port), p.protocol, &index, &access);
      Json backends = Json::array();
      bool anyReady = false;
      for (const auto& e : s.endpoints)
        anyReady |= e.ready && ServiceRegistry::backendPort(p, e).has_value();
      for (const auto& e : s.endpoints) {
        auto bport = ServiceRegistry::backendPort(p, e);
        if (!bport) continue;
        Json b = {{"ip", e.ip.toString()},
                  {"port", *bport},
                  {"local", ServiceRegistry::isLocal(e, node_.settings())},
                  {"ready", e.ready},
                  {"usable", anyReady ? e.ready : (e.serving && e.terminating)},
                  {"weight", e.weight},
                  {"maglevEntries", 0}};
        backends.push_back(b);
      }
      if (found) {
        const lb::ServicePortEntry& sp = table->port(index);
        pj["maglevTableSize"] = sp.tableAll >= 0 ? table->maglevTable(sp.tableAll).size : 0;
        if (sp.tableAll >= 0) {
          std::vector<uint32_t> counts(sp.backendCount, 0);
          for (uint16_t e : table->maglevTable(sp.tableAll)) ++counts[e];
          for (uint32_t i = 0; i < sp.backendCount; ++i) {
            const lb::ServiceBackend& b = table->backend(sp, i);
            for (auto& bj : backends)
              if (bj["ip"] == Ipv4Address{rte_be_to_cpu_32(b.ip)}.toString() &&
                  bj["port"] == rte_be_to_cpu_16(b.port))
                bj["maglevEntries"] = counts[i];
          }
        }
        // New flows dropped because every SNAT source port towards the backend was taken.
        uint64_t exhausted = 0;
        for (uint32_t i = 0; i < sp.backendCount; ++i) {
          const lb::ServiceBackend& b = table->backend(sp, i);
          const uint64_t n = reg.snatExhausted(b.slot);
          exhausted += n;
          for (auto& bj : backends)
            if (bj["ip"] == Ipv4Address{rte_be_to_cpu_32(b.ip)}.toString() &&
                bj["port"] == rte_be_to_cpu_16(b.port))
              bj["snatPortsExhausted"] = n;
        }
        pj["snatPortsExhausted"] = exhausted;
      }
      pj["backends"] = backends;
      ports.push_back(pj);
    }
    j["ports"] = ports;
    list.push_back(j);
  }
  return Json{{"services", list}, {"maglevTablesCached", reg.maglevTables()}};
}

namespace {

std::string endpointText(rte_be32_t ip, rte_be16_t port) {
  return Ipv4Address{rte_be_to_cpu_32(ip)}.toString() + ":" +
         std::to_string(rte_be_to_cpu_16(port));
}

const char* protoText(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    default:
      return "?";
  }
}

}  // namespace

Result<Json> ControlApi::flows(const ArgReader& args, const Json& raw) const {
  if (auto st = args.onlyFields({"service", "address", "port", "limit"}); !st) return st.error();
  lb::ConnTracker* ct = backend_.conntrack();
  if (ct == nullptr) return Json{{"flows", Json::array()}, {"total", 0}};
  std::string service;
  if (args.has("service")) {
    auto v = args.string("service");
    if (!v) return v.error();
    service = *v;
  }
  std::optional<rte_be32_t> address;
  if (args.has("address")) {
    auto v = args.string("address");
    if (!v) return v.error();
    auto a = Ipv4Address::parse(*v);
    if (!a) return args.error("address", "'" + *v + "' is not an IPv4 address");
    address = rte_cpu_to_be_32(a->value);
  }
  std::optional<rte_be16_t> port;
  if (args.has("port")) {
    auto v = args.integer("port", 1, 65535);
    if (!v) return v.error();
    port = rte_cpu_to_be_16(static_cast<uint16_t>(*v));
  }
  int64_t limit = 1000;
  if (args.has("limit")) {
    auto v = args.integer("limit", 1, 1000000);
    if (!v) return v.error();
    limit = *v;
  }
  (void)raw;
  const ServiceRegistry& reg = node_.serviceRegistry();
  const uint32_t now = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - started_)
                                                 .count());
  (void)now;
  Json list = Json::array();
  size_t total = 0;
  for (unsigned s = 0; s < ct->shardCount(); ++s) {
    const lb::ConnShard& shard = ct->shard(s);
    for (uint32_t i = 0; i < shard.slots(); ++i) {
      const lb::ConnEntry e = shard.entry(i);  // a copy: the owner may be changing it
      const lb::ConnState state = static_cast<lb::ConnState>(e.stateWord & 0xff);
      if (state == lb::ConnState::kFree || state == lb::ConnState::kAffinity) continue;
      const std::string svc = e.servicePort ? reg.portName(e.servicePort) : "";
      if (!service.empty() && svc.rfind(service + ":", 0) != 0) continue;
      if (address && e.orig.src != *address && e.orig.dst != *address && e.reply.src != *address &&
          e.reply.dst != *address)
        continue;
      if (port && e.orig.sport != *port && e.orig.dport != *port && e.reply.sport != *port &&
          e.reply.dport != *port)
        continue;
      ++total;
      if (static_cast<int64_t>(list.size()) >= limit) continue;
      const uint8_t flags = static_cast<uint8_t>(e.stateWord >> 8);
      list.push_back({{"protocol", protoText(e.orig.proto)},
                      {"state", lb::connStateName(state)},
                      {"orig", endpointText(e.orig.src, e.orig.sport) + " -> " +
                                   endpointText(e.orig.dst, e.orig.dport)},
                      {"reply", endpointText(e.reply.src, e.reply.sport) + " -> " +
                                    endpointText(e.reply.dst, e.reply.dport)},
                      {"service", svc},
                      {"dnat", (flags & lb::kConnDnat) != 0},
                      {"snat", (flags & lb::kConnSnat) != 0},
                      {"worker", s}});
    }
  }
  return Json{{"flows", list}, {"total", total}};
}

Result<Json> ControlApi::flowsFlush(const ArgReader& args) {
  if (auto st = args.onlyFields({"service", "backend"}); !st) return st.error();
  std::optional<std::string> service;
  std::optional<std::pair<Ipv4Address, uint16_t>> backend;
  if (args.has("service")) {
    auto v = args.string("service");
    if (!v) return v.error();
    service = *v;
  }
  if (args.has("backend")) {
    auto v = args.string("backend");
    if (!v) return v.error();
    const size_t colon = v->rfind(':');
    auto ip = Ipv4Address::parse(v->substr(0, colon));
    unsigned long port = 0;
    try {
      port = colon == std::string::npos ? 0 : std::stoul(v->substr(colon + 1));
    } catch (const std::exception&) {
    }
    if (!ip || port == 0 || port > 65535)
      return args.error("backend", "'" + *v + "' is not ip:port");
    backend = std::make_pair(*ip, static_cast<uint16_t>(port));
  }
  if (!service && !backend) return invalidArgument("flows.flush: give 'service' or 'backend'");
  auto n = node_.flushFlows(service, backend);
  if (!n) return n.error();
  return Json{{"backendsFlushed", *n}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::affinity() const {
  lb::ConnTracker* ct = backend_.conntrack();
  Json list = Json::array();
  if (ct == nullptr) return Json{{"records", list}};
  const dp::Snapshot* snap = node_.current();
  const lb::ServiceTable* table = snap ? snap->services.get() : nullptr;
  for (unsigned s = 0; s < ct->shardCount(); ++s) {
    const lb::ConnShard& shard = ct->shard(s);
    for (uint32_t i = 0; i < shard.slots(); ++i) {
      const lb::ConnEntry e = shard.entry(i);
      if (static_cast<lb::ConnState>(e.stateWord & 0xff) != lb::ConnState::kAffinity) continue;
      Json j = {{"client", Ipv4Address{rte_be_to_cpu_32(e.orig.src)}.toString()},
                {"service", node_.serviceRegistry().portName(e.servicePort)},
                {"timeoutMs", e.affinityTimeoutMs},
                {"backendAlive", table != nullptr && table->alive(e.backendSlot, e.backendTag)},
                {"worker", s}};
      list.push_back(j);
    }
  }
  return Json{{"records", list}};
}

Result<Json> ControlApi::conntrackStats() const {
  lb::ConnTracker* ct = backend_.conntrack();
  if (ct == nullptr) return Json{{"entries", 0}, {"capacity", 0}};
  Json shards = Json::array();
  uint64_t inserts = 0, evictions = 0, fullDrops = 0, expired = 0, deletes = 0;
  for (unsigned s = 0; s < ct->shardCount(); ++s) {
    const lb::ConnShard& shard = ct->shard(s);
    const auto& st = shard.stats();
    shards.push_back({{"worker", s},
                      {"entries", shard.live()},
                      {"capacity", shard.capacity()},
                      {"inserts", st.inserts.read()},
                      {"evictions", st.evictions.read()},
                      {"fullDrops", st.fullDrops.read()},
                      {"expired", st.expired.read()}});
    inserts += st.inserts.read();
    evictions += st.evictions.read();
    fullDrops += st.fullDrops.read();
    expired += st.expired.read();
    deletes += st.deletes.read();
  }
  const auto& t = ct->timeouts();
  return Json{{"entries", ct->live()},
              {"capacity", ct->capacity()},
              {"bytesPerFlow", ct->capacity() ? ct->memoryBytes() / ct->capacity() : 0},
              {"entryBytes", sizeof(lb::ConnEntry)},
              {"memoryBytes", ct->memoryBytes()},
              {"inserts", inserts},
              {"evictions", evictions},
              {"fullDrops", fullDrops},
              {"expired", expired},
              {"removed", deletes},
              {"timeoutsSeconds",
               {{"tcpSyn", t.tcpSyn / 1000},
                {"tcpEstablished", t.tcpEstablished / 1000},
                {"tcpFin", t.tcpFin / 1000},
                {"tcpTimeWait", t.tcpTimeWait / 1000},
                {"tcpClose", t.tcpClose / 1000},
                {"udp", t.udp / 1000},
                {"udpStream", t.udpReplied / 1000},
                {"icmp", t.icmp / 1000}}},
              {"shards", shards}};
}

Result<Json> ControlApi::podList() const {
  Json list = Json::array();
  for (const AttachedPod& pod : node_.pods()) list.push_back(podToJson(pod));
  return Json{{"pods", list}};
}

Result<Json> ControlApi::apply(const Json& raw) {
  return apply(desiredStateFromJson(raw));
}

Result<Json> ControlApi::apply(Result<DesiredState> state) {
  const auto started = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  if (!state) {
    applyStats_.record(seconds(), false);
    return state.error();
  }
  auto result = node_.applyDesired(std::move(*state));
  applyStats_.record(seconds(), result.ok());
  if (!result) return result.error();
  return Json{
      {"generation", result->generation},       {"snapshot", result->snapshot},
      {"nodesChanged", result->nodesChanged},   {"servicesChanged", result->servicesChanged},
      {"policyChanged", result->policyChanged}, {"exportsChanged", result->exportsChanged}};
}

Result<Json> ControlApi::policyApply(const Json& raw) {
  auto state = policy::policyStateFromJson(raw);
  if (!state) return state.error();
  if (auto st = node_.applyPolicy(std::move(*state)); !st) return st.error();
  const policy::PolicyTable* t = node_.policyTable();
  return Json{{"generation", t->generation()},
              {"classifierRules", t->compiled().rules.size()},
              {"isolatedIngress", t->compiled().isolatedIngress},
              {"isolatedEgress", t->compiled().isolatedEgress},
              {"l7Attachments", t->l7() ? t->l7()->attachments().size() : 0}};
}

Result<Json> ControlApi::policyList() const {
  const policy::PolicyTable* t = node_.policyTable();
  if (t == nullptr) return Json{{"applied", false}, {"policies", Json::array()}};
  Json list = Json::array();
  const auto& summaries = t->compiled().policies;
  for (size_t i = 0; i < summaries.size(); ++i) {
    const policy::NetworkPolicy& p = t->state().policies[i];
    const auto& sum = summaries[i];
    const auto totals = t->runtime().totals(t->counterSlot(static_cast<uint32_t>(i)));
    Json types = Json::array();
    if (p.ingress) types.push_back("Ingress");
    if (p.egress) types.push_back("Egress");
    list.push_back({{"namespace", p.namespaceName},
                    {"name", p.name},
                    {"podSelector", p.podSelector.toString()},
                    {"policyTypes", types},
                    {"audit", sum.audit},
                    {"localPods", sum.localPods},
                    {"classifierRules", sum.rules},
                    {"allowed", totals.allowed},
                    {"denied", totals.denied},
                    {"auditDenied", totals.auditDenied},
                    {"spec", policy::networkPolicyToJson(p)}});
  }
  Json out = {{"applied", true},
              {"generation", t->generation()},
              {"audit", t->state().audit},
              {"classifierRules", t->compiled().rules.size()},
              {"isolatedIngress", t->compiled().isolatedIngress},
              {"isolatedEgress", t->compiled().isolatedEgress},
              {"namespaces", t->state().namespaces.size()},
              {"pods", t->state().pods.size()},
              {"policies", list}};
  Json l7 = {{"attachments", Json::array()}, {"rules", Json::array()}};
  if (const policy::L7Database* db = t->l7()) {
    for (const auto& a : db->attachments())
      l7["attachments"].push_back(
          {{"pod", a.pods}, {"ip", a.pod.toString()}, {"port", a.port}, {"ruleset", a.ruleset}});
    for (size_t i = 0; i < db->matches().size(); ++i) {
      const auto& m = db->matches()[i];
      l7["rules"].push_back({{"source", m.source},
                             {"action", policy::l7ActionName(m.action)},
                             {"expression", m.expression},
                             {"matches", db->matchCount(i)}});
    }
    unsigned inUse = 0;
    for (unsigned w = 0; w < backend_.workerCount(); ++w) inUse += db->inUse(w);
    l7["streamBytes"] = db->streamBytes();
    l7["flowsPerWorker"] = db->flowsPerWorker();
    l7["flowsInUse"] = inUse;
  }
  out["l7"] = l7;
  return out;
}

Result<Json> ControlApi::policyLog(const ArgReader& args) const {
  const policy::PolicyRuntime* rt = node_.policyRuntime();
  size_t limit = 100;
  if (args.has("limit")) {
    auto l = args.integer("limit", 1, 1000);
    if (!l) return l.error();
    limit = static_cast<size_t>(*l);
  }
  Json records = Json::array();
  if (rt != nullptr) {
    const auto& recent = rt->recent();
    const size_t first = recent.size() > limit ? recent.size() - limit : 0;
    const policy::PolicyTable* t = node_.policyTable();
    for (size_t i = first; i < recent.size(); ++i) {
      const auto& e = recent[i];
      const auto& r = e.record;
      Json j = {{"unixMs", e.unixMs},
                {"event", policy::policyEventName(r.event)},
                {"protocol", policy::protocolName(r.protocol)},
                {"src", Ipv4Address{rte_be_to_cpu_32(r.src)}.toString()},
                {"sport", rte_be_to_cpu_16(r.sport)},
                {"dst", Ipv4Address{rte_be_to_cpu_32(r.dst)}.toString()},
                {"dport", rte_be_to_cpu_16(r.dport)},
                {"worker", r.worker}};
      if (!e.policy.empty()) j["policy"] = e.policy;
      if (r.event == policy::PolicyEvent::kL7Deny || r.event == policy::PolicyEvent::kL7Log) {
        const policy::L7Database* db = t ? t->l7() : nullptr;
        if (r.slot == 0)
          j["l7"] = "no allow rule matched the request";
        else if (db && db->serial() == r.l7Serial && r.slot <= db->matches().size())
          j["l7"] = db->matches()[r.slot - 1].source;
      }
      records.push_back(j);
    }
  }
  return Json{{"records", records}, {"suppressed", rt ? rt->suppressed() : 0}};
}

Result<Json> ControlApi::clusterPeerSet(const ArgReader& args, const Json& raw) {
  if (auto st = args.onlyFields({"clusterId", "gatewayIp", "gatewayIps", "cidrs", "secret",
                                 "globalCidr", "tunnel", "vni"});
      !st)
    return st.error();
  ClusterPeerSpec spec;
  auto id = args.string("clusterId");
  if (!id) return id.error();
  spec.clusterId = *id;
  // One gateway (gatewayIp), or several in order of preference (gatewayIps).
  if (raw.contains("gatewayIp") == raw.contains("gatewayIps"))
    return args.error("gatewayIps", "give gatewayIp (one address) or gatewayIps (a list)");
  const Json gateways =
      raw.contains("gatewayIp") ? Json::array({raw["gatewayIp"]}) : raw["gatewayIps"];
  const char* field = raw.contains("gatewayIp") ? "gatewayIp" : "gatewayIps";
  if (!gateways.is_array()) return args.error(field, "not an array of IPv4 addresses");
  for (const Json& g : gateways) {
    auto ip = g.is_string() ? Ipv4Address::parse(g.get<std::string>()) : std::nullopt;
    if (!ip) return args.error(field, g.dump() + " is not an IPv4 address");
    spec.gateways.push_back(*ip);
  }
  if (raw.contains("globalCidr")) {
    const Json& g = raw["globalCidr"];
    auto prefix = g.is_string() ? Ipv4Prefix::parse(g.get<std::string>()) : std::nullopt;
    if (!prefix)
      return args.error("globalCidr", g.dump() + " is not an IPv4 CIDR with host bits zero");
    spec.globalCidr = *prefix;
  }
  if (raw.contains("cidrs") && !raw["cidrs"].is_array())
    return args.error("cidrs", "not an array of IPv4 CIDRs");
  if (!raw.contains("cidrs") && !spec.globalCidr)
    return args.error("cidrs", "not an array of IPv4 CIDRs");
  for (const Json& c : raw.contains("cidrs") ? raw["cidrs"] : Json::array()) {
    auto prefix = c.is_string() ? Ipv4Prefix::parse(c.get<std::string>()) : std::nullopt;
    if (!prefix) return args.error("cidrs", c.dump() + " is not an IPv4 CIDR with host bits zero");
    spec.cidrs.push_back(*prefix);
  }
  auto tunnel = args.optionalString("tunnel", "esp");
  if (!tunnel) return tunnel.error();
  if (*tunnel != "esp" && *tunnel != "vxlan")
    return args.error("tunnel", "'" + *tunnel + "' is not esp or vxlan");
  spec.tunnel =
      *tunnel == "vxlan" ? ClusterPeerSpec::Tunnel::kVxlan : ClusterPeerSpec::Tunnel::kEsp;
  if (raw.contains("vni")) {
    auto vni = args.integer("vni", 1, 0xffffff);
    if (!vni) return vni.error();
    spec.vni = static_cast<uint32_t>(*vni);
  }
  auto secret = spec.tunnel == ClusterPeerSpec::Tunnel::kEsp ? args.string("secret")
                                                             : args.optionalString("secret", "");
  if (!secret) return secret.error();
  spec.secret = *secret;
  if (auto st = node_.setClusterPeer(spec); !st) return st.error();
  return Json{{"clusterId", spec.clusterId}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::clusterPeerDelete(const ArgReader& args) {
  if (auto st = args.onlyFields({"clusterId"}); !st) return st.error();
  auto id = args.string("clusterId");
  if (!id) return id.error();
  if (auto st = node_.deleteClusterPeer(*id); !st) return st.error();
  return Json{{"deleted", *id}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::clusterPeers() const {
  Json list = Json::array();
  const dp::Snapshot* snap = node_.current();
  const auto now = ClusterHealth::Clock::now();
  const GatewayChoice& choice = node_.gatewayChoice();
  size_t link = 0;
  for (const auto& [id, peer] : node_.clusterPeers()) {
    Json cidrs = Json::array();
    for (const Ipv4Prefix& c : peer.spec.cidrs) cidrs.push_back(c.toString());
    auto chosen = choice.peers.find(id);
    const Ipv4Address inUse =
        chosen != choice.peers.end() ? chosen->second : peer.spec.gateways.front();
    Json j = {
        {"clusterId", id},
        {"gatewayIp", inUse.toString()},
        {"cidrs", cidrs},
        {"globalCidr", peer.spec.globalCidr ? Json(peer.spec.globalCidr->toString()) : Json()},
        {"tunnel",
         peer.spec.tunnel == ClusterPeerSpec::Tunnel::kVxlan ? "vxlan" : "esp-aes-gcm-128"},
        {"gateways", Json::array()}};
    if (peer.spec.tunnel == ClusterPeerSpec::Tunnel::kVxlan) j["vni"] = peer.spec.vni;
    for (size_t gi = 0; gi < peer.spec.gateways.size(); ++gi, ++link) {
      const GatewaySas& sas = peer.gateways[gi];
      const ClusterHealth::State health = node_.clusterHealth().peer(id, sas.gateway, now);
      auto generation = [](const auto& set) { return set ? Json(set->generation) : Json(); };
      Json g = {{"ip", sas.gateway.toString()},
                {"inUse", sas.gateway == inUse},
                {"alive", health.alive},
                {"heartbeatsReceived", health.received},
                {"lastHeardMs", health.heard ? Json(health.lastHeardMs) : Json()},
                // SA generations (cluster_links.h): sealed with, begun, learned from the peer.
                {"outboundGeneration", generation(sas.outbound)},
                {"pendingGeneration", generation(sas.pending)},
                {"inboundGeneration", generation(sas.inbound)},
                {"previousInboundGeneration", generation(sas.previous)},
                {"sealedMost", sas.outbound ? Json(sas.outbound->mostSealed()) : Json()},
                {"outboundSpis", Json::array()},
                {"inboundSpis", Json::array()}};
      if (sas.outbound)
        for (const auto& sa : sas.outbound->byWorker) g["outboundSpis"].push_back(sa->spi());
      if (sas.inbound)
        for (const auto& in : sas.inbound->byIndex) g["inboundSpis"].push_back(in.spi);
      if (snap && snap->clusterLinks && link < snap->clusterLinks->links.size()) {
        g["resolved"] = snap->clusterLinks->links[link].resolved;
        g["innerMtu"] = snap->clusterLinks->links[link].innerMtu;
      }
      if (sas.gateway == inUse)  // the gateway in use, also at the top (one-gateway peers)
        for (const char* k :
             {"outboundSpis", "inboundSpis", "resolved", "innerMtu", "outboundGeneration",
              "pendingGeneration", "inboundGeneration", "previousInboundGeneration", "sealedMost"})
          if (g.contains(k)) j[k] = g[k];
      j["gateways"].push_back(std::move(g));
    }
    list.push_back(std::move(j));
  }
  Json local = Json::array();
  for (const std::string& n : node_.clusterGateways()) {
    const ClusterHealth::State health = node_.clusterHealth().node(n, now);
    const bool self = n == node_.settings().nodeName;
    local.push_back({{"node", n},
                     {"alive", self || health.alive},
                     {"heartbeatsReceived", health.received},
                     {"lastHeardMs", health.heard ? Json(health.lastHeardMs) : Json()}});
  }
  const auto& global = node_.settings().globalCidr;
  const std::string active = node_.activeClusterGateway();
  return Json{{"clusterId", node_.settings().clusterId},
              {"globalCidr", global ? Json(global->toString()) : Json()},
              {"gateways", node_.clusterGateways()},
              {"gatewayHealth", local},
              {"activeGateway", active},
              {"role", active == node_.settings().nodeName ? "gateway" : "via-gateway"},
              {"peers", list}};
}

Result<Json> ControlApi::clusterGatewaysSet(const ArgReader& args, const Json& raw) {
  if (auto st = args.onlyFields({"nodes"}); !st) return st.error();
  if (!raw.contains("nodes") || !raw["nodes"].is_array())
    return args.error("nodes", "not an array of node names");
  std::vector<std::string> nodes;
  for (const Json& n : raw["nodes"]) {
    if (!n.is_string()) return args.error("nodes", n.dump() + " is not a node name");
    nodes.push_back(n.get<std::string>());
  }
  if (auto st = node_.setClusterGateways(std::move(nodes)); !st) return st.error();
  return Json{{"gateways", node_.clusterGateways()},
              {"activeGateway", node_.activeClusterGateway()},
              {"generation", node_.generation()}};
}

namespace {

Result<std::string> serviceKeyArg(const ArgReader& args) {
  auto ns = args.string("namespace");
  if (!ns) return ns.error();
  auto name = args.string("name");
  if (!name) return name.error();
  if (!isDnsLabel(*ns)) return args.error("namespace", "'" + *ns + "' is not a DNS label");
  if (!isDnsLabel(*name)) return args.error("name", "'" + *name + "' is not a DNS label");
  return *ns + "/" + *name;
}

}  // namespace

Result<Json> ControlApi::clusterExportSet(const ArgReader& args) {
  if (auto st = args.onlyFields({"namespace", "name", "globalIp"}); !st) return st.error();
  auto key = serviceKeyArg(args);
  if (!key) return key.error();
  auto text = args.optionalString("globalIp", "");
  if (!text) return text.error();
  std::optional<Ipv4Address> wanted;
  if (!text->empty()) {
    wanted = Ipv4Address::parse(*text);
    if (!wanted) return args.error("globalIp", "'" + *text + "' is not an IPv4 address");
  }
  auto ip = node_.exportService(*key, wanted);
  if (!ip) return ip.error();
  return Json{{"service", *key},
              {"globalIp", ip->value ? Json(ip->toString()) : Json()},
              {"state", exportState(*key, node_.serviceRegistry().services(), node_.settings())},
              {"generation", node_.generation()}};
}

Result<Json> ControlApi::clusterExportDelete(const ArgReader& args) {
  if (auto st = args.onlyFields({"namespace", "name"}); !st) return st.error();
  auto key = serviceKeyArg(args);
  if (!key) return key.error();
  if (auto st = node_.unexportService(*key); !st) return st.error();
  return Json{{"deleted", *key}, {"generation", node_.generation()}};
}

Result<Json> ControlApi::clusterImports() const {
  const auto now = std::chrono::steady_clock::now();
  Json imports = Json::array();
  for (const auto& [key, clusters] : node_.imports().services()) {
    Json list = Json::array();
    for (const auto& [id, s] : clusters) {
      Json ports = Json::array();
      for (const AnnouncedPort& p : s.ports)
        ports.push_back({{"name", p.name},
                         {"protocol", p.protocol == IPPROTO_UDP ? "UDP" : "TCP"},
                         {"port", p.port}});
      Json entry = {
          {"clusterId", id},
          {"address", s.headless ? Json() : Json(s.address.toString())},
          {"ports", ports},
          {"lastSeenMs",
           std::chrono::duration_cast<std::chrono::milliseconds>(now - s.lastSeen).count()}};
      if (s.headless) {
        entry["headless"] = true;
        entry["endpoints"] = Json::array();
        for (const AnnouncedEndpoint& e : s.endpoints)
          entry["endpoints"].push_back(
              {{"address", e.address.toString()}, {"hostname", e.hostname}});
      }
      list.push_back(std::move(entry));
    }
    imports.push_back({{"service", key}, {"clusters", list}});
  }
  Json clusterset = Json::array();
  const auto& services = node_.serviceRegistry().services();
  for (const auto& [serviceKey, s] : services) {
    if (!isClustersetKey(serviceKey)) continue;
    const std::string key =
        serviceKey.substr(0, serviceKey.size() - std::strlen(kClustersetSuffix));
    auto vip = node_.clustersetVips().find(key);
    Json j = {{"service", key},
              {"ip", vip != node_.clustersetVips().end() ? Json(vip->second.toString()) : Json()},
              {"headless", s.clusterIps.empty()},
              {"backends", Json::array()}};
    for (const EndpointSpec& e : s.endpoints) {
      Json b = {{"ip", e.ip.toString()},
                {"cluster", e.nodeName.starts_with("cluster:") ? e.nodeName.substr(8)
                                                               : node_.settings().clusterId},
                {"ready", e.ready}};
      if (!e.hostname.empty()) b["hostname"] = e.hostname;
      j["backends"].push_back(std::move(b));
    }
    clusterset.push_back(std::move(j));
  }
  const auto& cidr = node_.settings().clustersetCidr;
  return Json{{"clusterId", node_.settings().clusterId},
              {"clustersetCidr", cidr ? Json(cidr->toString()) : Json()},
              {"domain", node_.settings().clustersetDomain},
              {"imports", imports},
              {"clusterset", clusterset}};
}

Result<Json> ControlApi::clusterExports() const {
  const auto& global = node_.settings().globalCidr;
  const auto& services = node_.serviceRegistry().services();
  Json list = Json::array();
  for (const auto& [key, ip] : node_.exports()) {
    auto it = services.find(key);
    const bool active = it != services.end() && !it->second.clusterIps.empty();
    Json endpoints = Json::array();
    for (const GlobalIngress& g : node_.globalIngress())
      if (g.endpoint && g.service == key)
        endpoints.push_back({{"ip", g.localIp.toString()},
                             {"globalIp", g.globalIp.toString()},
                             {"hostname", g.hostname}});
    list.push_back({{"service", key},
                    {"globalIp", ip.value ? Json(ip.toString()) : Json()},
                    {"clusterIp", active ? Json(it->second.clusterIps.front().toString()) : Json()},
                    {"state", exportState(key, services, node_.settings())},
                    {"endpoints", endpoints}});
  }
  return Json{{"clusterId", node_.settings().clusterId},
              {"globalCidr", global ? Json(global->toString()) : Json()},
              {"globalEgressIp", global ? Json(globalEgressIp(*global).toString()) : Json()},
              {"exports", list}};
}

Result<Json> ControlApi::observe(const ArgReader& args) const {
  auto filter = readFlowFilter(args);
  if (!filter) return filter.error();
  size_t limit = 100;
  if (args.has("limit")) {
    auto l = args.integer("limit", 1, static_cast<int64_t>(FlowObserver::kHistory));
    if (!l) return l.error();
    limit = static_cast<size_t>(*l);
  }
  std::optional<uint64_t> after;
  if (args.has("after")) {
    auto a = args.integer("after", 0, INT64_MAX);
    if (!a) return a.error();
    after = static_cast<uint64_t>(*a);
  }
  return flows_.query(*filter, after, limit);
}

Result<Json> ControlApi::policyCheck(const ArgReader& args) const {
  const policy::PolicyTable* t = node_.policyTable();
  if (t == nullptr) return makeError(ErrorCode::kNotFound, "policy.check: no policy applied yet");
  auto src = args.string("src");
  if (!src) return src.error();
  auto dst = args.string("dst");
  if (!dst) return dst.error();
  auto s = Ipv4Address::parse(*src);
  auto d = Ipv4Address::parse(*dst);
  if (!s)
    return invalidArgument("policy.check: field 'src': '" + *src + "' is not an IPv4 address");
  if (!d)
    return invalidArgument("policy.check: field 'dst': '" + *dst + "' is not an IPv4 address");
  auto proto = args.optionalString("protocol", "TCP");
  if (!proto) return proto.error();
  policy::FlowQuery q{*s, *d, 0, 0};
  if (*proto == "TCP")
    q.protocol = policy::kProtoTcp;
  else if (*proto == "UDP")
    q.protocol = policy::kProtoUdp;
  else if (*proto == "SCTP")
    q.protocol = policy::kProtoSctp;
  else if (*proto == "ICMP")
    q.protocol = 1;
  else
    return invalidArgument("policy.check: field 'protocol': '" + *proto +
                           "' is not TCP, UDP, SCTP or ICMP");
  if (args.has("port")) {
    auto port = args.integer("port", 0, 65535);
    if (!port) return port.error();
    q.dport = static_cast<uint16_t>(*port);
  }
  const auto effective = policy::referenceVerdict(t->state(), q, false);
  const auto audit = policy::referenceVerdict(t->state(), q, true);
  return Json{{"allowed", effective.allowed()},
              {"egressAllowed", effective.egressAllowed},
              {"ingressAllowed", effective.ingressAllowed},
              {"auditAllowed", audit.allowed()},
              {"srcLocal", t->localPods().contains(*s)},
              {"dstLocal", t->localPods().contains(*d)}};
}

}  // namespace nodeplane::control
