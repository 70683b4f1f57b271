// Delegation to the IPAM plugin named in the network config (normally the standard host-local),
// as the CNI spec describes: same environment with CNI_COMMAND set, the network config on stdin,
// its result or error JSON on stdout.
#pragma once

#include <map>
#include <string>

#include "control/protocol.h"
#include "core/result.h"

namespace nodeplane::cni {

using Json = control::Json;

struct PluginError {
  int code = 0;
  std::string msg;
  std::string details;
};

// Runs plugin `type` (searched in the colon-separated CNI_PATH) with `command`.
// On success returns its stdout parsed as JSON (null for an empty output, as DEL gives).
// On failure, `error` gets the plugin's CNI error when it printed one.
Result<Json> invokeDelegate(const std::string& type, const std::string& command,
                            const std::string& stdinConfig, const std::string& cniPath,
                            PluginError* error);

}  // namespace nodeplane::cni
