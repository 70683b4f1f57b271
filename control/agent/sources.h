// Where cluster state comes from, each delivering SourceEvents to one queue the agent's main loop
// drains:
//   ManifestSource  files or directories of manifests, polled for changes once a second
//   StreamSource    watch events (or plain objects) as `kubectl get --watch -o json` prints them,
//                   from a stream (stdin)
//   ApiSource       the API server: list, then watch from the list's resourceVersion, with
//                   bookmarks; 410 Gone means list again; errors back off (1 s doubling to 30 s)
// Sources run on their own threads; only the queue is shared (a mutex: this is not a hot path).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/agent/cluster_state.h"
#include "core/result.h"

namespace nodeplane::agent {

struct SourceEvent {
  enum class Type {
    kReplaceKind,    // `objects` are now every object of `name` (a kind)
    kReplaceSource,  // `objects` are now everything source `name` defines
    kWatch,          // one watch event
    kSynced,         // source `name` has delivered its initial state
    kProblem,        // `message` (a bad object, an unreachable server); nothing else happens
    kWatchRestart,   // the watch of kind `name` begins again; `message`: ended, gone or error
  };
  Type type = Type::kProblem;
  std::string name;
  std::vector<Json> objects;
  WatchEvent event;
  std::string message;
};

class EventQueue {
 public:
  void push(SourceEvent e);
  // Waits up to `timeout` for events; returns what arrived (possibly nothing).
  std::vector<SourceEvent> drain(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<SourceEvent> events_;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual void start() = 0;
  virtual void stop() = 0;
  virtual std::string name() const = 0;
};

class ManifestSource : public Source {
 public:
  ManifestSource(std::vector<std::string> paths, EventQueue& queue)
      : paths_(std::move(paths)), queue_(queue) {}
  ~ManifestSource() override { stop(); }
  void start() override;
  void stop() override;
  std::string name() const override { return "manifests"; }
  // Loads now if anything changed since the last load (what the thread does every second).
  void poll();

 private:
  std::vector<std::string> paths_;
  EventQueue& queue_;
  std::map<std::string, std::pair<int64_t, uintmax_t>> seen_;  // file -> (mtime, size)
  bool loaded_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class StreamSource : public Source {
 public:
  StreamSource(std::istream& in, EventQueue& queue) : in_(in), queue_(queue) {}
  ~StreamSource() override;
  void start() override;
  void stop() override {}
  std::string name() const override { return "stdin"; }

 private:
  std::istream& in_;
  EventQueue& queue_;
  std::thread thread_;
};

// One watch event or object as a stream carries it: {"type": ..., "object": {...}} or the
// object itself (taken as added or modified).
std::optional<WatchEvent> parseWatchEvent(const Json& j);

struct ApiConfig {
  std::string server;         // https://host:port
  std::string caFile, caPem;  // certificate authority (file or PEM text)
  bool insecureSkipVerify = false;
  std::string token;                               // bearer token
  std::string tokenFile;                           // re-read on every request (rotated tokens)
  std::string certFile, certPem, keyFile, keyPem;  // client certificate
};

// The current context of a kubeconfig file. Errors name the file and the field.
Result<ApiConfig> loadKubeconfig(const std::string& path);
// The pod's service account (KUBERNETES_SERVICE_HOST/PORT, token and CA under
// /var/run/secrets/kubernetes.io/serviceaccount).
Result<ApiConfig> inClusterConfig();

class ApiSource : public Source {
 public:
  ApiSource(ApiConfig config, EventQueue& queue) : config_(std::move(config)), queue_(queue) {}
  ~ApiSource() override { stop(); }
  void start() override;
  void stop() override;
  std::string name() const override { return "api " + config_.server; }

 private:
  void run(const KindInfo& kind);
  ApiConfig config_;
  EventQueue& queue_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace nodeplane::agent
