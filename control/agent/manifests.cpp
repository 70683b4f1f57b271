#include "control/agent/manifests.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

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

Json toJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(n);
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& item : n) a.push_back(toJson(item));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = toJson(kv.second);
      return o;
    }
  }
  return nullptr;
}

void add(Json doc, const std::string& origin, LoadedObjects& out) {
  if (doc.is_null()) return;  // an empty document
  if (!doc.is_object()) {
    out.problems.push_back(origin + ": a document that is not an object");
    return;
  }
  if (doc.value("kind", "") == "List" || (doc.contains("items") && doc["items"].is_array() &&
                                          doc.value("kind", "").ends_with("List"))) {
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
    while (in >> std::ws && in.peek() != EOF) {
      Json doc;
      try {
        in >> doc;  // one value; several may follow
      } catch (const Json::exception&) {
        doc = Json(Json::value_t::discarded);
      }
      if (doc.is_discarded()) {
        out.problems.push_back(origin + ": not valid JSON");
        break;
      }
      if (doc.is_array())
        for (Json& d : doc) add(std::move(d), origin, out);
      else
        add(std::move(doc), origin, out);
    }
    return out;
  }
  try {
    for (const YAML::Node& doc : YAML::LoadAll(text)) add(toJson(doc), origin, out);
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
