// Benchmark: parse + same-node forwarding (pod ingress checks, FIB lookup, TTL, MAC rewrite) on
// synthetic 64-byte bursts, one core, no PMD I/O. What a worker spends per packet between
// rte_eth_rx_burst and the TX buffer.
//
//   build/perf/dataplane_bench            (NP_BENCH_HUGE=1 to run on hugepages)
//
// Method: a burst of 32 mbufs is restored from a template (the stages rewrite packets in place),
// then run through runStages(). The restore alone is timed the same way and subtracted.
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include <cstdio>
#include <cstring>
#include <random>

#include <spdlog/spdlog.h>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "perf/bench_node.h"
#include "perf/bench_util.h"
#include "tests/unit/support/fake_backend.h"

using namespace nodeplane;
namespace dp = nodeplane::dataplane;

namespace {

constexpr uint16_t kBurst = 32;
constexpr size_t kFrame = 60;  // 64 bytes on the wire with the FCS

// A 60-byte Ethernet/IPv4/UDP frame from pod A (port 0) to `dst`.
void writeFrame(uint8_t* f, const rte_ether_addr& portMac, uint32_t src, uint32_t dst) {
  std::memset(f, 0, kFrame);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(f);
  eth->dst_addr = portMac;
  eth->src_addr = rte_ether_addr{{0x0a, 0, 0, 0, 0, 0x0a}};
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(kFrame - sizeof(rte_ether_hdr));
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(src);
  ip->dst_addr = rte_cpu_to_be_32(dst);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(1024);
  udp->dst_port = rte_cpu_to_be_16(5001);
  udp->dgram_len = rte_cpu_to_be_16(kFrame - sizeof(rte_ether_hdr) - sizeof(rte_ipv4_hdr));
}

struct Run {
  double total;
  double restore;
  double net() const { return total - restore; }
};

// Forwarding A -> `dsts` (each burst takes the next 32 of them, round robin), with `snap`.
Run measure(const dp::Snapshot& snap, const std::vector<uint32_t>& dsts, uint32_t src,
            const rte_ether_addr& portMac) {
  Burst burst;
  const size_t sets = std::max<size_t>(1, dsts.size() / kBurst);
  std::vector<std::array<uint8_t, kFrame>> templates(kBurst * sets);
  for (size_t i = 0; i < templates.size(); ++i)
    writeFrame(templates[i].data(), portMac, src, dsts[i % dsts.size()]);
  for (uint16_t i = 0; i < kBurst; ++i) {
    burst.pkts[i] = rte_pktmbuf_alloc(perf::packetPool());
    rte_pktmbuf_append(burst.pkts[i], kFrame);
    burst.pkts[i]->port = 0;
  }
  size_t set = 0;
  burst.count = kBurst;
  burst.inPort = 0;
  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.icmpLimiter.configure(rte_get_tsc_hz(), 1000, 50);

  auto restore = [&] {
    const auto* t = &templates[set * kBurst];
    set = set + 1 == sets ? 0 : set + 1;
    for (uint16_t i = 0; i < kBurst; ++i) {
      rte_mbuf* m = burst.pkts[i];
      m->data_off = RTE_PKTMBUF_HEADROOM;
      m->data_len = kFrame;
      m->pkt_len = kFrame;
      std::memcpy(rte_pktmbuf_mtod(m, void*), t[i].data(), kFrame);
    }
  };
  Run r;
  r.restore = perf::cyclesPerPacket(restore, kBurst);
  r.total = perf::cyclesPerPacket(
      [&] {
        restore();
        dp::runStages(burst, snap, ctx);
      },
      kBurst);
  // Sanity: everything must have been forwarded, or the figure means nothing.
  for (uint16_t i = 0; i < kBurst; ++i)
    if (burst.meta[i].action != Action::kTransmit) {
      std::fprintf(stderr, "bench: packet %u not forwarded (%s)\n", i,
                   std::string(dropReasonInfo(burst.meta[i].drop).name).c_str());
      std::exit(1);
    }
  for (uint16_t i = 0; i < kBurst; ++i) rte_pktmbuf_free(burst.pkts[i]);
  return r;
}

}  // namespace

int main(int, char** argv) {
  if (!perf::startBenchmark(argv[0])) return 1;
  perf::printTitle("nodeplane dataplane_bench: parse + same-node forward, " +
                       std::to_string(kFrame + 4) + "-byte frames, burst " + std::to_string(kBurst),
                   "figures are TSC cycles per packet (median of 7 runs)");

  // The real control path builds the snapshot: node with two pods.
  testing::FakeBackend backend;
  control::NodeSettings s = perf::benchNodeSettings();
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  for (int i = 0; i < 2; ++i) {
    control::PodAttachment a;
    a.namespaceName = "bench";
    a.name = "p" + std::to_string(i);
    a.containerId = a.name;
    a.hostInterface = "veth" + std::to_string(i);
    a.ip = Ipv4Address{0x0af40002u + static_cast<uint32_t>(i)};
    a.mac = *MacAddress::parse("0a:00:00:00:00:0" + std::to_string(i + 1));
    if (!node.attachPod(a)) return 1;
  }
  const dp::Snapshot& snap = *backend.current();
  rte_ether_addr portMac = snap.ports[0].mac;
  const uint32_t podA = 0x0af40002u, podB = 0x0af40003u;

  Run r = measure(snap, {podB}, podA, portMac);
  std::printf("%-44s %8s %8s %8s %10s\n", "case", "total", "restore", "net", "Mpps/core");
  std::printf("%-44s %8.1f %8.1f %8.1f %10.2f\n", "pod A -> pod B (1 flow)", r.total, r.restore,
              r.net(), perf::mpps(r.net()));

  // FIB scaling: N /32 routes (as N local pods or, later, remote endpoints); up to 4096 distinct
  // destinations drawn from them, so lookups touch different tbl24 lines and tbl8 groups.
  std::printf("\nroute table growth (up to 4096 distinct destinations over the routes):\n");
  for (uint32_t n : {2u, 1000u, 10000u, 30000u}) {
    dp::Snapshot big = snap;
    dp::RouteTableBuilder builder;
    std::vector<uint32_t> dsts;
    std::mt19937 rng(n);
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t ip = 0x0af40000u + 2 + (i * 7919u) % 65000u;
      dp::NextHop pod;
      pod.kind = dp::NextHopKind::kLocalPod;
      pod.drop = DropReason::kNone;
      pod.port = 1;
      pod.srcMac = snap.ports[1].mac;
      builder.addRoute(Ipv4Prefix{Ipv4Address{ip}, 32}, builder.addNextHop(pod));
      dsts.push_back(ip);
    }
    auto table = std::move(builder).build(0);
    if (!table) {
      std::fprintf(stderr, "%s\n", table.error().message.c_str());
      return 1;
    }
    big.routes = *table;
    std::shuffle(dsts.begin(), dsts.end(), rng);
    dsts.resize(std::min<size_t>(dsts.size(), 4096));  // distinct destinations per run
    Run g = measure(big, dsts, podA, portMac);
    std::printf("%-44s %8.1f %8.1f %8.1f %10.2f\n", (std::to_string(n) + " /32 routes").c_str(),
                g.total, g.restore, g.net(), perf::mpps(g.net()));
  }
  return 0;
}
