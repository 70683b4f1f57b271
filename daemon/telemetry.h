// nodeplane's own commands on DPDK's telemetry socket (dpdk-telemetry.py lists them under
// /nodeplane/): drops, workers, conntrack, dns. DPDK calls them on its telemetry thread; each
// hands its work to the control thread through the ControlMailbox (the answer comes from the same
// data as npctl's) and waits at most a second.
#pragma once

#include "control/control_api.h"
#include "control/control_mailbox.h"

namespace nodeplane::daemon {

// Registers the commands (once per process). `mailbox` and `api` must outlive the control loop;
// after mailbox.close() the commands answer with an error.
void registerTelemetry(control::ControlMailbox& mailbox, control::ControlApi& api);

}  // namespace nodeplane::daemon
