// The cluster as the agent last saw it: the objects of every kind it reads, by kind and
// namespace/name, as the API server serves them. Sources feed it watch events (or whole lists);
// the translation reads it. One thread (the agent's main loop).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace nodeplane::agent {

using Json = nlohmann::json;

// The kinds nodeplane needs, with where the API serves them.
struct KindInfo {
  const char* kind;
  const char* path;  // collection path on the API server
  bool namespaced;
};
const std::vector<KindInfo>& watchedKinds();

// A watch event as `kubectl get --watch --output-watch-events -o json` and the API print it.
struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  Json object;
};

class ClusterState {
 public:
  // Applies one event; false when it changed nothing (a repeat, a bookmark, another kind).
  bool apply(const WatchEvent& event);
  // Replaces every object of `kind` with `objects` (a list, or a re-list after 410 Gone).
  bool replaceKind(const std::string& kind, const std::vector<Json>& objects);
  // Replaces the objects that came from one source (a manifest set) with `objects`.
  bool replaceSource(const std::string& source, const std::vector<Json>& objects);

  // Objects of a kind, sorted by namespace/name.
  std::vector<const Json*> list(const std::string& kind) const;
  const Json* find(const std::string& kind, const std::string& ns, const std::string& name) const;
  size_t size() const;

  static std::string keyOf(const Json& object);  // "namespace/name" or "name"
  static bool watched(const std::string& kind);

 private:
  // kind -> key -> object. Objects from manifest sources also remember the source.
  std::map<std::string, std::map<std::string, Json>> objects_;
  std::map<std::string, std::map<std::string, std::vector<std::string>>>
      sources_;  // source -> kind -> keys
};

}  // namespace nodeplane::agent
