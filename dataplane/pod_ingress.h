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

// Stage 2 for packets from the host port (the node's kernel): the same ARP and gateway answers
// (the kernel routes pod and service CIDRs via the gateway address), frames to our MAC only, and
// the node's address as the only source (replies are routed back to it). Marks packets
// kFlagFromHost: NetworkPolicy lets the node reach its pods.
void hostIngressStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx);

}  // namespace nodeplane::dataplane
