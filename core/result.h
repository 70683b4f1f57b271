// Result<T>: the control-path error type (the data plane never uses it; it has drop counters).
// An Error carries a machine-readable code and a message that names the object and field.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace nodeplane {

enum class ErrorCode {
  kInvalidArgument,    // a field has a bad value
  kNotFound,           // the named object does not exist
  kAlreadyExists,      // the object exists with different content
  kResourceExhausted,  // a table or the port space is full
  kUnavailable,        // a peer (daemon, plugin) cannot be reached
  kInternal,           // a library call failed
  // Control protocol level.
  kBadRequest,          // not a JSON object of the protocol's shape
  kUnknownOperation,    // no such op
  kUnsupportedVersion,  // protocol version we do not speak
  kTooLarge,            // request above the size cap
  kPermissionDenied,    // peer credentials not allowed
};

const char* errorCodeName(ErrorCode code);
std::optional<ErrorCode> errorCodeByName(std::string_view name);

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;
inline Status okStatus() {
  return Ok{};
}

inline Error makeError(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}
inline Error invalidArgument(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

}  // namespace nodeplane
