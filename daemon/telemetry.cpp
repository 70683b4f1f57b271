#include "daemon/telemetry.h"

#include <rte_telemetry.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>
#include <vector>

namespace nodeplane::daemon {

namespace {

using control::Json;
using Pairs = std::vector<std::pair<std::string, uint64_t>>;

// DPDK's callbacks are plain functions: they reach the control thread through these. The
// mailbox is closed, never destroyed, before the loop's objects go (a late telemetry call then
// gets an error, not a dangling pointer): the process keeps it until exit.
std::atomic<control::ControlMailbox*> gMailbox{nullptr};
control::ControlApi* gApi = nullptr;  // touched only by work run on the control thread

uint64_t u64(const Json& j) {
  return j.is_number_unsigned() ? j.get<uint64_t>()
         : j.is_number()        ? static_cast<uint64_t>(std::max(0.0, j.get<double>()))
                                : 0;
}

Json op(const char* name, Json args = Json::object()) {
  control::Request r;
  r.op = name;
  r.args = std::move(args);
  auto result = gApi->handle(r);
  return result ? *result : Json();
}

Pairs drops() {
  Pairs out;
  const Json d = op("drops");
  if (d.contains("drops"))
    for (const Json& e : d["drops"]) out.emplace_back(e.value("reason", "?"), u64(e["packets"]));
  return out;
}

Pairs workers() {
  Pairs out;
  const Json w = op("workers");
  if (!w.contains("workers")) return out;
  for (const Json& e : w["workers"]) {
    if (e.value("control", false)) continue;
    const std::string prefix = "worker" + std::to_string(e.value("index", 0)) + "_";
    const Json& c = e["counters"];
    for (const char* k :
         {"rx_packets", "tx_packets", "drop_packets", "busy_cycles", "idle_cycles", "loops"})
      out.emplace_back(prefix + k, u64(c.value(k, Json())));
    out.emplace_back(prefix + "busy_permille",
                     static_cast<uint64_t>(e.value("busyPercent", 0.0) * 10));
  }
  return out;
}

Pairs conntrack() {
  Pairs out;
  const Json c = op("conntrack");
  for (const char* k : {"entries", "capacity", "inserts", "evictions", "fullDrops", "expired",
                        "removed", "memoryBytes"})
    out.emplace_back(k, u64(c.value(k, Json())));
  return out;
}

Pairs dns() {
  Pairs out;
  const Json w = op("workers");
  if (!w.contains("workers")) return out;
  for (const Json& e : w["workers"])
    for (auto it = e["counters"].begin(); it != e["counters"].end(); ++it) {
      if (it.key().rfind("dns_", 0) != 0) continue;
      bool found = false;
      for (auto& [k, v] : out)
        if (k == it.key()) v += u64(*it), found = true;
      if (!found) out.emplace_back(it.key(), u64(*it));
    }
  return out;
}

template <Pairs (*Fn)()>
int command(const char*, const char*, rte_tel_data* d) {
  control::ControlMailbox* mailbox = gMailbox.load();
  if (mailbox == nullptr) return -1;
  auto pairs = mailbox->call<Pairs>(Fn, std::chrono::milliseconds(1000));
  if (!pairs) return -1;
  rte_tel_data_start_dict(d);
  size_t n = 0;
  for (const auto& [k, v] : *pairs)
    if (++n <= RTE_TEL_MAX_DICT_ENTRIES) rte_tel_data_add_dict_u64(d, k.c_str(), v);
  return 0;
}

}  // namespace

void registerTelemetry(control::ControlMailbox& mailbox, control::ControlApi& api) {
  gApi = &api;
  const bool first = gMailbox.exchange(&mailbox) == nullptr;
  if (!first) return;
  rte_telemetry_register_cmd("/nodeplane/drops", command<drops>,
                             "Packets dropped by reason (non-zero only). No parameters");
  rte_telemetry_register_cmd("/nodeplane/workers", command<workers>,
                             "Per-worker packets, drops, cycles, loops. No parameters");
  rte_telemetry_register_cmd("/nodeplane/conntrack", command<conntrack>,
                             "Connection table: entries, capacity, evictions. No parameters");
  rte_telemetry_register_cmd("/nodeplane/dns", command<dns>,
                             "Cluster DNS answered by the workers, by outcome. No parameters");
}

}  // namespace nodeplane::daemon
