// Benchmark: services and connection tracking, one core, no PMD I/O, 64-byte frames.
//
//   build/perf/lb_bench [--flows N] [--services N]     (defaults: 1000000 flows, 10000 services)
//
//  1. established-flow translation: a pod's packets to a ClusterIP through every stage, against
//     the same path with tracking off (the difference is what tracking and NAT cost);
//  2. new connections: SYNs with fresh 5-tuples spread over the services, through parse and the
//     service stage (lookup miss, service lookup, Maglev, insert, NAT), until the table holds N;
//  3. the established rate as the table grows: the same 4096 hot flows over all the services, in
//     a table holding just them and in one holding N flows;
//  4. memory per tracked flow (entry + both hash keys), from the EAL heap.
#include <rte_malloc.h>

#include <chrono>
#include <cstdio>
#include <random>

#include <spdlog/spdlog.h>

#include "control/node_controller.h"
#include "dataplane/parse.h"
#include "dataplane/pipeline.h"
#include "dataplane/service_stage.h"
#include "lb/conntrack.h"
#include "perf/bench_node.h"
#include "perf/bench_util.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

using namespace nodeplane;
namespace dp = nodeplane::dataplane;
using testing::Bytes;
using testing::PacketBuilder;

namespace {

constexpr const char* kClientPortMac = "02:fe:00:00:00:00";
constexpr const char* kClientMac = "0a:00:00:00:00:0a";

std::string ipText(uint32_t v) {
  return Ipv4Address{v}.toString();
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t flows = 1000000, serviceCount = 10000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--flows") flows = static_cast<uint32_t>(std::stoul(argv[++i]));
    if (std::string(argv[i]) == "--services")
      serviceCount = static_cast<uint32_t>(std::stoul(argv[++i]));
  }
  if (!perf::startBenchmark(argv[0], 4096)) return 1;
  rte_mempool* pool = perf::packetPool();
  perf::printTitle("nodeplane lb_bench: services and connection tracking, 64-byte frames, burst 32",
                   "TSC cycles per packet (median of 7 runs)");

