#include "control/metrics_server.h"

#include <CivetServer.h>
#include <civetweb.h>

#include <chrono>

namespace nodeplane::control {

namespace {

constexpr std::chrono::milliseconds kControlTimeout{2000};

void reply(mg_connection* conn, int status, const char* contentType, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", contentType, body.size());
  mg_write(conn, body.data(), body.size());
}

class Endpoint : public CivetHandler {
 public:
  using Answer = std::function<std::pair<int, std::string>()>;
  Endpoint(ControlMailbox& mailbox, const char* contentType, Answer answer)
      : mailbox_(mailbox), contentType_(contentType), answer_(std::move(answer)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    auto result = mailbox_.call<std::pair<int, std::string>>(answer_, kControlTimeout);
    if (!result)
      reply(conn, 503, "text/plain; charset=utf-8", "the control thread did not answer\n");
    else
      reply(conn, result->first, contentType_, result->second);
    return true;
  }

 private:
  ControlMailbox& mailbox_;
  const char* contentType_;
  Answer answer_;
};

}  // namespace

struct MetricsServer::Endpoints {
  Endpoint metrics, healthz, readyz;
};

MetricsServer::~MetricsServer() {
  if (server_) server_->close();  // joins its threads before the endpoints go
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            ControlMailbox& mailbox,
                                                            Handlers handlers) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  auto metrics = handlers.metrics;
  auto notReady = handlers.notReady;
  s->endpoints_.reset(new Endpoints{Endpoint(mailbox, "text/plain; version=0.0.4; charset=utf-8",
                                             [metrics] {
                                               return std::pair<int, std::string>{200, metrics()};
                                             }),
                                    Endpoint(mailbox, "text/plain; charset=utf-8",
                                             [] {
                                               return std::pair<int, std::string>{200, "ok\n"};
                                             }),
                                    Endpoint(mailbox, "text/plain; charset=utf-8", [notReady] {
                                      const std::string why = notReady();
                                      return why.empty()
                                                 ? std::pair<int, std::string>{200, "ready\n"}
                                                 : std::pair<int, std::string>{503, why + "\n"};
                                    })});
  const std::vector<std::string> options = {"listening_ports",    address, "num_threads", "2",
                                            "request_timeout_ms", "5000"};
  try {
    s->server_ = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return makeError(ErrorCode::kUnavailable,
                     "metrics endpoint on " + address + ": " + std::string(e.what()));
  }
  if (s->server_->getContext() == nullptr)
    return makeError(ErrorCode::kUnavailable, "metrics endpoint on " + address + ": not started");
  s->server_->addHandler("/metrics", s->endpoints_->metrics);
  s->server_->addHandler("/healthz", s->endpoints_->healthz);
  s->server_->addHandler("/readyz", s->endpoints_->readyz);
  const auto ports = s->server_->getListeningPorts();
  const size_t colon = address.rfind(':');
  s->address_ = address.substr(0, colon == std::string::npos ? 0 : colon) + ":" +
                (ports.empty() ? std::string("?") : std::to_string(ports.front()));
  return s;
}

}  // namespace nodeplane::control
