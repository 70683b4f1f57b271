// The control protocol: one JSON object per line each way over a Unix stream socket.
//   request: {"v": 1, "id": <any JSON>, "op": "pod.attach", "args": {...}}
//   reply:   {"v": 1, "id": <same>, "ok": true, "result": {...}}
//        or  {"v": 1, "id": <same>, "ok": false, "error": {"code": "...", "message": "..."}}
// "id" and "args" are optional; the reply echoes "id" (null when absent or unparseable).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "core/result.h"

namespace nodeplane::control {

inline constexpr int kProtocolVersion = 1;

using Json = nlohmann::json;

struct Request {
  Json id;  // null when absent
  std::string op;
  Json args = Json::object();
};

// Parses one request line. On error, `idOut` still gets the request's id if it could be read.
Result<Request> parseRequest(std::string_view line, Json* idOut = nullptr);

std::string formatRequest(const Request& request);
std::string formatReply(const Json& id, const Result<Json>& result);

// Parses a reply line (the client side): the result, or the server's error.
Result<Json> parseReply(std::string_view line);

// Reads typed fields out of "args", producing errors that name op and field.
class ArgReader {
 public:
  ArgReader(std::string op, const Json& args) : op_(std::move(op)), args_(args) {}

  Result<std::string> string(const char* field) const;
  Result<std::string> optionalString(const char* field, const std::string& fallback) const;
  Result<int64_t> integer(const char* field, int64_t min, int64_t max) const;
  bool has(const char* field) const { return args_.contains(field) && !args_[field].is_null(); }
  // Rejects fields not in `known` (a typo must not be silently ignored).
  Status onlyFields(std::initializer_list<const char*> known) const;
  Error error(const char* field, const std::string& message) const;

 private:
  std::string op_;
  const Json& args_;
};

}  // namespace nodeplane::control
