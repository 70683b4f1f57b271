#include "control/agent/sources.h"

#include <curl/curl.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/agent/manifests.h"
#include "control/agent/yaml.h"
#include "core/base64.h"
#include "core/json.h"

namespace nodeplane::agent {

namespace fs = std::filesystem;

void EventQueue::push(SourceEvent e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(std::move(e));
  }
  ready_.notify_one();
}

std::vector<SourceEvent> EventQueue::drain(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  std::vector<SourceEvent> out(std::make_move_iterator(events_.begin()),
                               std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

// --- manifests -----------------------------------------------------------------------------

void ManifestSource::poll() {
  std::map<std::string, std::pair<int64_t, uintmax_t>> now;
  for (const std::string& path : paths_)
    for (const std::string& file : manifestFiles(path)) {
      std::error_code ec;
      const auto mtime = fs::last_write_time(file, ec);
      const auto size = fs::file_size(file, ec);
      now[file] = {ec ? -1 : static_cast<int64_t>(mtime.time_since_epoch().count()), ec ? 0 : size};
    }
  if (loaded_ && now == seen_) return;
  seen_ = now;
  SourceEvent e;
  e.type = SourceEvent::Type::kReplaceSource;
  e.name = name();
  for (const std::string& path : paths_) {
    LoadedObjects loaded = loadManifests(path);
    for (Json& o : loaded.objects) e.objects.push_back(std::move(o));
    for (std::string& p : loaded.problems)
      queue_.push(SourceEvent{SourceEvent::Type::kProblem, name(), {}, {}, std::move(p)});
  }
  queue_.push(std::move(e));
  if (!loaded_) queue_.push(SourceEvent{SourceEvent::Type::kSynced, name(), {}, {}, ""});
  loaded_ = true;
}

void ManifestSource::start() {
  poll();
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      for (int i = 0; i < 10 && !stop_.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!stop_.load()) poll();
    }
  });
}

void ManifestSource::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

// --- a stream of watch events ----------------------------------------------------------------

std::optional<WatchEvent> parseWatchEvent(const Json& j) {
  if (!j.is_object()) return std::nullopt;
  if (j.contains("type") && j.contains("object") && j["type"].is_string()) {
    const std::string t = j["type"];
    WatchEvent e;
    if (t == "ADDED")
      e.type = WatchEvent::Type::kAdded;
    else if (t == "MODIFIED")
      e.type = WatchEvent::Type::kModified;
    else if (t == "DELETED")
      e.type = WatchEvent::Type::kDeleted;
    else if (t == "BOOKMARK")
      e.type = WatchEvent::Type::kBookmark;
    else if (t == "ERROR")
      e.type = WatchEvent::Type::kError;
    else
      return std::nullopt;
    if (!j["object"].is_object()) return std::nullopt;
    e.object = j["object"];
    return e;
  }
  if (j.contains("kind") && j.contains("metadata"))
    return WatchEvent{WatchEvent::Type::kModified, j};
  return std::nullopt;
}

StreamSource::~StreamSource() {
  if (thread_.joinable()) thread_.detach();  // blocked on a read; the process is ending
}

void StreamSource::start() {
  thread_ = std::thread([this] {
    // The stream may not hold the whole state at first: call it synced at once, and let the
    // debounce gather the first burst.
    queue_.push(SourceEvent{SourceEvent::Type::kSynced, name(), {}, {}, ""});
    uint64_t count = 0;
    std::string why;
    while (auto text = json::readValueText(in_, &why)) {
      ++count;
      std::optional<Json> parsed = why.empty() ? json::parse(*text, &why) : std::nullopt;
      if (!parsed) {
        // Too deep: skipped, the stream goes on. Not JSON: nothing after it can be trusted.
        const bool resumable = why.rfind("nested", 0) == 0;
        queue_.push(
            SourceEvent{SourceEvent::Type::kProblem,
                        name(),
                        {},
                        {},
                        "stdin: value " + std::to_string(count) + " is " + why +
                            (resumable ? ": skipped" : "; the rest of the stream is ignored")});
        if (resumable) continue;
        return;
      }
      Json j = std::move(*parsed);
      std::vector<Json> values;
      if (json::string(j, "kind") == "List" && json::field(j, "items").is_array())
        values = j["items"].get<std::vector<Json>>();
      else
        values.push_back(std::move(j));
      for (const Json& v : values) {
        auto e = parseWatchEvent(v);
        if (!e) {
          queue_.push(SourceEvent{
              SourceEvent::Type::kProblem,
              name(),
              {},
              {},
              "stdin: value " + std::to_string(count) + " is neither a watch event nor an object"});
          continue;
        }
        queue_.push(SourceEvent{SourceEvent::Type::kWatch, name(), {}, *e, ""});
      }
    }
    if (!why.empty())
      queue_.push(SourceEvent{SourceEvent::Type::kProblem, name(), {}, {}, "stdin: " + why});
    queue_.push(SourceEvent{SourceEvent::Type::kProblem,
                            name(),
                            {},
                            {},
                            "stdin: end of stream after " + std::to_string(count) +
                                " values; the state stays as it is"});
  });
}

