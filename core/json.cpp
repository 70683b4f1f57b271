#include "core/json.h"

#include <algorithm>
#include <cctype>

namespace nodeplane::json {

namespace {

const Json& nullJson() {
  static const Json null;
  return null;
}

}  // namespace

unsigned nestingDepth(std::string_view text) {
  unsigned depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  for (const char c : text) {
    if (inString) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::optional<Json> parse(std::string_view text, std::string* error, unsigned maxDepth) {
  if (nestingDepth(text) > maxDepth) {
    if (error) *error = "nested deeper than " + std::to_string(maxDepth) + " levels";
    return std::nullopt;
  }
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    if (error) *error = "not valid JSON";
    return std::nullopt;
  }
  return doc;
}

std::optional<std::string> readValueText(std::istream& in, std::string* error, unsigned maxDepth) {
  error->clear();
  in >> std::ws;
  if (in.peek() == std::char_traits<char>::eof()) return std::nullopt;
  std::string text;
  unsigned depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  char c;
  while (in.get(c)) {
    if (inString) {
      text.push_back(c);
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        inString = false;
      else
        continue;
      if (!inString && depth == 0) break;  // a top-level string
      continue;
    }
    if (depth == 0 && !text.empty() &&
        (std::isspace(static_cast<unsigned char>(c)) || c == '{' || c == '[' || c == '"')) {
      in.unget();  // the end of a top-level number or literal
      break;
    }
    text.push_back(c);
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      if (depth == 0) break;  // stray: parse() will say so
      if (--depth == 0) break;
    }
  }
  if (inString || depth != 0) {
    *error = "the stream ends inside a value";
    return std::nullopt;
  }
  if (deepest > maxDepth) *error = "nested deeper than " + std::to_string(maxDepth) + " levels";
  return text;
}

const Json& field(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullJson();
  auto it = object.find(key);
  return it == object.end() ? nullJson() : *it;
}

const Json& path(const Json& object, std::string_view dotted) {
  const Json* at = &object;
  while (true) {
    const size_t dot = dotted.find('.');
    at = &field(*at, dotted.substr(0, dot));
    if (dot == std::string_view::npos) return *at;
    dotted.remove_prefix(dot + 1);
  }
}

std::string string(const Json& object, std::string_view key, std::string_view fallback) {
  const Json& v = field(object, key);
  return v.is_string() ? v.get<std::string>() : std::string(fallback);
}

int64_t integer(const Json& object, std::string_view key, int64_t fallback) {
  const Json& v = field(object, key);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

bool boolean(const Json& object, std::string_view key, bool fallback) {
  const Json& v = field(object, key);
  return v.is_boolean() ? v.get<bool>() : fallback;
}

}  // namespace nodeplane::json
