#include "control/protocol.h"

#include "core/json.h"

namespace nodeplane::control {

Result<Request> parseRequest(std::string_view line, Json* idOut) {
  std::string why;
  auto parsed = json::parse(line, &why);
  if (!parsed) return makeError(ErrorCode::kBadRequest, "request is " + why);
  Json& doc = *parsed;
  if (!doc.is_object()) return makeError(ErrorCode::kBadRequest, "request is not a JSON object");
  Request request;
  if (doc.contains("id")) {
    request.id = doc["id"];
    if (idOut) *idOut = request.id;
  }
  if (!doc.contains("v"))
    return makeError(ErrorCode::kBadRequest, "field 'v' (protocol version) is missing");
  if (!doc["v"].is_number_integer() || doc["v"].get<int64_t>() != kProtocolVersion)
    return makeError(ErrorCode::kUnsupportedVersion,
                     "field 'v': protocol version " + doc["v"].dump() + " not supported (this " +
                         "daemon speaks " + std::to_string(kProtocolVersion) + ")");
  if (!doc.contains("op") || !doc["op"].is_string())
    return makeError(ErrorCode::kBadRequest, "field 'op' is missing or not a string");
  request.op = doc["op"].get<std::string>();
  if (doc.contains("args")) {
    if (!doc["args"].is_object())
      return makeError(ErrorCode::kBadRequest, "field 'args' is not a JSON object");
    request.args = std::move(doc["args"]);
  }
  for (const auto& [key, value] : doc.items())
    if (key != "v" && key != "id" && key != "op" && key != "args")
      return makeError(ErrorCode::kBadRequest, "unknown field '" + key + "' in request");
  return request;
}

std::string formatRequest(const Request& request) {
  Json doc = {{"v", kProtocolVersion}, {"op", request.op}, {"args", request.args}};
  if (!request.id.is_null()) doc["id"] = request.id;
  // Replace invalid UTF-8 (from a manifest, an interface name) instead of throwing.
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string formatReply(const Json& id, const Result<Json>& result) {
  Json doc = {{"v", kProtocolVersion}, {"id", id}, {"ok", result.ok()}};
  if (result.ok()) {
    doc["result"] = result.value();
  } else {
    doc["error"] = {{"code", errorCodeName(result.error().code)},
                    {"message", result.error().message}};
  }
  // Replace invalid UTF-8 (e.g. from an interface name) instead of throwing.
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<Json> parseReply(std::string_view line) {
  auto parsed = json::parse(line);
  if (!parsed || !json::field(*parsed, "ok").is_boolean())
    return makeError(ErrorCode::kBadRequest, "malformed reply from the daemon");
  const Json& doc = *parsed;
  if (doc["ok"].get<bool>()) {
    const Json& result = json::field(doc, "result");
    return result.is_null() ? Json::object() : result;
  }
  const Json& err = json::field(doc, "error");
  auto code = errorCodeByName(json::string(err, "code", "internal"));
  return makeError(code.value_or(ErrorCode::kInternal),
                   json::string(err, "message", "unknown error"));
}

Error ArgReader::error(const char* field, const std::string& message) const {
  return invalidArgument(op_ + ": field '" + field + "': " + message);
}

Result<std::string> ArgReader::string(const char* field) const {
  if (!args_.contains(field)) return error(field, "missing");
  if (!args_[field].is_string()) return error(field, "not a string");
  return args_[field].get<std::string>();
}

Result<std::string> ArgReader::optionalString(const char* field,
                                              const std::string& fallback) const {
  if (!has(field)) return fallback;
  return string(field);
}

Result<int64_t> ArgReader::integer(const char* field, int64_t min, int64_t max) const {
  if (!args_.contains(field)) return error(field, "missing");
  if (!args_[field].is_number_integer()) return error(field, "not an integer");
  int64_t v = args_[field].get<int64_t>();
  if (v < min || v > max)
    return error(
        field, std::to_string(v) + " outside " + std::to_string(min) + ".." + std::to_string(max));
  return v;
}

Status ArgReader::onlyFields(std::initializer_list<const char*> known) const {
  for (const auto& [key, value] : args_.items()) {
    bool found = false;
    for (const char* k : known) found = found || key == k;
    if (!found) return invalidArgument(op_ + ": unknown field '" + key + "'");
  }
  return okStatus();
}

}  // namespace nodeplane::control