// --- the API server ----------------------------------------------------------------------

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string relativeTo(const std::string& base, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (fs::path(base).parent_path() / path).string();
}

}  // namespace

Result<ApiConfig> loadKubeconfig(const std::string& path) {
  std::ifstream file(path);
  if (!file) return invalidArgument("kubeconfig " + path + ": cannot be read");
  YamlDocuments yaml = readYaml(readFile(path));
  if (!yaml.error.empty())
    return invalidArgument("kubeconfig " + path + ":" + std::to_string(yaml.errorLine) + ": " +
                           yaml.error);
  const Json doc = yaml.documents.empty() ? Json() : yaml.documents.front();
  auto bad = [&](const std::string& field, const std::string& why) {
    return invalidArgument("kubeconfig " + path + ": field '" + field + "': " + why);
  };
  const std::string current = json::string(doc, "current-context");
  auto findNamed = [&](const char* list, const std::string& name, const char* inner) -> Json {
    const Json& items = json::field(doc, list);
    if (!items.is_array()) return Json();
    for (const Json& item : items)
      if (json::string(item, "name") == name) return json::field(item, inner);
    return Json();
  };
  std::string clusterName, userName;
  const Json& clusters = json::field(doc, "clusters");
  const Json& users = json::field(doc, "users");
  if (!current.empty()) {
    const Json ctx = findNamed("contexts", current, "context");
    if (!ctx.is_object()) return bad("current-context", "no context named '" + current + "'");
    clusterName = json::string(ctx, "cluster");
    userName = json::string(ctx, "user");
  } else if (clusters.is_array() && clusters.size() == 1) {
    clusterName = json::string(clusters[0], "name");
    if (users.is_array() && users.size() == 1) userName = json::string(users[0], "name");
  } else {
    return bad("current-context", "missing");
  }
  const Json cluster = findNamed("clusters", clusterName, "cluster");
  if (!cluster.is_object()) return bad("clusters", "no cluster named '" + clusterName + "'");
  ApiConfig c;
  c.server = json::string(cluster, "server");
  if (c.server.rfind("https://", 0) != 0 && c.server.rfind("http://", 0) != 0)
    return bad("clusters[" + clusterName + "].server", "'" + c.server + "' is not an http(s) URL");
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  c.caFile = relativeTo(path, json::string(cluster, "certificate-authority"));
  c.caPem = base64Decode(json::string(cluster, "certificate-authority-data")).value_or("");
  c.insecureSkipVerify = json::boolean(cluster, "insecure-skip-tls-verify");
  if (!userName.empty()) {
    const Json user = findNamed("users", userName, "user");
    if (!user.is_object()) return bad("users", "no user named '" + userName + "'");
    c.token = json::string(user, "token");
    c.tokenFile = relativeTo(path, json::string(user, "tokenFile"));
    c.certFile = relativeTo(path, json::string(user, "client-certificate"));
    c.keyFile = relativeTo(path, json::string(user, "client-key"));
    c.certPem = base64Decode(json::string(user, "client-certificate-data")).value_or("");
    c.keyPem = base64Decode(json::string(user, "client-key-data")).value_or("");
    if (!json::field(user, "exec").is_null() || !json::field(user, "auth-provider").is_null())
      return bad("users[" + userName + "]",
                 "exec and auth-provider credentials are not supported; "
                 "use a token or a client certificate");
  }
  return c;
}

