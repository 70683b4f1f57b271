#include "control/flow_observer.h"

#include <netinet/in.h>
#include <rte_byteorder.h>
#include <rte_tcp.h>

#include <strings.h>
#include <algorithm>
#include <chrono>
#include <map>

#include "core/drop_reason.h"
#include "policy/l7.h"
#include "policy/model.h"
#include "policy/runtime.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

// What a query resolves addresses and ids to, gathered once per query.
struct Names {
  std::map<uint32_t, const PodAttachment*> podsByIp;  // host order
  std::map<uint16_t, std::string> ports;
};

Names namesOf(const NodeController& node) {
  Names n;
  for (const AttachedPod& pod : node.pods())
    n.ports[pod.port.id] = pod.spec.namespaceName + "/" + pod.spec.name;
  if (node.uplink()) n.ports[node.uplink()->id] = "uplink";
  if (node.hostPort()) n.ports[node.hostPort()->port.id] = "host";
  return n;
}

const char* protocolText(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_ICMP:
      return "ICMP";
    case IPPROTO_SCTP:
      return "SCTP";
    default:
      return "";
  }
}

std::string tcpFlagsText(uint8_t f) {
  static constexpr std::pair<uint8_t, const char*> kFlags[] = {{RTE_TCP_SYN_FLAG, "SYN"},
                                                               {RTE_TCP_ACK_FLAG, "ACK"},
                                                               {RTE_TCP_FIN_FLAG, "FIN"},
                                                               {RTE_TCP_RST_FLAG, "RST"},
                                                               {RTE_TCP_PSH_FLAG, "PSH"}};
  std::string out;
  for (const auto& [bit, name] : kFlags) {
    if (!(f & bit)) continue;
    if (!out.empty()) out += ",";
    out += name;
  }
  return out;
}

}  // namespace

Result<FlowFilter> readFlowFilter(const ArgReader& args) {
  FlowFilter f;
  for (const char* field : {"pod", "namespace", "verdict", "interface"}) {
    if (!args.has(field)) continue;
    auto v = args.string(field);
    if (!v) return v.error();
    if (v->empty()) return invalidArgument(std::string(field) + ": empty");
    const std::string name = field;
    if (name == "pod") f.pod = *v;
    if (name == "namespace") f.ns = *v;
    if (name == "interface") f.interface = *v;
    if (name == "verdict") {
      bool known = false;
      for (auto e : {dp::FlowEvent::kForwarded, dp::FlowEvent::kDropped,
                     dp::FlowEvent::kPolicyDenied, dp::FlowEvent::kL7Denied})
        known |= *v == dp::flowEventName(e);
      if (!known)
        return invalidArgument("verdict: '" + *v +
                               "' is not one of forwarded, dropped, policy-denied, l7-denied");
      f.verdict = *v;
    }
  }
  if (args.has("port")) {
    auto p = args.integer("port", 0, 65535);
    if (!p) return p.error();
    f.port = static_cast<uint16_t>(*p);
  }
  if (args.has("protocol")) {
    auto p = args.string("protocol");
    if (!p) return p.error();
    static constexpr std::pair<const char*, uint8_t> kProtocols[] = {
        {"tcp", IPPROTO_TCP}, {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP}, {"sctp", IPPROTO_SCTP}};
    for (const auto& [name, number] : kProtocols)
      if (strcasecmp(p->c_str(), name) == 0) f.protocol = number;
    if (!f.protocol) return invalidArgument("protocol: '" + *p + "' is not tcp, udp, icmp or sctp");
  }
  return f;
}

size_t FlowObserver::drain() {
  dp::FlowLog* log = backend_.flowLog();
  if (log == nullptr) return 0;
  scratch_.clear();
  const size_t n = log->drain(scratch_, kHistory);
  if (n == 0) return 0;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (const dp::FlowRecord& r : scratch_) {
    history_.push_back(Entry{nextSequence_++, now, r});
    if (history_.size() > kHistory) {
      history_.pop_front();
      ++evicted_;
    }
  }
  return n;
}

