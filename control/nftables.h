// One nftables script run through libnftables (no nft binary, no shell): the host-side rules the
// daemon keeps (uplink_guard.h, node_port_redirect.h). Control thread only.
#pragma once

#include <string>

#include "core/result.h"

namespace nodeplane::control {

// Runs `script` as one nftables transaction; the error names `what` and nftables' own message.
Status runNftScript(const std::string& script, const std::string& what);
// A name nftables can take unquoted inside a quoted device string (an interface name).
bool isSafeInterfaceName(const std::string& name);

}  // namespace nodeplane::control
