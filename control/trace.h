// npctl trace: a described packet sent through the real stages of the running daemon, on the
// control thread, with the current snapshot and connection table, without transmitting it and
// without changing any shared state (WorkerContext::dryRun). Each stage's decision is reported.
#pragma once

#include "control/node_controller.h"
#include "control/protocol.h"
#include "core/result.h"
#include "dataplane/dataplane_backend.h"

namespace nodeplane::control {

// args: from ("namespace/name" of an attached pod, or "uplink"), src, dst, protocol
// (TCP/UDP/ICMP, default TCP), sport, dport, flags (TCP: any of "SAFRP", default "S"),
// payload (text), ttl. The result lists each stage's verdict and the packet as it left.
Result<Json> tracePacket(const NodeController& node, dataplane::DataplaneBackend& backend,
                         const Json& args);

}  // namespace nodeplane::control