Result<ApiConfig> inClusterConfig() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port)
    return invalidArgument("in-cluster: KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod?)");
  const std::string dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  ApiConfig c;
  const std::string h = host;
  c.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  c.tokenFile = dir + "/token";
  c.caFile = dir + "/ca.crt";
  if (!fs::exists(c.tokenFile))
    return invalidArgument("in-cluster: " + c.tokenFile + " is missing");
  return c;
}

namespace {

struct Transfer {
  std::string buffer;  // a partial line
  std::string body;    // whole body (lists)
  bool streaming = false;
  std::function<bool(const Json&)> onLine;  // false: stop the transfer
  const std::atomic<bool>* stop = nullptr;
  bool aborted = false;
};

size_t onData(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t bytes = size * n;
  if (!t->streaming) {
    t->body.append(data, bytes);
    return bytes;
  }
  t->buffer.append(data, bytes);
  size_t start = 0;
  while (true) {
    const size_t nl = t->buffer.find('\n', start);
    if (nl == std::string::npos) break;
    const std::string line = t->buffer.substr(start, nl - start);
    start = nl + 1;
    if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
    auto j = json::parse(line);
    if (!j || !t->onLine(*j)) {
      t->aborted = true;
      return 0;  // ends the transfer
    }
  }
  t->buffer.erase(0, start);
  return bytes;
}

int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->stop->load() ? 1 : 0;
}

struct Response {
  long status = 0;
  std::string error;  // transport error
};

Response request(const ApiConfig& c, const std::string& url, Transfer& t, long timeoutSeconds) {
  Response r;
  CURL* curl = curl_easy_init();
  if (!curl) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  std::string token = c.token;
  if (!c.tokenFile.empty()) {
    token = readFile(c.tokenFile);
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  }
  const std::string auth = "Authorization: Bearer " + token;
  if (!token.empty()) headers = curl_slist_append(headers, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, onProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeoutSeconds);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (!c.caFile.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, c.caFile.c_str());
  curl_blob ca{const_cast<char*>(c.caPem.data()), c.caPem.size(), CURL_BLOB_COPY};
  if (!c.caPem.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
  if (c.insecureSkipVerify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!c.certFile.empty()) curl_easy_setopt(curl, CURLOPT_SSLCERT, c.certFile.c_str());
  if (!c.keyFile.empty()) curl_easy_setopt(curl, CURLOPT_SSLKEY, c.keyFile.c_str());
  curl_blob cert{const_cast<char*>(c.certPem.data()), c.certPem.size(), CURL_BLOB_COPY};
  curl_blob key{const_cast<char*>(c.keyPem.data()), c.keyPem.size(), CURL_BLOB_COPY};
  if (!c.certPem.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (!c.keyPem.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  }
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.aborted) &&
      !(rc == CURLE_OPERATION_TIMEDOUT && t.streaming))
    r.error = curl_easy_strerror(rc);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return r;
}

}  // namespace

void ApiSource::start() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (const KindInfo& k : watchedKinds()) threads_.emplace_back([this, &k] { run(k); });
}

