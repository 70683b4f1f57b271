// nodeplane-agent: reads the cluster's state (manifest files, a watch stream on stdin, or the API
// server), computes what this node's nodeplane needs and pushes it over the control socket as one
// `apply`, again whenever something changes (bursts of events coalesced into one apply), and in
// full whenever the daemon does not hold the last state pushed (it restarted).
//
//   nodeplane-agent [--node-name N] [--socket PATH]
//                   (--manifests PATH... | --stdin | --kubeconfig FILE | --in-cluster)
//                   [--debounce-ms 100] [--once] [--print] [--log-level info]
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "control/agent/agent_metrics.h"
#include "control/agent/sources.h"
#include "control/agent/translate.h"
#include "control/client.h"
#include "core/json.h"

namespace po = boost::program_options;
using namespace nodeplane;
using namespace nodeplane::agent;

namespace {

std::atomic<int> stopSignal{0};

struct Options {
  std::string nodeName;
  std::string socket = "/run/nodeplane/control.sock";
  std::vector<std::string> manifests;
  bool stdinSource = false;
  std::string kubeconfig;
  bool inCluster = false;
  int debounceMs = 100;
  bool once = false;
  bool print = false;
  // Bootstrap (a DaemonSet's init container): write files from this node's Node object, exit.
  std::string writeNodeConfig;     // the daemon's config: template + node-name/node-ip/pod-cidr
  std::string nodeConfigTemplate;  // options common to all nodes (a ConfigMap)
  std::string writeCniConfig;      // the CNI network config with this node's pod CIDR
  int cniMtu = 1450;
  std::string metricsAddress = "127.0.0.1:9965";  // "off": none
};

// Writes `text` to `path` atomically (a temporary file renamed over it).
bool writeAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

class Agent {
 public:
  explicit Agent(const Options& o) : opts_(o), client_(o.socket, std::chrono::seconds(60)) {}

  // The bootstrap: this node's Node object to the daemon's and the CNI plugin's configuration.
  bool bootstrap() {
    Translation t = translate(state_);
    const Json* self = nullptr;
    for (const Json& n : t.args["nodes"])
      if (json::string(n, "name") == opts_.nodeName) self = &n;
    if (self == nullptr) {
      spdlog::error("bootstrap: no usable Node object named '{}' (see the problems above)",
                    opts_.nodeName);
      return false;
    }
    const std::string cidr = (*self)["podCidrs"][0];
    if (!opts_.writeNodeConfig.empty()) {
      std::stringstream text;
      if (!opts_.nodeConfigTemplate.empty()) {
        std::ifstream in(opts_.nodeConfigTemplate);
        if (!in) {
          spdlog::error("bootstrap: cannot read {}", opts_.nodeConfigTemplate);
          return false;
        }
        text << in.rdbuf() << "\n";
      }
      text << "# from Node " << opts_.nodeName << "\nnode-name = " << opts_.nodeName
           << "\nnode-ip = " << (*self)["ip"].get<std::string>() << "\npod-cidr = " << cidr << "\n";
      if (!writeAtomically(opts_.writeNodeConfig, text.str())) {
        spdlog::error("bootstrap: cannot write {}", opts_.writeNodeConfig);
        return false;
      }
      spdlog::info("bootstrap: wrote {}", opts_.writeNodeConfig);
    }
    if (!opts_.writeCniConfig.empty()) {
      Json conf = {
          {"cniVersion", "1.0.0"},
          {"name", "nodeplane"},
          {"plugins", Json::array({{{"type", "nodeplane-cni"},
                                    {"mtu", opts_.cniMtu},
                                    {"gateway", "169.254.1.1"},
                                    {"controlSocket", opts_.socket},
                                    {"ipam",
                                     {{"type", "host-local"},
                                      {"ranges", Json::array({Json::array({{{"subnet", cidr}}})})},
                                      {"dataDir", "/var/lib/cni/networks"}}}}})}};
      if (!writeAtomically(opts_.writeCniConfig, conf.dump(2) + "\n")) {
        spdlog::error("bootstrap: cannot write {}", opts_.writeCniConfig);
        return false;
      }
      spdlog::info("bootstrap: wrote {} (pod CIDR {})", opts_.writeCniConfig, cidr);
    }
    return true;
  }

