// Benchmark: cluster DNS answered by a worker, one core, no PMD I/O.
//
//   build/perf/dns_bench [--services N]     (default 1000 ClusterIP + N/10 headless services)
//
// Queries from a pod to the kube-dns ClusterIP through every stage (parse, pod ingress, the DNS
// stage: lookup, answer built in place, checksums), in bursts of 32, by kind: A of a service, SRV
// of a named port, A of a headless service (4 endpoints), NXDOMAIN, PTR, and a name outside the
// cluster domain (passed on: what the stage costs a query it does not answer). Also the responder
// alone on bytes (dns::respond), without packet handling.
#include <cstdio>
#include <string>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "dns/present.h"
#include "dns/responder.h"
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

// A query as dig sends it: RD, an OPT record advertising 1232 bytes (dns/present.h builds it).
Bytes query(const std::string& dotted, uint16_t qtype, uint16_t id) {
  return dns::buildQuery(dotted, qtype, id, dns::kMaxUdpSize);
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t serviceCount = 1000;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--services")
      serviceCount = static_cast<uint32_t>(std::stoul(argv[++i]));
  if (!perf::startBenchmark(argv[0])) return 1;
  rte_mempool* pool = perf::packetPool();
  perf::printTitle("nodeplane dns_bench: cluster DNS answered by the worker, burst 32, " +
                       std::to_string(serviceCount) + " services + " +
                       std::to_string(serviceCount / 10) + " headless",
                   "TSC cycles per query (median of 7 runs)");

  auto tracker = lb::ConnTracker::create(1 << 16, 1, 0, nullptr);  // for what is passed on
  if (!tracker) return 1;
  testing::FakeBackend backend;
  backend.pool = pool;
  backend.tracker = tracker->get();
  control::NodeSettings s = perf::benchNodeSettings();
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, kClientMac, "0a:00:00:00:00:0b")) return 1;
  std::vector<control::ServiceSpec> services;
  control::ServiceSpec dns;
  dns.namespaceName = "kube-system";
  dns.name = "kube-dns";
  dns.clusterIps = {*Ipv4Address::parse("10.96.0.10")};
  dns.ports = {control::ServicePortSpec{"dns", 17, 53, 53, "", 0}};
  control::EndpointSpec upstream;  // the "server" pod: what the cluster domain does not answer
  upstream.ip = *Ipv4Address::parse("10.244.0.3");
  dns.endpoints = {upstream};
  services.push_back(dns);
  for (uint32_t i = 0; i < serviceCount; ++i) {
    control::ServiceSpec sv;
    sv.namespaceName = "ns" + std::to_string(i % 50);
    sv.name = "s" + std::to_string(i);
    sv.clusterIps = {Ipv4Address{0x0a600100u + i}};
    sv.ports = {control::ServicePortSpec{"http", 6, 80, 8080, "", 0}};
    services.push_back(sv);
  }
  for (uint32_t i = 0; i < serviceCount / 10; ++i) {
    control::ServiceSpec sv;
    sv.namespaceName = "ns" + std::to_string(i % 50);
    sv.name = "h" + std::to_string(i);
    sv.ports = {control::ServicePortSpec{"pg", 6, 5432, 5432, "", 0}};
    for (uint32_t k = 0; k < 4; ++k) {
      control::EndpointSpec e;
      e.ip = Ipv4Address{0x0af40100u + i * 4 + k};
      sv.endpoints.push_back(e);
    }
    services.push_back(sv);
  }
  if (auto st = node.replaceServices(services); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  const dp::Snapshot& snap = *backend.current();

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.conntrack = tracker->get();
  ctx.generation = snap.generation;
  Burst burst;
  auto pipeline = [&](rte_mbuf** pkts, uint16_t n) {
    burst.count = n;
    burst.inPort = 0;
    std::copy(pkts, pkts + n, burst.pkts);
    dp::runStages(burst, snap, ctx);
  };

  struct Kind {
    const char* name;
    std::function<std::string(uint32_t)> qname;
    uint16_t qtype;
    Action expected;
  } kinds[] = {
      {"A, ClusterIP service",
       [&](uint32_t i) {
         i %= serviceCount;
         return "s" + std::to_string(i) + ".ns" + std::to_string(i % 50) + ".svc.cluster.local";
       },
       1, Action::kTransmit},
      {"SRV, named port",
       [&](uint32_t i) {
         i %= serviceCount;
         return "_http._tcp.s" + std::to_string(i) + ".ns" + std::to_string(i % 50) +
                ".svc.cluster.local";
       },
       33, Action::kTransmit},
      {"A, headless service (4 endpoints)",
       [&](uint32_t i) {
         i %= serviceCount / 10;
         return "h" + std::to_string(i) + ".ns" + std::to_string(i % 50) + ".svc.cluster.local";
       },
       1, Action::kTransmit},
      {"NXDOMAIN (search-path miss)",
       [&](uint32_t i) {
         return "s" + std::to_string(i % serviceCount) + ".svc.cluster.local.svc.cluster.local";
       },
       1, Action::kTransmit},
      {"PTR of a ClusterIP",
       [&](uint32_t i) {
         const uint32_t ip = 0x0a600100u + i % serviceCount;
         return std::to_string(ip & 0xff) + "." + std::to_string(ip >> 8 & 0xff) + ".96.10" +
                ".in-addr.arpa";
       },
       12, Action::kTransmit},
      {"outside the cluster domain (passed on)",
       [&](uint32_t i) { return "host" + std::to_string(i % 1000) + ".example.com"; }, 1,
       Action::kTransmit},
  };

  std::printf("%-52s %8s %8s %8s %10s\n", "through the stages", "total", "restore", "net",
              "Mq/s/core");
  for (const Kind& k : kinds) {
    std::vector<Bytes> frames;
    for (uint32_t i = 0; i < 1024; ++i)
      frames.push_back(PacketBuilder()
                           .eth(kClientPortMac, kClientMac)
                           .ipv4("10.244.0.2", "10.96.0.10")
                           .udp(static_cast<uint16_t>(30000 + i), 53)
                           .payloadBytes(query(k.qname(i * 7), k.qtype, static_cast<uint16_t>(i)))
                           .build());
    const perf::StageRun r = perf::measureBursts(pool, frames, 0, pipeline);
    for (uint16_t i = 0; i < burst.count; ++i)
      if (burst.meta[i].action != k.expected) {
        std::fprintf(stderr, "bench: %s: packet %u not %s (%s)\n", k.name, i,
                     k.expected == Action::kTransmit ? "answered" : "passed on",
                     std::string(dropReasonInfo(burst.meta[i].drop).name).c_str());
        return 1;
      }
    perf::printRow(k.name, r);
  }
  const CounterTotals totals = [&] {
    CounterTotals t;
    t.accumulate(counters);
    return t;
  }();
  std::printf("\n(answered A %lu, SRV %lu, PTR %lu, NXDOMAIN %lu, passed on %lu)\n",
              static_cast<unsigned long>(totals.dnsAnswersA),
              static_cast<unsigned long>(totals.dnsAnswersSrv),
              static_cast<unsigned long>(totals.dnsAnswersPtr),
              static_cast<unsigned long>(totals.dnsNxDomain),
              static_cast<unsigned long>(totals.dnsPassedOn));

  // The responder alone, on bytes.
  std::printf("\n%-52s %8s\n", "responder alone (dns::respond)", "cycles");
  const dns::Zone& zone = snap.dns->zone;
  for (const Kind& k : kinds) {
    std::vector<Bytes> qs;
    for (uint32_t i = 0; i < 1024; ++i) qs.push_back(query(k.qname(i * 7), k.qtype, 1));
    uint8_t out[dns::kMaxUdpSize];
    size_t next = 0;
    const double c = perf::cyclesPerPacket(
        [&] {
          const Bytes& q = qs[next++ & 1023];
          (void)dns::respond(q.data(), q.size(), zone, false, out, sizeof(out));
        },
        1, 200000);
    std::printf("%-52s %8.1f\n", k.name, c);
  }
  std::printf("\nzone: %zu names\n", zone.names());
  return 0;
}
