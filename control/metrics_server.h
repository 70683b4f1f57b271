// The daemon's HTTP endpoint (civetweb, its own threads; loopback by default):
//   /metrics  Prometheus text format (control/metrics.h)
//   /healthz  200 while the control thread answers (liveness)
//   /readyz   200 once a desired state is applied and every worker polls; else 503 and why
// Every answer is made on the control thread: the server's threads hand each request over
// through the ControlMailbox and wait (at most 2 s), so nothing here reads control state
// concurrently, and the workers never see a scrape.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "control/control_mailbox.h"
#include "core/result.h"

class CivetServer;

namespace nodeplane::control {

class MetricsServer {
 public:
  struct Handlers {
    std::function<std::string()> metrics;   // control thread: the exposition text
    std::function<std::string()> notReady;  // control thread: empty when ready, else why
  };
  // `address`: "IP:PORT" (PORT 0: any free port; address() tells which).
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address,
                                                      ControlMailbox& mailbox, Handlers handlers);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // "IP:PORT" as bound.
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  struct Endpoints;
  std::unique_ptr<Endpoints> endpoints_;
  std::unique_ptr<CivetServer> server_;
  std::string address_;
};

}  // namespace nodeplane::control