Json FlowObserver::query(const FlowFilter& filter, std::optional<uint64_t> after,
                         size_t limit) const {
  const std::vector<AttachedPod> pods = node_.pods();
  Names names = namesOf(node_);
  for (const AttachedPod& pod : pods) names.podsByIp[pod.spec.ip.value] = &pod.spec;
  auto podOf = [&](rte_be32_t ip) -> const PodAttachment* {
    auto it = names.podsByIp.find(rte_be_to_cpu_32(ip));
    return it == names.podsByIp.end() ? nullptr : it->second;
  };
  const policy::PolicyRuntime* runtime = node_.policyRuntime();
  const policy::PolicyTable* table = node_.policyTable();
  const ServiceRegistry& services = node_.serviceRegistry();

  auto matches = [&](const dp::FlowRecord& r) {
    if (filter.verdict && *filter.verdict != dp::flowEventName(r.event)) return false;
    if (filter.protocol && *filter.protocol != r.protocol) return false;
    if (filter.port) {
      const rte_be16_t p = rte_cpu_to_be_16(*filter.port);
      if (r.sport != p && r.dport != p && r.xsport != p && r.xdport != p) return false;
    }
    if (filter.interface) {
      auto it = names.ports.find(r.inPort);
      if (it == names.ports.end() || it->second != *filter.interface) return false;
    }
    if (filter.pod || filter.ns) {
      bool any = false;
      for (rte_be32_t ip : {r.src, r.dst, r.xsrc, r.xdst}) {
        const PodAttachment* p = podOf(ip);
        if (p == nullptr) continue;
        const bool podOk = !filter.pod || *filter.pod == p->namespaceName + "/" + p->name ||
                           *filter.pod == p->name;
        const bool nsOk = !filter.ns || *filter.ns == p->namespaceName;
        any |= podOk && nsOk;
      }
      if (!any) return false;
    }
    return true;
  };
  auto endpoint = [&](rte_be32_t ip, rte_be16_t port, uint8_t protocol) {
    Json j = {{"ip", Ipv4Address{rte_be_to_cpu_32(ip)}.toString()}};
    if (protocol != IPPROTO_ICMP) j["port"] = rte_be_to_cpu_16(port);
    if (const PodAttachment* p = podOf(ip)) {
      j["pod"] = p->name;
      j["namespace"] = p->namespaceName;
    }
    return j;
  };
  auto render = [&](const Entry& e) {
    const dp::FlowRecord& r = e.record;
    Json j = {{"seq", e.sequence},
              {"unixMs", e.unixMs},
              {"verdict", dp::flowEventName(r.event)},
              {"protocol", protocolText(r.protocol)},
              {"source", endpoint(r.src, r.sport, r.protocol)},
              {"destination", endpoint(r.dst, r.dport, r.protocol)},
              {"worker", r.worker}};
    if (r.protocol == 0) j["protocol"] = "";
    auto port = names.ports.find(r.inPort);
    j["interface"] = port != names.ports.end() ? port->second : std::to_string(r.inPort);
    if (r.protocol == IPPROTO_TCP) j["tcpFlags"] = tcpFlagsText(r.tcpFlags);
    if (r.translation != 0) {
      j["translated"] = {{"source", endpoint(r.xsrc, r.xsport, r.protocol)},
                         {"destination", endpoint(r.xdst, r.xdport, r.protocol)}};
    }
    if (r.servicePort != 0) j["service"] = services.portName(r.servicePort);
    if (r.event == dp::FlowEvent::kDropped || r.event == dp::FlowEvent::kPolicyDenied)
      j["dropReason"] = std::string(dropReasonInfo(r.reason).name);
    if (r.event != dp::FlowEvent::kL7Denied && r.policy != 0 && runtime != nullptr) {
      const std::string name = runtime->policyOfSlot(r.policy - 1);
      if (!name.empty()) j["policy"] = name;
    }
    if (r.event == dp::FlowEvent::kL7Denied) {
      const policy::L7Database* db = table ? table->l7() : nullptr;
      if (r.policy == 0)
        j["l7"] = "no allow rule matched the request";
      else if (db && db->serial() == r.l7Serial && r.policy <= db->matches().size())
        j["l7"] = db->matches()[r.policy - 1].source;
    }
    return j;
  };

  // Newest first while collecting (the last `limit` that match), then in order.
  std::vector<const Entry*> picked;
  if (after) {
    auto first = std::upper_bound(history_.begin(), history_.end(), *after,
                                  [](uint64_t s, const Entry& e) { return s < e.sequence; });
    for (auto it = first; it != history_.end() && picked.size() < limit; ++it)
      if (matches(it->record)) picked.push_back(&*it);
  } else {
    for (auto it = history_.rbegin(); it != history_.rend() && picked.size() < limit; ++it)
      if (matches(it->record)) picked.push_back(&*it);
    std::reverse(picked.begin(), picked.end());
  }
  Json records = Json::array();
  for (const Entry* e : picked) records.push_back(render(*e));
  // The cursor: past everything examined, so that a follower does not scan it again.
  uint64_t cursor = after.value_or(0);
  if (!after || picked.size() < limit)
    cursor = std::max(cursor, lastSequence());
  else
    cursor = picked.back()->sequence;
  dp::FlowLog* log = backend_.flowLog();
  return Json{{"records", records},
              {"cursor", cursor},
              {"enabled", log != nullptr},
              {"lostInRings", log ? log->overflow() : 0},
              {"evicted", evicted_}};
}

}  // namespace nodeplane::control
