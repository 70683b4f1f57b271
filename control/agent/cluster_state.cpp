#include "control/agent/cluster_state.h"

#include <algorithm>

#include "core/json.h"

namespace nodeplane::agent {

const std::vector<KindInfo>& watchedKinds() {
  static const std::vector<KindInfo> kinds = {
      {"Node", "/api/v1/nodes", false},
      {"Namespace", "/api/v1/namespaces", false},
      {"Pod", "/api/v1/pods", true},
      {"Service", "/api/v1/services", true},
      {"EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", true},
      {"Endpoints", "/api/v1/endpoints", true},
      {"NetworkPolicy", "/apis/networking.k8s.io/v1/networkpolicies", true},
      {"L7Rule", "/apis/nodeplane.io/v1/l7rules", true},
      {"ServiceExport", "/apis/multicluster.x-k8s.io/v1alpha1/serviceexports", true},
  };
  return kinds;
}

bool ClusterState::watched(const std::string& kind) {
  const auto& k = watchedKinds();
  return std::any_of(k.begin(), k.end(), [&](const KindInfo& i) { return kind == i.kind; });
}

std::string ClusterState::keyOf(const Json& o) {
  const Json md = json::field(o, "metadata");
  const std::string name = json::string(md, "name");
  const std::string ns = json::string(md, "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

bool ClusterState::apply(const WatchEvent& e) {
  if (e.type == WatchEvent::Type::kBookmark || e.type == WatchEvent::Type::kError) return false;
  if (!e.object.is_object()) return false;
  const std::string kind = json::string(e.object, "kind");
  if (!watched(kind)) return false;
  const std::string key = keyOf(e.object);
  auto& byKey = objects_[kind];
  if (e.type == WatchEvent::Type::kDeleted) return byKey.erase(key) > 0;
  auto it = byKey.find(key);
  if (it != byKey.end() && it->second == e.object) return false;
  byKey[key] = e.object;
  return true;
}

bool ClusterState::replaceKind(const std::string& kind, const std::vector<Json>& objects) {
  std::map<std::string, Json> next;
  for (const Json& o : objects) {
    if (!o.is_object()) continue;
    Json copy = o;
    if (!copy.contains("kind")) copy["kind"] = kind;  // list items omit it
    const std::string key = keyOf(copy);  // before the move: Json's operator= takes its copy first
    next[key] = std::move(copy);
  }
  auto& current = objects_[kind];
  if (current == next) return false;
  current = std::move(next);
  return true;
}

bool ClusterState::replaceSource(const std::string& source, const std::vector<Json>& objects) {
  bool changed = false;
  auto& previous = sources_[source];
  std::map<std::string, std::vector<std::string>> now;
  for (const Json& o : objects) {
    const std::string kind = json::string(o, "kind");
    if (!watched(kind)) continue;
    now[kind].push_back(keyOf(o));
    changed |= apply(WatchEvent{WatchEvent::Type::kModified, o});
  }
  // What the source no longer defines is gone (unless another source defines it too: the last
  // load wins, and a removal only removes what this source had).
  for (const auto& [kind, keys] : previous)
    for (const std::string& key : keys) {
      const auto& nowKeys = now[kind];
      if (std::find(nowKeys.begin(), nowKeys.end(), key) == nowKeys.end())
        changed |= objects_[kind].erase(key) > 0;
    }
  previous = std::move(now);
  return changed;
}

std::vector<const Json*> ClusterState::list(const std::string& kind) const {
  std::vector<const Json*> out;
  auto it = objects_.find(kind);
  if (it == objects_.end()) return out;
  for (const auto& [key, o] : it->second) out.push_back(&o);
  return out;
}

const Json* ClusterState::find(const std::string& kind, const std::string& ns,
                               const std::string& name) const {
  auto it = objects_.find(kind);
  if (it == objects_.end()) return nullptr;
  auto o = it->second.find(ns.empty() ? name : ns + "/" + name);
  return o == it->second.end() ? nullptr : &o->second;
}

size_t ClusterState::size() const {
  size_t n = 0;
  for (const auto& [kind, m] : objects_) n += m.size();
  return n;
}

}  // namespace nodeplane::agent
