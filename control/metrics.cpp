#include "control/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <sstream>

#include "core/counters.h"
#include "core/drop_reason.h"
#include "dataplane/flow_log.h"

namespace nodeplane::control {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

double number(const Json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
}

Json call(ControlApi& api, const char* op) {
  Request r;
  r.op = op;
  auto result = api.handle(r);
  return result ? *result : Json();
}

void workerCounters(const std::vector<dataplane::WorkerStats>& workers,
                    std::vector<MetricFamily>& out) {
  MetricFamily drops =
      family("nodeplane_drop_count_total", "Packets dropped, by reason (npctl drops explains each)",
             MetricType::Counter);
  for (const auto& info : kDropReasons) {
    if (info.id == DropReason::kNone) continue;
    uint64_t total = 0;
    for (const auto& w : workers) total += w.counters.drops[static_cast<size_t>(info.id)];
    add(drops, static_cast<double>(total), {{"reason", std::string(info.name)}});
  }
  out.push_back(std::move(drops));

  MetricFamily busy = family("nodeplane_worker_busy_ratio",
                             "Share of a worker's cycles spent on iterations that received packets "
                             "(since start; rate() the cycle counters for a window)",
                             MetricType::Gauge);
  for (const auto& w : workers) {
    if (w.control) continue;
    const double total = static_cast<double>(w.counters.busyCycles + w.counters.idleCycles);
    add(busy, total == 0 ? 0.0 : static_cast<double>(w.counters.busyCycles) / total,
        {{"worker", std::to_string(w.index)}});
  }
  out.push_back(std::move(busy));

  // Every worker counter, per worker (the control thread's own block as worker="control").
  auto worker = [](const dataplane::WorkerStats& w) {
    return w.control ? std::string("control") : std::to_string(w.index);
  };
#define NP_COUNTER_FAMILY(member, name, help)                                       \
  {                                                                                 \
    MetricFamily f = family("nodeplane_" name "_total", help, MetricType::Counter); \
    for (const auto& w : workers)                                                   \
      add(f, static_cast<double>(w.counters.member), {{"worker", worker(w)}});      \
    out.push_back(std::move(f));                                                    \
  }
  NP_FOREACH_WORKER_COUNTER(NP_COUNTER_FAMILY)
#undef NP_COUNTER_FAMILY
}

void portCounters(const Json& ports, std::vector<MetricFamily>& out) {
  MetricFamily packets =
      family("nodeplane_forward_count_total",
             "Packets received (ingress) and sent (egress), by port role", MetricType::Counter);
  MetricFamily bytes =
      family("nodeplane_forward_bytes_total",
             "Bytes received (ingress) and sent (egress), by port role", MetricType::Counter);
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> sums;
  if (ports.is_object() && ports.contains("ports") && ports["ports"].is_array())
    for (const Json& p : ports["ports"]) {
      if (!p.contains("stats")) continue;
      const std::string role = p.value("role", "unused");
      auto& in = sums[{"ingress", role}];
      in.first += number(p["stats"], "rxPackets");
      in.second += number(p["stats"], "rxBytes");
      auto& eg = sums[{"egress", role}];
      eg.first += number(p["stats"], "txPackets");
      eg.second += number(p["stats"], "txBytes");
    }
  for (const auto& [key, v] : sums) {
    add(packets, v.first, {{"direction", key.first}, {"port_role", key.second}});
    add(bytes, v.second, {{"direction", key.first}, {"port_role", key.second}});
  }
  out.push_back(std::move(packets));
  out.push_back(std::move(bytes));
}

}  // namespace

void ApplyStats::record(double seconds, bool succeeded) {
  (succeeded ? ok : failed) += 1;
  sumSeconds += seconds;
  for (size_t i = 0; i < kBoundsSeconds.size(); ++i)
    if (seconds <= kBoundsSeconds[i]) {
      ++buckets[i];
      return;
    }
}

