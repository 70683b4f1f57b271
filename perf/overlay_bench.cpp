// Benchmark: VXLAN encap and decap on 64-byte inner packets, one core, no PMD I/O.
//
//   build/perf/overlay_bench            (NP_BENCH_HUGE=1 to run on hugepages)
//
// "encap path" is a pod's packet to a pod on another node through every stage (parse, pod
// ingress, FIB, TTL, MSS check, inner MACs, VXLAN). "decap path" is the reverse: a VXLAN frame
// from the uplink through outer parse, decap, inner parse and routing to the local pod. The
// overlay's own cost (the encap and decap stages) is each path minus the same packets forwarded
// to a local pod. Timing a stage alone on top of the restore is not meaningful: out-of-order
// execution overlaps the two and the difference vanishes into noise.
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "perf/bench_util.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

using namespace nodeplane;
namespace dp = nodeplane::dataplane;
using testing::Bytes;
using testing::PacketBuilder;

namespace {

constexpr const char* kUplinkMac = "02:fe:00:00:00:00";
constexpr const char* kPodPortMac = "02:fe:00:00:00:01";
constexpr const char* kPeerMac = "52:54:00:00:00:0b";
constexpr uint16_t kFlows = 1024;

// 64-byte frames (60 + FCS): Ethernet/IPv4/UDP from `src` to `dst` (a %u takes the flow number
// modulo 250), one per flow.
std::vector<Bytes> frames(const char* dstMac, const char* srcMac, const char* src,
                          const char* dstPattern) {
  std::vector<Bytes> out;
  for (uint16_t f = 0; f < kFlows; ++f) {
    char dst[20];
    std::snprintf(dst, sizeof(dst), dstPattern, 2 + f % 250);
    out.push_back(PacketBuilder()
                      .eth(dstMac, srcMac)
                      .ipv4(src, dst)
                      .udp(static_cast<uint16_t>(1024 + f), 5001)
                      .payload(18)
                      .build());
  }
  return out;
}

}  // namespace

