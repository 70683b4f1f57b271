// What the service and policy benchmarks share above the EAL: the node's two pods, and one pass of
// new flows through parse and the service stage. Control thread / the calling thread only.
#pragma once

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <string>
#include <vector>

#include "control/node_controller.h"
#include "dataplane/parse.h"
#include "dataplane/pipeline.h"
#include "dataplane/service_stage.h"
#include "perf/bench_util.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::perf {

// The benchmarks' node: "bench", 192.168.50.10, pods 10.244.0.0/16 (services and the cluster
// CIDR at their defaults; a benchmark sets what it needs).
inline control::NodeSettings benchNodeSettings() {
  control::NodeSettings s;
  s.nodeName = "bench";
  s.nodeIp = *Ipv4Address::parse("192.168.50.10");
  s.podCidr = *Ipv4Prefix::parse("10.244.0.0/16");
  return s;
}

// Pod "client" 10.244.0.2 on veth0 and pod "server" 10.244.0.3 on veth1, namespace "bench".
inline bool attachClientAndServer(control::NodeController& node, const char* clientMac,
                                  const char* serverMac) {
  for (int i = 0; i < 2; ++i) {
    control::PodAttachment a;
    a.namespaceName = "bench";
    a.name = a.containerId = i == 0 ? "client" : "server";
    a.hostInterface = "veth" + std::to_string(i);
    a.ip = Ipv4Address{0x0af40002u + static_cast<uint32_t>(i)};
    a.mac = *MacAddress::parse(i == 0 ? clientMac : serverMac);
    if (!node.attachPod(a)) return false;
  }
  return true;
}

// TSC cycles per packet of one pass over `frames` (each seen once, so every flow is new) in bursts
// of 32 received on port 0: restoring the frames alone, and restoring them then running parse and
// the service stage. The restore-only pass runs first and creates nothing.
struct NewFlowPass {
  double restore = 0;
  double total = 0;
  double net() const { return total - restore; }
};

inline NewFlowPass newFlowPass(rte_mempool* pool, const std::vector<testing::Bytes>& frames,
                               const dataplane::Snapshot& snap, dataplane::WorkerContext& ctx) {
  Burst burst;
  rte_mbuf* pkts[32];
  for (auto& m : pkts) m = rte_pktmbuf_alloc(pool);
  auto run = [&](bool stage) {
    const uint64_t start = rte_rdtsc_precise();
    for (size_t base = 0; base + 32 <= frames.size(); base += 32) {
      for (uint16_t i = 0; i < 32; ++i) {
        loadFrame(pkts[i], frames[base + i], 0);
        burst.pkts[i] = pkts[i];
      }
      if (!stage) continue;
      burst.count = 32;
      burst.inPort = 0;
      dataplane::parseBurst(burst);
      dataplane::serviceStage(burst, snap, ctx);
    }
    return static_cast<double>(rte_rdtsc_precise() - start) / static_cast<double>(frames.size());
  };
  NewFlowPass r;
  r.restore = run(false);
  r.total = run(true);
  for (auto& m : pkts) rte_pktmbuf_free(m);
  return r;
}

}  // namespace nodeplane::perf