  // A node with a client pod (port 0) and a backend pod (port 1) and `serviceCount` services.
  auto tracker = lb::ConnTracker::create(flows + flows / 16, 1, 0, nullptr);
  if (!tracker) {
    std::fprintf(stderr, "%s\n", tracker.error().message.c_str());
    return 1;
  }
  const uint64_t heapTracker = (*tracker)->memoryBytes();
  testing::FakeBackend backend;
  backend.pool = pool;
  backend.tracker = tracker->get();
  control::NodeSettings s = perf::benchNodeSettings();
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, kClientMac, "0a:00:00:00:00:0b")) return 1;
  // Service i: 10.96.x.y:80 -> 4 backends of its own (backend 0 is the local pod, so the path
  // ends at a real port; the others are addresses in the pod CIDR).
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<control::ServiceSpec> services;
  for (uint32_t i = 0; i < serviceCount; ++i) {
    control::ServiceSpec sv;
    sv.namespaceName = "bench";
    sv.name = "s" + std::to_string(i);
    sv.clusterIps = {Ipv4Address{0x0a600000u + 1 + i}};
    sv.ports = {control::ServicePortSpec{"http", 6, 80, 8080, "", 0}};
    control::EndpointSpec local;
    local.ip = Ipv4Address{0x0af40003u};
    sv.endpoints.push_back(local);
    for (uint32_t k = 1; k < 4; ++k) {
      control::EndpointSpec e;
      e.ip = Ipv4Address{0x0af41000u + i * 4 + k};
      e.weight = 0;  // present for Maglev and liveness, but traffic goes to the local pod
      sv.endpoints.push_back(e);
    }
    services.push_back(sv);
  }
  if (auto st = node.replaceServices(services); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  const double buildMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const dp::Snapshot& snap = *backend.current();

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.icmpLimiter.configure(rte_get_tsc_hz(), 1000, 50);
  ctx.generation = snap.generation;
  Burst burst;
  auto pipeline = [&](bool tracking) {
    return [&, tracking](rte_mbuf** pkts, uint16_t n) {
      ctx.conntrack = tracking ? tracker->get() : nullptr;
      burst.count = n;
      burst.inPort = 0;
      std::copy(pkts, pkts + n, burst.pkts);
      dp::runStages(burst, snap, ctx);
    };
  };
  auto expect = [&](Action a, const char* what) {
    for (uint16_t i = 0; i < burst.count; ++i)
      if (burst.meta[i].action != a) {
        std::fprintf(stderr, "bench: %s: packet %u: %s\n", what, i,
                     std::string(dropReasonInfo(burst.meta[i].drop).name).c_str());
        std::exit(1);
      }
  };

  // 1. Established flows, small table: 1000 client flows to service 0, opened first.
  std::vector<Bytes> syns, acks;
  for (uint16_t p = 0; p < 1000; ++p) {
    syns.push_back(PacketBuilder()
                       .eth(kClientPortMac, kClientMac)
                       .ipv4("10.244.0.2", "10.96.0.1")
                       .tcp(static_cast<uint16_t>(20000 + p), 80, 0x02)
                       .payload(6)
                       .build());
    acks.push_back(PacketBuilder()
                       .eth(kClientPortMac, kClientMac)
                       .ipv4("10.244.0.2", "10.96.0.1")
                       .tcp(static_cast<uint16_t>(20000 + p), 80, 0x10)
                       .payload(6)
                       .build());
  }
  perf::measureBursts(pool, syns, 0, pipeline(true));  // open them
  const std::vector<Bytes> direct = [&] {
    std::vector<Bytes> v;
    for (uint16_t p = 0; p < 1000; ++p)
      v.push_back(PacketBuilder()
                      .eth(kClientPortMac, kClientMac)
                      .ipv4("10.244.0.2", "10.244.0.3")
                      .tcp(static_cast<uint16_t>(20000 + p), 8080, 0x10)
                      .payload(6)
                      .build());
    return v;
  }();
  perf::printHeader();
  perf::StageRun untracked = perf::measureBursts(pool, direct, 0, pipeline(false));
  expect(Action::kTransmit, "untracked");
  perf::printRow("reference: pod -> pod, no tracking", untracked);
  perf::StageRun smallEstablished = perf::measureBursts(pool, acks, 0, pipeline(true));
  expect(Action::kTransmit, "established");
  perf::printRow("established: pod -> ClusterIP, 1000 flows", smallEstablished);
  std::printf("  tracking + NAT of an established flow: %.1f cycles/packet\n\n",
              smallEstablished.net() - untracked.net());

  // 2. New connections: SYNs with fresh 5-tuples from many clients to all services, parse +
  //    service stage only (no anti-spoofing: the clients are synthetic).
  std::mt19937 rng(7);
  const uint32_t newFlows = flows - 1000;
  std::vector<Bytes> fresh;
  fresh.reserve(newFlows);
  for (uint32_t f = 0; f < newFlows; ++f) {
    const uint32_t client = 0x0af48000u + f / 64000;  // 10.244.128.0 upwards
    fresh.push_back(
        PacketBuilder()
            .eth(kClientPortMac, kClientMac)
            .ipv4(ipText(client).c_str(), ipText(0x0a600001u + f % serviceCount).c_str())
            .tcp(static_cast<uint16_t>(1024 + f % 64000), 80, 0x02)
            .build());
  }
  std::shuffle(fresh.begin(), fresh.end(), rng);
  ctx.conntrack = tracker->get();
  const uint64_t before = tracker->get()->live();
  const perf::NewFlowPass pass = perf::newFlowPass(pool, fresh, snap, ctx);
  const uint64_t inserted = tracker->get()->live() - before;
  const double perConnection = pass.net();
  std::printf(
      "new connections over %u services: %.0f cycles each (restore %.0f subtracted), "
      "%.2f M/s on one core; %lu inserted, table now %u\n",
      serviceCount, perConnection, pass.restore, rte_get_tsc_hz() / perConnection / 1e6,
      static_cast<unsigned long>(inserted), tracker->get()->live());

  // 3. Table growth: the same 4096 hot flows (over the same services), once in a table that
  //    holds just them and once among the N flows of the full table. Only the table differs.
  std::vector<Bytes> hotSyns;
  std::vector<Bytes> hotAcks;
  for (size_t i = 0; i < 4096; ++i) {
    Bytes b = fresh[rng() % fresh.size()];
    hotSyns.push_back(b);
    b[47] = 0x10;  // ACK instead of SYN
    hotAcks.push_back(b);
  }
  // (TCP checksums are not checked on the way; the packets only need to find their flows.)
  auto smallTracker = lb::ConnTracker::create(8192, 1, 0, nullptr);
  if (!smallTracker) return 1;
  lb::ConnTracker* large = tracker->get();
  auto parseAndService = [&](lb::ConnTracker* t) {
    return [&, t](rte_mbuf** p, uint16_t n) {
      ctx.conntrack = t;
      burst.count = n;
      burst.inPort = 0;
      std::copy(p, p + n, burst.pkts);
      dp::parseBurst(burst);
      dataplane::serviceStage(burst, snap, ctx);
    };
  };
  perf::measureBursts(pool, hotSyns, 0, parseAndService(smallTracker->get()));  // open them
  perf::StageRun smallStage =
      perf::measureBursts(pool, hotAcks, 0, parseAndService(smallTracker->get()));
  perf::StageRun bigEstablished = perf::measureBursts(pool, hotAcks, 0, parseAndService(large));
  std::printf("\nparse + service stage, 4096 established flows in rotation over %u services:\n",
              serviceCount);
  perf::printHeader();
  char label[80];
  std::snprintf(label, sizeof(label), "in a table of %u flows", smallTracker->get()->live());
  perf::printRow(label, smallStage);
  std::snprintf(label, sizeof(label), "in a table of %u flows", large->live());
  perf::printRow(label, bigEstablished);
  std::printf("  large-table rate / small-table rate: %.0f%%\n\n",
              100.0 * smallStage.net() / bigEstablished.net());

  // 4. Memory.
  std::printf(
      "state per tracked flow: %zu bytes of entry; with both hash keys and the table's\n"
      "slack, %.0f bytes of EAL memory per flow of capacity (%.1f MiB for %u flows)\n",
      sizeof(lb::ConnEntry), double(heapTracker) / tracker->get()->capacity(),
      heapTracker / 1048576.0, tracker->get()->capacity());
  std::printf("service table for %u services: built in %.0f ms (Maglev %zu entries, %zu tables)\n",
              serviceCount, buildMs, snap.services->maglevTable(0).size,
              snap.services->tableCount());
  return 0;
}
