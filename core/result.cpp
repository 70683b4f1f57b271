#include "core/result.h"

#include <optional>
#include <string_view>

namespace nodeplane {

std::optional<ErrorCode> errorCodeByName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::kPermissionDenied); ++i) {
    auto code = static_cast<ErrorCode>(i);
    if (name == errorCodeName(code)) return code;
  }
  return std::nullopt;
}

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kBadRequest:
      return "bad_request";
    case ErrorCode::kUnknownOperation:
      return "unknown_operation";
    case ErrorCode::kUnsupportedVersion:
      return "unsupported_version";
    case ErrorCode::kTooLarge:
      return "too_large";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
  }
  return "internal";
}

}  // namespace nodeplane
