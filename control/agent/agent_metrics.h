// nodeplane-agent's own metrics on its HTTP endpoint (prometheus-cpp's exposer: civetweb threads
// read the registry; the agent's loop updates it, prometheus-cpp's counters being atomic):
//   nodeplane_agent_events_total{kind,type}        watch events and full lists received
//   nodeplane_agent_applies_total{result}          desired states pushed: ok, refused, unavailable
//   nodeplane_agent_skipped_objects_total{kind}    objects left out (bad fields, refused)
//   nodeplane_agent_watch_restarts_total{kind,reason}  watches begun again: ended, gone, error
//   nodeplane_agent_generation                     the last generation the daemon took
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace nodeplane::agent {

class AgentMetrics {
 public:
  AgentMetrics();
  // Serves the registry on "IP:PORT" (port 0: any). Empty on success, else why not (the agent
  // runs on without an endpoint).
  std::string serve(const std::string& address);
  const std::string& address() const { return address_; }

  void event(const std::string& kind, const std::string& type);
  void apply(const std::string& result);
  void skipped(const std::string& kind);
  void watchRestart(const std::string& kind, const std::string& reason);
  void generation(uint64_t g);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& applies_;
  prometheus::Family<prometheus::Counter>& skipped_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Gauge& generation_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

}  // namespace nodeplane::agent