std::string Readiness::check(const NodeController& node,
                             const dataplane::DataplaneBackend& backend) {
  const auto now = std::chrono::steady_clock::now();
  if (now - lastSample_ >= kSampleInterval) {
    std::vector<uint64_t> loops;
    for (const auto& w : backend.workerStats())
      if (!w.control) loops.push_back(w.counters.loops);
    std::string verdict = loops.empty() ? "no workers" : "";
    if (loops.size() == lastLoops_.size())
      for (size_t i = 0; i < loops.size(); ++i)
        if (loops[i] == lastLoops_[i])
          verdict += (verdict.empty() ? "" : "; ") + std::string("worker ") + std::to_string(i) +
                     " has not polled since the last check";
    // The first sample has nothing to compare with: the workers were started before us.
    workersVerdict_ = std::move(verdict);
    lastLoops_ = std::move(loops);
    lastSample_ = now;
  }
  std::string why;
  if (node.appliedGeneration() == 0 && node.serviceRegistry().table() == nullptr)
    why = "no desired state applied yet";
  if (!workersVerdict_.empty()) why += (why.empty() ? "" : "; ") + workersVerdict_;
  return why;
}

std::string renderMetrics(ControlApi& api, const NodeController& node,
                          const dataplane::DataplaneBackend& backend, const ApplyStats& applies,
                          bool ready) {
  std::vector<MetricFamily> out;
  MetricFamily readyF = family("nodeplane_ready",
                               "1 when /readyz answers 200 (desired state applied, workers "
                               "polling)",
                               MetricType::Gauge);
  add(readyF, ready ? 1 : 0);
  out.push_back(std::move(readyF));

  workerCounters(backend.workerStats(), out);
  portCounters(call(api, "ports"), out);

  const Json ct = call(api, "conntrack");
  MetricFamily entries = family("nodeplane_conntrack_entries", "Tracked flows", MetricType::Gauge);
  add(entries, number(ct, "entries"));
  out.push_back(std::move(entries));
  MetricFamily capacity =
      family("nodeplane_conntrack_capacity", "Tracked flows at most", MetricType::Gauge);
  add(capacity, number(ct, "capacity"));
  out.push_back(std::move(capacity));
  for (const auto& [key, name, help] :
       {std::tuple{"inserts", "nodeplane_conntrack_inserts_total", "Flows inserted"},
        std::tuple{"evictions", "nodeplane_conntrack_evictions_total",
                   "Flows evicted to make room (closing or idle UDP first)"},
        std::tuple{"fullDrops", "nodeplane_conntrack_full_drops_total",
                   "New flows refused: the table was full of established flows"},
        std::tuple{"expired", "nodeplane_conntrack_expired_total", "Flows aged out"}}) {
    MetricFamily f = family(name, help, MetricType::Counter);
    add(f, number(ct, key));
    out.push_back(std::move(f));
  }

  // Services and endpoints programmed; pods and nodes.
  size_t endpoints = 0;
  for (const auto& [key, s] : node.serviceRegistry().services()) endpoints += s.endpoints.size();
  for (const auto& [name, help, value] :
       {std::tuple{"nodeplane_services", "Services programmed",
                   static_cast<double>(node.serviceRegistry().services().size())},
        std::tuple{"nodeplane_endpoints", "Service endpoints programmed (all services)",
                   static_cast<double>(endpoints)},
        std::tuple{"nodeplane_pods", "Pods attached to this node",
                   static_cast<double>(node.pods().size())},
        std::tuple{"nodeplane_nodes", "Nodes of the cluster known to this node",
                   static_cast<double>(node.nodes().size())},
        std::tuple{"nodeplane_snapshot_generation", "Generation of the data plane snapshot",
                   static_cast<double>(node.generation())},
        std::tuple{"nodeplane_desired_generation",
                   "The agent's desired-state generation in force (0: none applied)",
                   static_cast<double>(node.appliedGeneration())}}) {
    MetricFamily f = family(name, help, MetricType::Gauge);
    add(f, value);
    out.push_back(std::move(f));
  }

  // Applies: count by result, latency histogram.
  MetricFamily applyCount =
      family("nodeplane_apply_total", "Desired-state applies, by result", MetricType::Counter);
  add(applyCount, static_cast<double>(applies.ok), {{"result", "ok"}});
  add(applyCount, static_cast<double>(applies.failed), {{"result", "error"}});
  out.push_back(std::move(applyCount));
  MetricFamily latency =
      family("nodeplane_apply_duration_seconds",
             "Time from a desired state read to its snapshot published", MetricType::Histogram);
  ClientMetric h;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < ApplyStats::kBoundsSeconds.size(); ++i) {
    cumulative += applies.buckets[i];
    h.histogram.bucket.push_back({cumulative, ApplyStats::kBoundsSeconds[i]});
  }
  h.histogram.sample_count = applies.ok + applies.failed;
  h.histogram.bucket.push_back({h.histogram.sample_count, std::numeric_limits<double>::infinity()});
  h.histogram.sample_sum = applies.sumSeconds;
  latency.metric.push_back(std::move(h));
  out.push_back(std::move(latency));

  // NetworkPolicy verdicts per policy, L7 matches per rule.
  const Json policy = call(api, "policy.list");
  MetricFamily verdicts =
      family("nodeplane_policy_verdict_total",
             "Flows judged by a NetworkPolicy, by policy and verdict", MetricType::Counter);
  if (policy.contains("policies") && policy["policies"].is_array())
    for (const Json& p : policy["policies"]) {
      const std::string key = p.value("namespace", "") + "/" + p.value("name", "");
      add(verdicts, number(p, "allowed"), {{"policy", key}, {"verdict", "allowed"}});
      add(verdicts, number(p, "denied"), {{"policy", key}, {"verdict", "denied"}});
      add(verdicts, number(p, "auditDenied"), {{"policy", key}, {"verdict", "audit"}});
    }
  out.push_back(std::move(verdicts));
  MetricFamily l7 = family("nodeplane_l7_matches_total", "Requests an L7 rule matched, by rule",
                           MetricType::Counter);
  if (policy.contains("l7") && policy["l7"].contains("rules") && policy["l7"]["rules"].is_array())
    for (const Json& r : policy["l7"]["rules"])
      add(l7, number(r, "matches"),
          {{"rule", r.value("source", "")}, {"action", r.value("action", "")}});
  out.push_back(std::move(l7));

  // Underlay neighbours by state.
  MetricFamily neighbors =
      family("nodeplane_neighbors", "Underlay ARP entries, by state", MetricType::Gauge);
  std::map<std::string, double> states;
  const Json n = call(api, "neighbors");
  if (n.contains("neighbors") && n["neighbors"].is_array())
    for (const Json& e : n["neighbors"]) states[e.value("state", "unknown")] += 1;
  for (const auto& [state, count] : states) add(neighbors, count, {{"state", state}});
  out.push_back(std::move(neighbors));

  // The flow log: what the workers recorded and what they could not.
  const FlowObserver& flows = api.flowObserver();
  for (const auto& [name, help, value] :
       {std::tuple{"nodeplane_flow_log_records_total", "Flow log records drained from the workers",
                   static_cast<double>(flows.lastSequence())},
        std::tuple{"nodeplane_flow_log_lost_total",
                   "Flow log records lost: a worker's ring was full",
                   static_cast<double>(backend.flowLog() ? backend.flowLog()->overflow() : 0)},
        std::tuple{"nodeplane_flow_log_evicted_total",
                   "Flow log records the history dropped to make room for newer ones",
                   static_cast<double>(flows.evicted())}}) {
    MetricFamily f = family(name, help, MetricType::Counter);
    add(f, value);
    out.push_back(std::move(f));
  }

  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, out);
  return text.str();
}

}  // namespace nodeplane::control
