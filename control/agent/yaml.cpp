#include "control/agent/yaml.h"

#include <yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>

namespace nodeplane::agent {

namespace {

using json::Json;

// YAML 1.2 core schema resolution for plain scalars; quoted scalars are strings.
Json plainScalar(const std::string& v) {
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

// A collection being built: its value, the key waiting for its value (mappings), its anchor.
struct Open {
  Json value;
  std::string key;
  bool haveKey = false;
  std::string anchor;
  size_t nodesAtStart = 0;  // the document's node count when it opened (for its anchor's cost)
};

struct Anchored {
  Json value;
  size_t nodes = 0;  // what one more use of it costs
};

class Reader {
 public:
  explicit Reader(std::string_view text) : budget_(nodeBudget(text.size())) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
  }
  ~Reader() { yaml_parser_delete(&parser_); }

  YamlDocuments read() {
    YamlDocuments out;
    while (true) {
      yaml_event_t event;
      if (!yaml_parser_parse(&parser_, &event)) {
        out.error = parser_.problem != nullptr ? parser_.problem : "not YAML";
        out.errorLine = parser_.problem_mark.line + 1;
        return out;
      }
      std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> owned(&event, yaml_event_delete);
      const size_t line = event.start_mark.line + 1;
      switch (event.type) {
        case YAML_STREAM_END_EVENT:
          return out;
        case YAML_DOCUMENT_START_EVENT:
          root_ = Json();
          haveRoot_ = false;
          nodes_ = 0;
          anchors_.clear();
          break;
        case YAML_DOCUMENT_END_EVENT:
          out.documents.push_back(haveRoot_ ? std::move(root_) : Json());
          break;
        case YAML_SCALAR_EVENT: {
          const std::string value(reinterpret_cast<const char*>(event.data.scalar.value),
                                  event.data.scalar.length);
          const bool plain = event.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                             event.data.scalar.plain_implicit;
          if (!stack_.empty() && isMapping(stack_.back()) && !stack_.back().haveKey) {
            stack_.back().key = value;  // a mapping key: a string whatever it looks like
            stack_.back().haveKey = true;
            break;
          }
          if (!count(1, &out, line)) return out;
          Json v = plain ? plainScalar(value) : Json(value);
          if (event.data.scalar.anchor != nullptr)
            anchors_[reinterpret_cast<const char*>(event.data.scalar.anchor)] = Anchored{v, 1};
          if (!place(std::move(v), &out, line)) return out;
          break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
          if (!stack_.empty() && isMapping(stack_.back()) && !stack_.back().haveKey) {
            fail(&out, line, "a mapping key that is not a scalar");
            return out;
          }
          if (stack_.size() >= json::kMaxDepth) {
            fail(&out, line, "nested deeper than " + std::to_string(json::kMaxDepth) + " levels");
            return out;
          }
          if (!count(1, &out, line)) return out;
          const bool mapping = event.type == YAML_MAPPING_START_EVENT;
          const yaml_char_t* anchor =
              mapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor;
          Open open;
          open.value = mapping ? Json::object() : Json::array();
          if (anchor != nullptr) open.anchor = reinterpret_cast<const char*>(anchor);
          open.nodesAtStart = nodes_;
          stack_.push_back(std::move(open));
          break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
          Open done = std::move(stack_.back());
          stack_.pop_back();
          if (!done.anchor.empty())
            anchors_[done.anchor] = Anchored{done.value, nodes_ - done.nodesAtStart};
          if (!place(std::move(done.value), &out, line)) return out;
          break;
        }
        case YAML_ALIAS_EVENT: {
          auto it = anchors_.find(reinterpret_cast<const char*>(event.data.alias.anchor));
          if (it == anchors_.end()) {
            fail(&out, line, "an alias of an unknown anchor");
            return out;
          }
          if (!stack_.empty() && isMapping(stack_.back()) && !stack_.back().haveKey) {
            if (!it->second.value.is_string()) {
              fail(&out, line, "a mapping key that is not a scalar");
              return out;
            }
            stack_.back().key = it->second.value.get<std::string>();
            stack_.back().haveKey = true;
            break;
          }
          if (!count(it->second.nodes, &out, line)) return out;
          if (!place(it->second.value, &out, line)) return out;
          break;
        }
        default:
          break;
      }
    }
  }

 private:
  static bool isMapping(const Open& o) { return o.value.is_object(); }

  // Charges `n` values to the document's budget.
  bool count(size_t n, YamlDocuments* out, size_t line) {
    if (n > budget_ || nodes_ > budget_ - n)
      return fail(out, line, "expands to more nodes than its size allows (aliases of aliases?)");
    nodes_ += n;
    return true;
  }

  // Puts a finished value where it belongs: the open collection, or the document.
  bool place(Json v, YamlDocuments* out, size_t line) {
    if (stack_.empty()) {
      root_ = std::move(v);
      haveRoot_ = true;
      return true;
    }
    Open& top = stack_.back();
    if (top.value.is_array()) {
      top.value.push_back(std::move(v));
    } else {
      if (!top.haveKey) return fail(out, line, "a mapping key that is not a scalar");
      top.value[top.key] = std::move(v);
      top.haveKey = false;
    }
    return true;
  }

  // Records the problem; false, so that callers can `return fail(...)` from a check.
  static bool fail(YamlDocuments* out, size_t line, const std::string& why) {
    out->error = why;
    out->errorLine = line;
    return false;
  }

  yaml_parser_t parser_;
  const size_t budget_;
  size_t nodes_ = 0;
  Json root_;
  bool haveRoot_ = false;
  std::vector<Open> stack_;
  std::map<std::string, Anchored> anchors_;
};

}  // namespace

size_t nodeBudget(size_t textBytes) {
  return std::max<size_t>(100'000, 4 * textBytes);
}

YamlDocuments readYaml(std::string_view text) {
  return Reader(text).read();
}

}  // namespace nodeplane::agent
