// Stage 2 for packets from a pod port: the pod's first hop. Answers ARP (the gateway and any
// other address: the pod routes everything via its gateway), answers ICMP echo to the gateway
// address, and enforces what a pod may send: untagged frames to our MAC, its own source address,
// no martians. Leaves valid IPv4 packets at Action::kContinue for the route stage.
#pragma once

#include "core/packet.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker_context.h"

namespace nodeplane::dataplane {

void podIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
