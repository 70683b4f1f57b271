// The `apply` request read straight from its line with simdjson: a large cluster's desired state
// is megabytes of JSON, and building nlohmann-json's DOM for it costs more than everything the
// daemon then does with it. The services (the bulk) are read from simdjson's DOM by the same
// reader the other ops use (model_json_reader.h); nodes and policy go through nlohmann-json.
// Control thread only (the simdjson parser and its buffers are reused from call to call).
#pragma once

#include <optional>
#include <string_view>

#include "control/model.h"
#include "control/protocol.h"
#include "core/result.h"

namespace nodeplane::control {

struct ApplyRequest {
  Json id;                     // null when absent
  Result<DesiredState> state;  // or every problem found in the arguments
};

// The request on `line` when it is a well-formed apply request (protocol envelope and an args
// object); nullopt for anything else, which the generic path then reads and reports on.
std::optional<ApplyRequest> readApplyRequest(std::string_view line);

}  // namespace nodeplane::control