void ApiSource::stop() {
  stop_ = true;
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void ApiSource::run(const KindInfo& kind) {
  std::string resourceVersion;
  auto backoff = std::chrono::seconds(1);
  bool synced = false;
  auto problem = [&](const std::string& what) {
    queue_.push(SourceEvent{SourceEvent::Type::kProblem,
                            name(),
                            {},
                            {},
                            std::string(kind.kind) + " (" + kind.path + "): " + what});
  };
  auto sleepFor = [&](std::chrono::seconds d) {
    for (auto until = std::chrono::steady_clock::now() + d;
         !stop_.load() && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  };
  auto failed = [&](const std::string& what) {
    problem(what + "; retrying in " + std::to_string(backoff.count()) + " s");
    sleepFor(backoff);
    backoff = std::min(backoff * 2, std::chrono::seconds(30));
  };
  while (!stop_.load()) {
    if (resourceVersion.empty()) {
      // List (in pages), then watch from the list's resourceVersion.
      std::vector<Json> items;
      std::string next, listVersion;
      bool ok = true, missing = false;
      do {
        Transfer t;
        t.stop = &stop_;
        std::string url = config_.server + kind.path + "?limit=500";
        if (!next.empty()) url += "&continue=" + next;
        Response r = request(config_, url, t, 60);
        if (stop_.load()) return;
        if (!r.error.empty() || r.status != 200) {
          if (r.status == 404)
            missing = true;  // e.g. the L7Rule CRD is not installed
          else
            failed("list: " + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error));
          ok = false;
          break;
        }
        Json body = json::parse(t.body).value_or(Json(nullptr));
        if (!json::field(body, "items").is_array()) {
          failed("list: the response is not a list");
          ok = false;
          break;
        }
        for (Json& item : body["items"]) {
          if (!item.is_object()) continue;
          if (!item.contains("kind")) item["kind"] = kind.kind;
          items.push_back(std::move(item));
        }
        const Json md = json::field(body, "metadata");
        listVersion = json::string(md, "resourceVersion");
        next = json::string(md, "continue");
      } while (!next.empty());
      if (missing) {
        queue_.push(SourceEvent{SourceEvent::Type::kReplaceKind, kind.kind, {}, {}, ""});
        if (!synced)
          queue_.push(
              SourceEvent{SourceEvent::Type::kSynced, std::string("api/") + kind.kind, {}, {}, ""});
        synced = true;
        sleepFor(std::chrono::seconds(30));  // look again later (a CRD may be installed)
        continue;
      }
      if (!ok) continue;
      queue_.push(
          SourceEvent{SourceEvent::Type::kReplaceKind, kind.kind, std::move(items), {}, ""});
      if (!synced)
        queue_.push(
            SourceEvent{SourceEvent::Type::kSynced, std::string("api/") + kind.kind, {}, {}, ""});
      synced = true;
      resourceVersion = listVersion;
      backoff = std::chrono::seconds(1);
    }
    // Watch until the server ends it (timeoutSeconds), it says 410 Gone, or it fails.
    Transfer t;
    t.stop = &stop_;
    t.streaming = true;
    bool gone = false;
    std::string watchError;
    t.onLine = [&](const Json& line) {
      auto e = parseWatchEvent(line);
      if (!e) return true;
      if (e->type == WatchEvent::Type::kError) {
        if (json::integer(e->object, "code", 0) == 410)
          gone = true;
        else
          watchError = json::field(e->object, "message").is_string()
                           ? json::string(e->object, "message")
                           : e->object.dump(-1, ' ', false, Json::error_handler_t::replace);
        return false;
      }
      const Json md = json::field(e->object, "metadata");
      if (md.is_object() && md.contains("resourceVersion") && md["resourceVersion"].is_string())
        resourceVersion = md["resourceVersion"];
      if (e->type != WatchEvent::Type::kBookmark) {
        if (!e->object.contains("kind")) e->object["kind"] = kind.kind;
        queue_.push(SourceEvent{SourceEvent::Type::kWatch, kind.kind, {}, std::move(*e), ""});
      }
      return true;
    };
    const std::string url = config_.server + kind.path + "?watch=1&allowWatchBookmarks=true" +
                            "&timeoutSeconds=300&resourceVersion=" + resourceVersion;
    Response r = request(config_, url, t, 330);
    if (stop_.load()) return;
    auto restart = [&](const char* reason) {
      queue_.push(SourceEvent{SourceEvent::Type::kWatchRestart, kind.kind, {}, {}, reason});
    };
    if (gone || r.status == 410) {
      restart("gone");
      resourceVersion.clear();  // too old: list again
      continue;
    }
    if (!watchError.empty()) {
      restart("error");
      resourceVersion.clear();
      failed("watch error: " + watchError);
      continue;
    }
    if (!r.error.empty() || (r.status != 200 && r.status != 0)) {
      restart("error");
      failed("watch: " + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error));
      continue;
    }
    restart("ended");
    backoff = std::chrono::seconds(1);
  }
}

}  // namespace nodeplane::agent
