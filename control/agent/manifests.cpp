#include "control/agent/manifests.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/json.h"

namespace nodeplane::agent {

namespace fs = std::filesystem;

namespace {

// YAML 1.2 core schema resolution for plain scalars; quoted scalars are strings.
Json scalar(const YAML::Node& n) {
  const std::string& v = n.Scalar();
  if (n.Tag() == "!") return v;  // quoted
  if (v == "null" || v == "Null" || v == "NULL" || v == "~" || v.empty()) return nullptr;
  if (v == "true" || v == "True" || v == "TRUE") return true;
  if (v == "false" || v == "False" || v == "FALSE") return false;
  const char* begin = v.c_str();
  char* end = nullptr;
  if (v.find_first_not_of("+-0123456789") == std::string::npos && v != "+" && v != "-") {
    errno = 0;
    const long long i = std::strtoll(begin, &end, 10);
    if (*end == '\0' && errno == 0) return i;
  }
  if (v.find_first_not_of("+-0123456789.eE") == std::string::npos &&
      v.find_first_of("0123456789") != std::string::npos) {
    const double d = std::strtod(begin, &end);
    if (*end == '\0') return d;
  }
  return v;
}

// How much of a YAML document may be turned into JSON. Aliases make a node appear wherever it is
// referred to: nine levels of ten aliases each ("billion laughs") would expand to 10^9 nodes.
// A document may expand to at most a few nodes per byte of its text, and nest no deeper than
// JSON may.
struct Budget {
  size_t nodes;
  bool exceeded = false;
  std::string why;
};

size_t nodeBudget(size_t textBytes) {
  return std::max<size_t>(100'000, 4 * textBytes);
}

Json toJson(const YAML::Node& n, Budget& budget, unsigned depth = 0) {
  if (budget.exceeded) return nullptr;
  if (budget.nodes == 0) {
    budget.exceeded = true;
    budget.why = "expands to more nodes than its size allows (aliases of aliases?)";
    return nullptr;
  }
  --budget.nodes;
  if (depth > json::kMaxDepth) {
    budget.exceeded = true;
    budget.why = "nested deeper than " + std::to_string(json::kMaxDepth) + " levels";
    return nullptr;
  }
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(n);
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : n) a.push_back(toJson(item, budget, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {  // JSON keys are strings
          budget.exceeded = true;
          budget.why = "a mapping key that is not a scalar";
          return nullptr;
        }
        o[kv.first.Scalar()] = toJson(kv.second, budget, depth + 1);
      }
      return o;
    }
  }
  return nullptr;
}

// yaml-cpp 0.7 never returns from a document whose top-level node begins with ',' (after any
// comments, anchors or tags): found by fuzzing. Such a document is refused before yaml-cpp sees
// it. Returns the 1-based line of the first one, or 0.
size_t strayFlowEntryLine(const std::string& text) {
  bool atDocumentStart = true;
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      // A document marker starts the next document.
      if (text.compare(i + 1, 3, "---") == 0 || text.compare(i + 1, 3, "...") == 0) {
        atDocumentStart = true;
        i += 3;
      }
      continue;
    }
    if (!atDocumentStart) {
      // Skip to the end of the line: only a marker starts a document again.
      const size_t nl = text.find('\n', i);
      if (nl == std::string::npos) break;
      i = nl - 1;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (i == 0 && (text.compare(0, 3, "---") == 0 || text.compare(0, 3, "...") == 0)) {
      i += 2;
      continue;
    }
    if (c == '#' || c == '%') {  // a comment or a directive: the rest of the line
      const size_t nl = text.find('\n', i);
      if (nl == std::string::npos) break;
      i = nl - 1;
      continue;
    }
    if (c == '&' || c == '!') {  // an anchor or a tag: the node follows it
      while (i + 1 < text.size() && text[i + 1] != ' ' && text[i + 1] != '\t' &&
             text[i + 1] != '\n')
        ++i;
      continue;
    }
    if (c == ',') return line;
    atDocumentStart = false;
    --i;  // look at this line's end from here
  }
  return 0;
}

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
  if (const size_t line = strayFlowEntryLine(text); line != 0) {
    out.problems.push_back(origin + ":" + std::to_string(line) +
                           ": YAML error: a document begins with ','");
    return out;
  }
  try {
    Budget budget{nodeBudget(text.size())};
    size_t index = 0;
    for (const YAML::Node& doc : YAML::LoadAll(text)) {
      ++index;
      Json converted = toJson(doc, budget);
      if (budget.exceeded) {
        // Nothing of this document is used, nor of the ones after it (the budget is spent).
        out.problems.push_back(origin + ": YAML document " + std::to_string(index) + " " +
                               budget.why + ": left out");
        break;
      }
      add(std::move(converted), origin, out);
    }
  } catch (const YAML::Exception& e) {
    // The documents before the bad one were read; the rest of the file is not trusted.
    out.problems.push_back(origin + ":" + std::to_string(e.mark.line + 1) +
                           ": YAML error: " + e.msg);
  }
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
