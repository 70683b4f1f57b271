#include "core/counters.h"

namespace nodeplane {

void CounterTotals::accumulate(const WorkerCounters& c) {
#define NP_TOTAL_ADD(member, name, help) member += c.member.read();
  NP_FOREACH_WORKER_COUNTER(NP_TOTAL_ADD)
#undef NP_TOTAL_ADD
  for (size_t i = 0; i < kDropReasonCount; ++i) drops[i] += c.drops[i].read();
}

std::optional<DropReason> dropReasonByName(std::string_view name) {
  for (const auto& info : kDropReasons)
    if (info.name == name) return info.id;
  return std::nullopt;
}

}  // namespace nodeplane
