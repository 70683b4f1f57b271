#include "control/agent/agent_metrics.h"

#include <exception>

namespace nodeplane::agent {

AgentMetrics::AgentMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      events_(prometheus::BuildCounter()
                  .Name("nodeplane_agent_events_total")
                  .Help("Cluster-state events received, by kind and type (ADDED, MODIFIED, "
                        "DELETED, LIST)")
                  .Register(*registry_)),
      applies_(prometheus::BuildCounter()
                   .Name("nodeplane_agent_applies_total")
                   .Help("Desired states pushed to the daemon, by result")
                   .Register(*registry_)),
      skipped_(prometheus::BuildCounter()
                   .Name("nodeplane_agent_skipped_objects_total")
                   .Help("Objects left out of a desired state (bad fields, refused), by kind")
                   .Register(*registry_)),
      restarts_(prometheus::BuildCounter()
                    .Name("nodeplane_agent_watch_restarts_total")
                    .Help("API server watches begun again, by kind and reason (ended, gone: "
                          "410, error)")
                    .Register(*registry_)),
      generation_(prometheus::BuildGauge()
                      .Name("nodeplane_agent_generation")
                      .Help("The last desired-state generation the daemon took")
                      .Register(*registry_)
                      .Add({})) {}

std::string AgentMetrics::serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return "metrics endpoint on " + address + ": " + e.what();
  }
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  address_ = address.substr(0, address.rfind(':')) + ":" +
             (ports.empty() ? std::string("?") : std::to_string(ports.front()));
  return {};
}

void AgentMetrics::event(const std::string& kind, const std::string& type) {
  events_.Add({{"kind", kind}, {"type", type}}).Increment();
}
void AgentMetrics::apply(const std::string& result) {
  applies_.Add({{"result", result}}).Increment();
}
void AgentMetrics::skipped(const std::string& kind) {
  skipped_.Add({{"kind", kind}}).Increment();
}
void AgentMetrics::watchRestart(const std::string& kind, const std::string& reason) {
  restarts_.Add({{"kind", kind}, {"reason", reason}}).Increment();
}
void AgentMetrics::generation(uint64_t g) {
  generation_.Set(static_cast<double>(g));
}

}  // namespace nodeplane::agent
