// A blocking control-socket client for npctl, nodeplane-cni and tests: connect, send one request
// line, read one reply line, with a deadline. kUnavailable when no daemon listens.
#pragma once

#include <chrono>
#include <string>

#include "control/protocol.h"
#include "core/result.h"

namespace nodeplane::control {

class ControlClient {
 public:
  explicit ControlClient(std::string socketPath,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : path_(std::move(socketPath)), timeout_(timeout) {}

  // One request/reply exchange on a fresh connection.
  Result<Json> call(const std::string& op, const Json& args = Json::object()) const;

 private:
  std::string path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace nodeplane::control
