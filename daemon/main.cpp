// nodeplane: the node's packet data plane. Wires the pieces together: options, EAL, the engine
// (ports, workers), the node controller and the control socket. The main lcore runs the control
// thread: it serves the socket and reclaims old snapshots; workers run on their own lcores.
#include <rte_eal.h>
#include <rte_lcore.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "control/control_api.h"
#include "control/control_mailbox.h"
#include "control/control_server.h"
#include "control/metrics.h"
#include "control/metrics_server.h"
#include "control/node_controller.h"
#include "daemon/logging.h"
#include "daemon/options.h"
#include "daemon/telemetry.h"
#include "dataplane/engine.h"

namespace {

// EAL's cleanup leaves its runtime directory (/var/run/dpdk/<file-prefix>: the telemetry socket,
// the config file) behind; nothing needs it once the process is gone.
void cleanupEal() {
  const std::string dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
}

std::atomic<int> stopSignal{0};

void onStopSignal(int sig) {
  stopSignal.store(sig);
}

void installSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = &onStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: epoll_wait returns at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int fail(const std::string& message) {
  std::fprintf(stderr, "nodeplane: error: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nodeplane;
  auto parsed = daemon::parseDaemonOptions(argc, argv);
  if (!parsed) {
    std::fprintf(stderr, "nodeplane: error: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (parsed->exitNow) {
    std::fputs(parsed->output.c_str(), stdout);
    return 0;
  }
  const daemon::DaemonOptions& opts = parsed->options;
  daemon::setupLogging(opts.logLevel);
  daemon::routeDpdkLogToSpdlog();

  std::vector<std::string> ealArgs = daemon::buildEalArgs(argv[0], opts);
  std::vector<char*> ealArgv;
  for (auto& a : ealArgs) ealArgv.push_back(a.data());
  spdlog::info("nodeplane starting: node {} ({}), pod CIDR {}", opts.nodeName,
               opts.nodeIp.toString(), opts.podCidr.toString());
  if (rte_eal_init(static_cast<int>(ealArgv.size()), ealArgv.data()) < 0)
    return fail("EAL initialisation failed (see the log above; EAL arguments go after \"--\")");

  int rc = 0;
  {
    for (unsigned lcore : opts.workerLcores)
      if (!rte_lcore_is_enabled(lcore)) {
        cleanupEal();
        return fail("--workers: lcore " + std::to_string(lcore) + " is not available");
      }

    dataplane::EngineConfig engineConfig;
    engineConfig.workerLcores = opts.workerLcores;
    engineConfig.burstSize = opts.burstSize;
    engineConfig.mbufs = opts.mbufs;
    engineConfig.idleSleepUs = opts.idleSleepUs;
    engineConfig.ports = {opts.rxDescriptors, opts.txDescriptors};
    engineConfig.conntrackMax = opts.conntrackMax;
    engineConfig.flowLogSize = opts.flowLogSize;
    engineConfig.conntrackTimeouts =
        lb::ConnTimeouts{opts.ctTcpSyn * 1000,     opts.ctTcpEstablished * 1000,
                         opts.ctTcpFin * 1000,     opts.ctTcpTimeWait * 1000,
                         opts.ctTcpClose * 1000,   opts.ctUdp * 1000,
                         opts.ctUdpReplied * 1000, opts.ctIcmp * 1000};
    auto engine = dataplane::Engine::create(engineConfig);
    if (!engine) {
      cleanupEal();
      return fail(engine.error().message);
    }

    control::NodeSettings settings;
    settings.nodeName = opts.nodeName;
    settings.clusterId = opts.clusterId;
    settings.globalCidr = opts.clusterGlobalCidr;
    settings.clustersetCidr = opts.clustersetCidr;
    settings.heartbeatIntervalMs = opts.heartbeatIntervalMs;
    settings.gatewayDeadMs = opts.gatewayDeadMs;
    settings.clusterRekeySeconds = opts.clusterRekeySeconds;
    settings.nodeIp = opts.nodeIp;
    settings.underlayPrefixLength = opts.underlayPrefixLength;
    settings.underlayGateway = opts.underlayGateway;
    settings.mtu = opts.mtu;
    settings.vxlanPort = opts.vxlanPort;
    settings.vni = opts.vxlanVni;
    settings.vtepMac = opts.vtepMac;
    settings.maglevSize = opts.maglevSize;
    settings.policyAudit = opts.policyAudit;
    settings.snatPorts = opts.snatPorts;
    settings.dnsResponder = opts.dnsResponder;
    settings.clusterDomain = opts.clusterDomain;
    settings.dnsTtl = opts.dnsTtl;
    settings.clusterDns = opts.clusterDns;
    settings.maxPolicies = opts.maxPolicies;
    settings.l7FlowsPerWorker = opts.l7FlowsPerWorker;
    settings.podCidr = opts.podCidr;
    settings.clusterCidr = opts.clusterCidr;
    settings.serviceCidr = opts.serviceCidr;
    settings.gatewayIp = opts.gatewayIp;
    settings.icmpErrorsPerSecond = opts.icmpErrorsPerSecond;
    settings.uplinkDevargs = opts.uplink;
    settings.hostInterface = opts.hostInterface;
    settings.uplinkGuard = opts.uplinkGuard;
    settings.hostDefaultRoute = opts.hostDefaultRoute;
    if (!opts.stateDir.empty()) {
      ::mkdir(opts.stateDir.c_str(), 0750);
      settings.stateFile = opts.stateDir + "/pods-" + opts.nodeName + ".json";
    }
    control::NodeController node(settings, **engine);

    installSignalHandlers();
    Status started = node.start();
    if (started) started = (*engine)->start();
    if (!started) {
      rc = fail(started.error().message);
    } else {
      control::ControlApi api(node, **engine);
      // Other threads' requests (metrics, telemetry), run on this thread; kept to the process's
      // end (DPDK's telemetry thread may still hold it: daemon/telemetry.h).
      control::ControlMailbox& mailbox = *new control::ControlMailbox();
      control::Readiness readiness;
      std::unique_ptr<control::MetricsServer> metrics;
      if (opts.metricsAddress != "off") {
        auto started = control::MetricsServer::start(
            opts.metricsAddress, mailbox,
            {[&] {
               const bool ready = readiness.check(node, **engine).empty();
               return control::renderMetrics(api, node, **engine, api.applyStats(), ready);
             },
             [&] { return readiness.check(node, **engine); }});
        if (started) {
          metrics = std::move(*started);
          api.setMetricsState(metrics->address());
          spdlog::info("metrics: http://{}/metrics, /healthz, /readyz", metrics->address());
        } else {
          // The data plane runs on; only the endpoint is missing (said here and in status).
          api.setMetricsState("failed: " + started.error().message);
          spdlog::error("{}", started.error().message);
        }
      }
      daemon::registerTelemetry(mailbox, api);
      auto server = control::ControlServer::open(
          control::ServerConfig{opts.controlSocket, opts.controlGroup, opts.controlMaxRequestBytes,
                                64, opts.controlConnectionsPerUid,
                                std::chrono::seconds(opts.controlIdleTimeoutSeconds)},
          [&api](std::string_view line) { return api.handleLine(line); },
          [](const Error& error) { return control::formatReply(nullptr, error); });
      if (!server) {
        rc = fail(server.error().message);
      } else {
        spdlog::info("nodeplane ready: {} worker(s), control socket {}", opts.workerLcores.size(),
                     opts.controlSocket);
        auto lastCheck = std::chrono::steady_clock::now();
        while (stopSignal.load() == 0) {
          // A 10 ms tick bounds how long a punted packet (ARP, awaiting ARP) waits.
          (*server)->pollOnce(10);
          mailbox.runPending();
          const auto now = std::chrono::steady_clock::now();
          node.serviceSlowPath(now);
          node.drainPolicyLog();
          api.flowObserver().drain();
          (*engine)->reclaim();
          if (now - lastCheck >= std::chrono::seconds(1)) {
            node.detachVanishedPods();
            api.packetCapture().expireIdle(now);
            lastCheck = now;
          }
        }
        spdlog::info("signal {} received: stopping", stopSignal.load());
      }
      mailbox.close();
      metrics.reset();
    }
    node.shutdown();
    (*engine)->stop();
  }
  cleanupEal();
  spdlog::info("nodeplane stopped");
  return rc;
}
