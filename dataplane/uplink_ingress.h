// Stage 2 for packets from the uplink: the node's side of the underlay. ARP for the node address
// is answered, ARP replies go to the control thread (neighbour learning), ping to the node is
// answered, VXLAN to our port is decapsulated (overlay/decap.h) and the inner frame re-parsed:
// inner ARP requests for our pod CIDR are answered back through the tunnel (as a kernel VTEP
// would be by its neighbours), inner IPv4 continues. Other IPv4 continues marked
// kFlagFromUplink: only a service or a tracked flow may take it further.
#pragma once

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void uplinkIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
