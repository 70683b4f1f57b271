#include "control/control_api.h"

#include "control/model_json.h"
#include "dataplane/drop_reason.h"
#include "overlay/vxlan.h"

#include <cstring>

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

constexpr const char* kVersion = "0.1.0";

Json countersToJson(const dp::CounterTotals& c) {
  Json j = Json::object();
#define NP_COUNTER_JSON(member, name, help) j[name] = c.member;
  NP_FOREACH_WORKER_COUNTER(NP_COUNTER_JSON)
#undef NP_COUNTER_JSON
  return j;
}

const char* roleName(dp::PortRole r) {
  switch (r) {
    case dp::PortRole::kPod: return "pod";
    case dp::PortRole::kUplink: return "uplink";
    case dp::PortRole::kUnused: return "unused";
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
    : node_(node), backend_(backend) {
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

Result<Json> ControlApi::status() const {
  const NodeSettings& s = node_.settings();
  Json j = {{"version", kVersion},
            {"protocol", kProtocolVersion},
            {"node", s.nodeName},
            {"nodeIp", s.nodeIp.toString()},
            {"podCidr", s.podCidr.toString()},
            {"gatewayIp", s.gatewayIp.toString()},
            {"generation", node_.generation()},
            {"workers", backend_.workerCount()},
            {"pods", node_.pods().size()},
            {"uptimeSeconds", std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - started_)
                                  .count()}};
  j["clusterCidr"] = s.clusterCidr ? Json(s.clusterCidr->toString()) : Json(nullptr);
  j["serviceCidr"] = s.serviceCidr ? Json(s.serviceCidr->toString()) : Json(nullptr);
  j["uplink"] = node_.uplink() ? Json(node_.uplink()->name) : Json(nullptr);
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
    Json j = {{"id", port.id},         {"name", port.name},         {"driver", port.driver},
              {"role", roleName(role)}, {"mac", port.mac.toString()}, {"rxQueues", port.rxQueues},
              {"txQueues", port.txQueues}, {"owner", owner}};
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
  for (const auto& info : dp::kDropReasons) {
    if (info.id == dp::DropReason::kNone) continue;
    const auto i = static_cast<size_t>(info.id);
    uint64_t total = 0;
    Json perWorker = Json::array();
    for (const auto& w : workers) {
      total += w.counters.drops[i];
      perWorker.push_back(w.counters.drops[i]);
    }
    if (total == 0 && !all) continue;
    list.push_back({{"reason", info.name},
                    {"help", info.help},
                    {"packets", total},
                    {"perWorker", perWorker}});
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
    if (!found)
      return makeError(ErrorCode::kNotFound, "pod.detach: no pod " + *ns + "/" + *name);
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

Result<Json> ControlApi::podList() const {
  Json list = Json::array();
  for (const AttachedPod& pod : node_.pods()) list.push_back(podToJson(pod));
  return Json{{"pods", list}};
}

}  // namespace nodeplane::control