int main(int, char** argv) {
  if (!perf::startBenchmark(argv[0])) return 1;
  rte_mempool* pool = perf::packetPool();

  testing::FakeBackend backend;
  backend.pool = pool;
  control::NodeSettings s;
  s.nodeName = "node-cpu";
  s.nodeIp = *Ipv4Address::parse("192.168.50.10");
  s.underlayPrefixLength = 24;
  s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
  s.uplinkDevargs = "net_fake_uplink";
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  control::PodAttachment pod;
  pod.namespaceName = "bench";
  pod.name = "c1";
  pod.containerId = "c1";
  pod.hostInterface = "veth-c1";
  pod.ip = *Ipv4Address::parse("10.244.1.2");
  pod.mac = *MacAddress::parse("0a:00:00:00:00:0a");
  if (!node.attachPod(pod)) return 1;
  control::PodAttachment pod2 = pod;
  pod2.name = pod2.containerId = "c2";
  pod2.hostInterface = "veth-c2";
  pod2.ip = *Ipv4Address::parse("10.244.1.3");
  pod2.mac = *MacAddress::parse("0a:00:00:00:00:0b");
  if (!node.attachPod(pod2)) return 1;
  if (!node.setNode({"node-gpu",
                     *Ipv4Address::parse("192.168.50.11"),
                     {*Ipv4Prefix::parse("10.244.2.0/24")},
                     {}}))
    return 1;
  // The peer's ARP reply, as a worker would hand it over.
  Bytes reply = PacketBuilder()
                    .eth(kUplinkMac, kPeerMac)
                    .arp(2, kPeerMac, "192.168.50.11", "192.168.50.10", kUplinkMac)
                    .build();
  rte_mbuf* arp = rte_pktmbuf_alloc(pool);
  std::memcpy(rte_pktmbuf_append(arp, static_cast<uint16_t>(reply.size())), reply.data(),
              reply.size());
  backend.punted.push_back({arp, static_cast<uint8_t>(PuntReason::kArp), 0, 0, 0});
  node.serviceSlowPath(std::chrono::steady_clock::now());
  for (auto& [port, m] : backend.injected) rte_pktmbuf_free(m);
  const dp::Snapshot& snap = *backend.current();
  const overlay::OverlayTable& table = *snap.overlay;
  if (!table.node(0).resolved) return 1;

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.generation = snap.generation;
  ctx.icmpLimiter.configure(rte_get_tsc_hz(), 1000, 50);
  Burst burst;

  perf::printTitle("nodeplane overlay_bench: VXLAN, 64-byte inner frames, " +
                       std::to_string(kFlows) + " flows, burst 32",
                   "TSC cycles per packet (median of 7 runs)");
  perf::printHeader();

  auto runPipeline = [&](uint16_t port) {
    return [&, port](rte_mbuf** pkts, uint16_t n) {
      burst.count = n;
      burst.inPort = port;
      std::copy(pkts, pkts + n, burst.pkts);
      dp::runStages(burst, snap, ctx);
    };
  };
  auto expectAll = [&](Action action, const char* what) {
    for (uint16_t i = 0; i < burst.count; ++i)
      if (burst.meta[i].action != action) {
        std::fprintf(stderr, "bench: %s: packet %u ended as %d (%s)\n", what, i,
                     static_cast<int>(burst.meta[i].action),
                     std::string(dropReasonInfo(burst.meta[i].drop).name).c_str());
        std::exit(1);
      }
  };

  // Reference: pod -> pod on this node (no VXLAN). The overlay's own cost is what the paths
  // below add to it.
  const auto local = frames(kPodPortMac, "0a:00:00:00:00:0a", "10.244.1.2", "10.244.1.3");
  perf::StageRun localPath = perf::measureBursts(pool, local, 1, runPipeline(1));
  expectAll(Action::kTransmit, "local path");
  perf::printRow("reference: pod -> local pod, all stages", localPath);

  // Encap: pod -> remote pod through every stage.
  const auto toRemote = frames(kPodPortMac, "0a:00:00:00:00:0a", "10.244.1.2", "10.244.2.%u");
  perf::StageRun encapPath = perf::measureBursts(pool, toRemote, 1, runPipeline(1));
  expectAll(Action::kTransmit, "encap path");
  perf::printRow("encap path (pod -> remote pod, all stages)", encapPath);

  // Decap: VXLAN from the peer -> local pod through every stage.
  std::vector<Bytes> vxlanFrames;
  for (const Bytes& inner :
       frames("0e:4e:c0:a8:32:0a", "0e:4e:c0:a8:32:0b", "10.244.2.7", "10.244.1.2")) {
    Bytes payload = {0x08, 0, 0, 0, 0, 0, 1, 0};
    payload.insert(payload.end(), inner.begin(), inner.end());
    vxlanFrames.push_back(PacketBuilder()
                              .eth(kUplinkMac, kPeerMac)
                              .ipv4("192.168.50.11", "192.168.50.10")
                              .udp(static_cast<uint16_t>(49152 + vxlanFrames.size()), 4789)
                              .payloadBytes(payload)
                              .build());
  }
  perf::StageRun decapPath = perf::measureBursts(pool, vxlanFrames, 0, runPipeline(0));
  expectAll(Action::kTransmit, "decap path");
  perf::printRow("decap path (uplink VXLAN -> local pod, all stages)", decapPath);

  std::printf("\nwhat the overlay adds to same-node forwarding (net, cycles/packet):\n");
  std::printf("  encap stage (VXLAN out): %6.1f\n", encapPath.net() - localPath.net());
  std::printf("  decap stage (VXLAN in, incl. the outer parse): %6.1f\n",
              decapPath.net() - localPath.net());
  (void)table;
  return 0;
}
