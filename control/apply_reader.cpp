#include "control/apply_reader.h"

#include <simdjson.h>

#include <limits>

#include "control/model_json_reader.h"
#include "core/json.h"

namespace nodeplane::control {

namespace {

namespace dom = simdjson::dom;

// The reader's view over simdjson's DOM. A non-negative integer may be INT64 or UINT64 there.
class SimdView {
 public:
  explicit SimdView(dom::element e) : e_(e) {}
  bool isNull() const { return e_.is_null(); }
  bool isObject() const { return e_.is_object(); }
  bool isArray() const { return e_.is_array(); }
  bool isString() const { return e_.is_string(); }
  bool isBool() const { return e_.is_bool(); }
  bool isInteger() const { return e_.is_int64() || e_.is_uint64(); }
  bool isUnsigned() const {
    return e_.is_uint64() || (e_.is_int64() && e_.get_int64().value_unsafe() >= 0);
  }
  std::string_view string() const { return e_.get_string().value_unsafe(); }
  bool boolean() const { return e_.get_bool().value_unsafe(); }
  int64_t integer() const {
    if (e_.is_int64()) return e_.get_int64().value_unsafe();
    return std::numeric_limits<int64_t>::max();  // beyond int64: above any accepted range
  }
  uint64_t unsignedValue() const { return e_.get_uint64().value_unsafe(); }
  size_t size() const {
    const dom::array array = e_.get_array().value_unsafe();
    return array.size();
  }
  template <class F>
  Status members(F&& f) const {
    const dom::object object = e_.get_object().value_unsafe();  // a handle into the tape
    for (dom::key_value_pair field : object)
      if (auto st = f(field.key, SimdView(field.value)); !st) return st;
    return okStatus();
  }
  template <class F>
  Status elements(F&& f) const {
    size_t i = 0;
    const dom::array array = e_.get_array().value_unsafe();
    for (dom::element v : array)
      if (auto st = f(i++, SimdView(v)); !st) return st;
    return okStatus();
  }
  std::string dump() const { return simdjson::minify(e_); }
  Json json() const {
    return json::parse(simdjson::minify(e_)).value_or(Json(Json::value_t::discarded));
  }

 private:
  dom::element e_;
};

dom::parser& parser() {
  // Control thread only; keeps its buffers for the next request. Nesting past json::kMaxDepth
  // is a parse error here too (the generic path then refuses the line).
  static dom::parser p = [] {
    dom::parser made;
    // Only fails without memory; then parse() allocates (with the default depth) as before.
    if (made.allocate(64 * 1024, json::kMaxDepth) != simdjson::SUCCESS) return dom::parser();
    return made;
  }();
  return p;
}

}  // namespace

std::optional<ApplyRequest> readApplyRequest(std::string_view line) {
  dom::element doc;
  if (parser().parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS) return std::nullopt;
  dom::object envelope;
  if (doc.get_object().get(envelope) != simdjson::SUCCESS) return std::nullopt;
  std::optional<dom::element> id, args;
  bool versionOk = false, isApply = false;
  for (dom::key_value_pair field : envelope) {
    if (field.key == "v") {
      int64_t v;
      versionOk = field.value.get_int64().get(v) == simdjson::SUCCESS && v == kProtocolVersion;
    } else if (field.key == "op") {
      std::string_view op;
      isApply = field.value.get_string().get(op) == simdjson::SUCCESS && op == "apply";
    } else if (field.key == "id") {
      id = field.value;
    } else if (field.key == "args") {
      args = field.value;
    } else {
      return std::nullopt;  // the generic path names the unknown field
    }
  }
  if (!versionOk || !isApply || !args || !args->is_object()) return std::nullopt;
  ApplyRequest request{id ? SimdView(*id).json() : Json(nullptr),
                       reader::readDesiredState(SimdView(*args))};
  return request;
}

}  // namespace nodeplane::control
