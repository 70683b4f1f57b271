#include "control/agent/manifests.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/agent/yaml.h"
#include "core/json.h"

namespace nodeplane::agent {

namespace fs = std::filesystem;

namespace {

void add(Json doc, const std::string& origin, LoadedObjects& out) {
  if (doc.is_null()) return;  // an empty document
  if (!doc.is_object()) {
    out.problems.push_back(origin + ": a document that is not an object");
    return;
  }
  const std::string kind = json::string(doc, "kind");
  if (json::field(doc, "items").is_array() && kind.ends_with("List")) {
    for (Json& item : doc["items"]) add(std::move(item), origin, out);
    return;
  }
  out.objects.push_back(std::move(doc));
}

}  // namespace

LoadedObjects parseManifests(const std::string& text, const std::string& origin) {
  LoadedObjects out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '{' || text[first] == '[')) {
    // JSON: one value, or several concatenated (kubectl get -o json prints one).
    std::istringstream in(text);
    std::string why;
    while (auto value = json::readValueText(in, &why)) {
      auto doc = why.empty() ? json::parse(*value, &why) : std::nullopt;
      if (!doc) {
        out.problems.push_back(origin + ": a JSON value that is " + why);
        if (why.rfind("nested", 0) == 0) continue;  // skipped; the rest is read
        return out;
      }
      if (doc->is_array())
        for (Json& d : *doc) add(std::move(d), origin, out);
      else
        add(std::move(*doc), origin, out);
    }
    if (!why.empty()) out.problems.push_back(origin + ": not valid JSON: " + why);
    return out;
  }
  YamlDocuments yaml = readYaml(text);
  for (Json& doc : yaml.documents) add(std::move(doc), origin, out);
  if (!yaml.error.empty())  // what came before the bad document was read; nothing after it
    out.problems.push_back(origin + ":" + std::to_string(yaml.errorLine) +
                           ": YAML error: " + yaml.error);
  return out;
}

std::vector<std::string> manifestFiles(const std::string& path) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string ext = entry.path().extension().string();
      if (entry.is_regular_file(ec) && (ext == ".yaml" || ext == ".yml" || ext == ".json"))
        files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  return files;
}

LoadedObjects loadManifests(const std::string& path) {
  LoadedObjects out;
  for (const std::string& file : manifestFiles(path)) {
    std::ifstream in(file);
    if (!in) {
      out.problems.push_back(file + ": cannot be read");
      continue;
    }
    std::stringstream text;
    text << in.rdbuf();
    LoadedObjects one = parseManifests(text.str(), file);
    for (Json& o : one.objects) out.objects.push_back(std::move(o));
    for (std::string& p : one.problems) out.problems.push_back(std::move(p));
  }
  return out;
}

}  // namespace nodeplane::agent