  int run() {
    if (opts_.metricsAddress != "off" && !bootstrapOnly() && !opts_.once) {
      const std::string problem = metrics_.serve(opts_.metricsAddress);
      if (problem.empty())
        spdlog::info("metrics: http://{}/metrics", metrics_.address());
      else
        spdlog::error("{} (the agent runs on without it)", problem);
    }
    if (!opts_.manifests.empty())
      sources_.push_back(std::make_unique<ManifestSource>(opts_.manifests, queue_));
    if (opts_.stdinSource) sources_.push_back(std::make_unique<StreamSource>(std::cin, queue_));
    if (!opts_.kubeconfig.empty() || opts_.inCluster) {
      auto config = opts_.inCluster ? inClusterConfig() : loadKubeconfig(opts_.kubeconfig);
      if (!config) {
        spdlog::error("{}", config.error().message);
        return 1;
      }
      sources_.push_back(std::make_unique<ApiSource>(*config, queue_));
      expectedSyncs_ += watchedKinds().size() - 1;  // one per kind, the source counts as one below
    }
    expectedSyncs_ += sources_.size();
    for (auto& s : sources_) {
      spdlog::info("source: {}", s->name());
      s->start();
    }
    bool dirty = false;
    auto firstDirty = std::chrono::steady_clock::now(), lastEvent = firstDirty;
    auto lastCheck = firstDirty;
    int rc = 0;
    while (stopSignal.load() == 0) {
      for (SourceEvent& e : queue_.drain(std::chrono::milliseconds(50))) {
        bool changed = false;
        switch (e.type) {
          case SourceEvent::Type::kReplaceKind:
            metrics_.event(e.name, "LIST");
            changed = state_.replaceKind(e.name, e.objects);
            break;
          case SourceEvent::Type::kReplaceSource:
            metrics_.event("all", "LIST");
            changed = state_.replaceSource(e.name, e.objects);
            break;
          case SourceEvent::Type::kWatch:
            metrics_.event(e.name, eventTypeName(e.event.type));
            changed = state_.apply(e.event);
            break;
          case SourceEvent::Type::kWatchRestart:
            metrics_.watchRestart(e.name, e.message);
            break;
          case SourceEvent::Type::kSynced:
            ++syncs_;
            changed = true;
            break;
          case SourceEvent::Type::kProblem:
            spdlog::warn("{}", e.message);
            break;
        }
        if (changed) {
          const auto now = std::chrono::steady_clock::now();
          if (!dirty) firstDirty = now;
          dirty = true;
          lastEvent = now;
          excluded_.clear();  // what changed may have been fixed
        }
      }
      const auto now = std::chrono::steady_clock::now();
      const bool synced = syncs_ >= expectedSyncs_;
      if (bootstrapOnly() && synced) {
        // Wait until the Node carries what we need (a pod CIDR may be assigned a moment later).
        if (bootstrap()) break;
        if (opts_.once) {
          rc = 1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      const auto quiet = std::chrono::milliseconds(opts_.debounceMs);
      if (synced && dirty && (now - lastEvent >= quiet || now - firstDirty >= quiet * 10)) {
        dirty = false;
        if (!push()) {
          dirty = true;  // the daemon is unreachable: try again
          firstDirty = lastEvent = now;
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
        } else if (opts_.once) {
          break;
        }
      }
      if (!opts_.print && synced && pushed_ && now - lastCheck >= std::chrono::seconds(1)) {
        lastCheck = now;
        // A daemon that restarted (or that someone else configured) gets the full state again.
        auto status = client_.call("status");
        if (status && status->value("appliedGeneration", uint64_t{0}) != generation_) {
          spdlog::info("the daemon holds generation {}, not {}: pushing the whole state again",
                       status->value("appliedGeneration", uint64_t{0}), generation_);
          dirty = true;
          firstDirty = lastEvent = now - quiet;
        }
      }
    }
    for (auto& s : sources_) s->stop();
    return rc;
  }

 private:
  bool bootstrapOnly() const {
    return !opts_.writeNodeConfig.empty() || !opts_.writeCniConfig.empty();
  }

  bool push() {
    for (int attempt = 0; attempt < 6; ++attempt) {
      Translation t = translate(state_, excluded_);
      for (const std::string& p : t.problems) {
        spdlog::warn("skipped: {}", p);
        metrics_.skipped(p.substr(0, p.find(' ')));  // "service ns/name: ..." -> service
      }
      reportPodsWithoutAddress(t.podsWithoutAddress);
      Json args = t.args;
      args["generation"] = generation_ + 1;
      if (opts_.print) {
        std::cout << args.dump() << std::endl;
        ++generation_;
        pushed_ = true;
        return true;
      }
      auto r = client_.call("apply", args);
      metrics_.apply(r                                           ? "ok"
                     : r.error().code == ErrorCode::kUnavailable ? "unavailable"
                                                                 : "refused");
      if (r) {
        ++generation_;
        metrics_.generation(generation_);
        pushed_ = true;
        spdlog::info(
            "applied generation {}: {} nodes, {} services ({} endpoints), {} pods, "
            "{} network policies, {} L7 rules{}",
            generation_, t.nodes, t.services, t.endpoints, t.pods, t.policies, t.l7Rules,
            excluded_.empty()
                ? ""
                : ", " + std::to_string(excluded_.size()) + " refused object(s) left out");
        return true;
      }
      if (r.error().code == ErrorCode::kUnavailable) {
        spdlog::warn("daemon at {}: {}", opts_.socket, r.error().message);
        return false;
      }
      const auto named = objectsNamedIn(r.error().message);
      spdlog::warn("the daemon refused the state: {}", r.error().message);
      bool added = false;
      for (const std::string& n : named) added |= excluded_.insert(n).second;
      if (!added) {
        spdlog::error("cannot tell which object the daemon refused; keeping its last good state");
        return true;
      }
      spdlog::info("leaving out {} and applying the rest", [&] {
        std::string s;
        for (const std::string& n : named) s += (s.empty() ? "" : ", ") + n;
        return s;
      }());
    }
    return true;
  }

  // Said once per pod, at info level: a pod manifest without status.podIP is not an error (the
  // pod may not run yet) but nothing reaches the data plane for it.
  void reportPodsWithoutAddress(const std::set<std::string>& pods) {
    for (const std::string& p : pods)
      if (!podsWithoutAddress_.count(p))
        spdlog::info(
            "pod {}: no IPv4 address in status.podIP/podIPs yet: left out until it has one", p);
    podsWithoutAddress_ = pods;
  }

  static const char* eventTypeName(WatchEvent::Type t) {
    switch (t) {
      case WatchEvent::Type::kAdded:
        return "ADDED";
      case WatchEvent::Type::kModified:
        return "MODIFIED";
      case WatchEvent::Type::kDeleted:
        return "DELETED";
      case WatchEvent::Type::kBookmark:
        return "BOOKMARK";
      case WatchEvent::Type::kError:
        return "ERROR";
    }
    return "?";
  }

  AgentMetrics metrics_;
  Options opts_;
  std::set<std::string> podsWithoutAddress_;
  control::ControlClient client_;
  EventQueue queue_;
  ClusterState state_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::set<std::string> excluded_;
  size_t syncs_ = 0, expectedSyncs_ = 0;
  uint64_t generation_ = 0;
  bool pushed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("nodeplane-agent options");
  desc.add_options()("help,h", "this help")(
      "node-name", po::value<std::string>(),
      "this node's name (default: $NODE_NAME, then the host name)")(
      "socket", po::value<std::string>()->default_value("/run/nodeplane/control.sock"),
      "the daemon's control socket")(
      "manifests", po::value<std::vector<std::string>>()->multitoken(),
      "manifest files or directories (YAML or JSON), watched for changes")(
      "stdin", po::bool_switch(), "read watch events (kubectl get --watch -o json) from stdin")(
      "kubeconfig", po::value<std::string>(), "read the API server named by this kubeconfig")(
      "in-cluster", po::bool_switch(), "read the API server with the pod's service account")(
      "debounce-ms", po::value<int>()->default_value(100),
      "quiet time that ends a burst of events")("once", po::bool_switch(),
                                                "push once the sources are read, then exit")(
      "print", po::bool_switch(), "print each desired state (one JSON line) instead of pushing it")(
      "write-node-config", po::value<std::string>(),
      "bootstrap: write the daemon's config file (the template, then node-name, node-ip and "
      "pod-cidr from this node's Node object) and exit")(
      "node-config-template", po::value<std::string>(), "bootstrap: options for every node")(
      "write-cni-config", po::value<std::string>(),
      "bootstrap: write the CNI network config with this node's pod CIDR and exit")(
      "cni-mtu", po::value<int>()->default_value(1450), "bootstrap: the pods' MTU")(
      "metrics-address", po::value<std::string>()->default_value("127.0.0.1:9965"),
      "IP:PORT of the agent's /metrics (PORT 0: any free port, logged; \"off\": none)")(
      "log-level", po::value<std::string>()->default_value("info"), "trace ... off");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "nodeplane-agent: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  Options o;
  if (vm.count("node-name"))
    o.nodeName = vm["node-name"].as<std::string>();
  else if (const char* env = std::getenv("NODE_NAME"))
    o.nodeName = env;
  o.socket = vm["socket"].as<std::string>();
  if (vm.count("manifests")) o.manifests = vm["manifests"].as<std::vector<std::string>>();
  o.stdinSource = vm["stdin"].as<bool>();
  if (vm.count("kubeconfig")) o.kubeconfig = vm["kubeconfig"].as<std::string>();
  o.inCluster = vm["in-cluster"].as<bool>();
  o.debounceMs = vm["debounce-ms"].as<int>();
  o.once = vm["once"].as<bool>();
  o.print = vm["print"].as<bool>();
  if (vm.count("write-node-config")) o.writeNodeConfig = vm["write-node-config"].as<std::string>();
  if (vm.count("node-config-template"))
    o.nodeConfigTemplate = vm["node-config-template"].as<std::string>();
  if (vm.count("write-cni-config")) o.writeCniConfig = vm["write-cni-config"].as<std::string>();
  o.cniMtu = vm["cni-mtu"].as<int>();
  o.metricsAddress = vm["metrics-address"].as<std::string>();
  if ((!o.writeNodeConfig.empty() || !o.writeCniConfig.empty()) && o.nodeName.empty()) {
    std::cerr << "nodeplane-agent: --node-name (or $NODE_NAME) is required to bootstrap\n";
    return 2;
  }
  const int sources =
      (!o.manifests.empty()) + o.stdinSource + (!o.kubeconfig.empty()) + o.inCluster;
  if (sources == 0) {
    std::cerr
        << "nodeplane-agent: --manifests, --stdin, --kubeconfig or --in-cluster is required\n";
    return 2;
  }
  if (!o.kubeconfig.empty() && o.inCluster) {
    std::cerr << "nodeplane-agent: --kubeconfig and --in-cluster exclude each other\n";
    return 2;
  }
  if (o.debounceMs < 0 || o.debounceMs > 60000) {
    std::cerr << "nodeplane-agent: --debounce-ms: must be 0 to 60000\n";
    return 2;
  }
  auto level = spdlog::level::from_str(vm["log-level"].as<std::string>());
  spdlog::set_level(level);
  spdlog::set_default_logger(spdlog::stderr_color_mt("agent"));
  spdlog::set_level(level);
  std::signal(SIGINT, [](int s) { stopSignal = s; });
  std::signal(SIGTERM, [](int s) { stopSignal = s; });
  if (!o.nodeName.empty()) spdlog::info("nodeplane-agent for node {}", o.nodeName);
  return Agent(o).run();
}
