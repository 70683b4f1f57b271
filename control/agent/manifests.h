// Kubernetes objects from files: YAML (multi-document) or JSON, `kind: List` expanded as
// `kubectl get -o yaml` prints it. YAML scalars keep their YAML type (an unquoted 80 is a number,
// "80" a string), as the API server reads them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace nodeplane::agent {

using Json = nlohmann::json;

struct LoadedObjects {
  std::vector<Json> objects;
  std::vector<std::string> problems;  // "<file>: <why>" (a document that cannot be read is skipped)
};

// One document's text (YAML or JSON) to objects; `origin` names it in problems.
LoadedObjects parseManifests(const std::string& text, const std::string& origin);
// A file, or every *.yaml, *.yml and *.json file of a directory (sorted, not recursive).
LoadedObjects loadManifests(const std::string& path);
// The files loadManifests reads for `path` (to watch them).
std::vector<std::string> manifestFiles(const std::string& path);

}  // namespace nodeplane::agent
