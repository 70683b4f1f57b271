// Benchmark: NetworkPolicy and L7 rules, one core, no PMD I/O.
//
//   build/perf/policy_bench [--policies N] [--peers N]    (defaults: 100 x 100 = 10,000 rules)
//
//  1. the verdict on established flows: the same 1000 ClusterIP flows through every stage with
//     no policy and with the policy set below in force (verdict cached in the entry); and pod to
//     pod flows, untracked (no policy) against tracked (policy);
//  2. first-packet classification with N x M classifier rules: policy::evaluate() (rte_acl
//     lookup, counters) per flow, a 32-flow batch lookup for comparison, and whole new pod flows
//     (parse, flow-table miss, classification, insert);
//  3. the L7 streaming scan: 1,000 L7 rules (Hyperscan, streaming mode), pipelined HTTP requests
//     over 256 concurrent flows in 1448-byte segments, in Gbit/s.
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
#include "policy/enforce.h"
#include "policy/l7.h"
#include "policy/model_json.h"
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

// The policy set: target pod i (local, 10.244.1.i) admits peers of group i (remote pods,
// 10.245.i.k) on TCP 80: policies x peers classifier rules. Plus the benchmark's own server,
// which admits the client on 8080.
policy::Json policyState(uint32_t policies, uint32_t peers) {
  using policy::Json;
  Json pods = Json::array(), nps = Json::array();
  pods.push_back({{"namespace", "bench"},
                  {"name", "client"},
                  {"ip", "10.244.0.2"},
                  {"labels", {{"app", "client"}}}});
  pods.push_back({{"namespace", "bench"},
                  {"name", "server"},
                  {"ip", "10.244.0.3"},
                  {"labels", {{"app", "server"}}}});
  for (uint32_t i = 0; i < policies; ++i) {
    pods.push_back({{"namespace", "bench"},
                    {"name", "t" + std::to_string(i)},
                    {"ip", ipText(0x0af40100u + (i / 250) * 256 + i % 250 + 1)},
                    {"labels", {{"target", std::to_string(i)}}}});
    for (uint32_t k = 0; k < peers; ++k)
      pods.push_back({{"namespace", "bench"},
                      {"name", "p" + std::to_string(i) + "-" + std::to_string(k)},
                      {"ip", ipText(0x0af50000u + i * 256 + k + 1)},
                      {"labels", {{"group", std::to_string(i)}}}});
    nps.push_back(
        {{"metadata", {{"namespace", "bench"}, {"name", "t" + std::to_string(i)}}},
         {"spec",
          {{"podSelector", {{"matchLabels", {{"target", std::to_string(i)}}}}},
           {"ingress",
            Json::array(
                {{{"from", Json::array({{{"podSelector",
                                          {{"matchLabels", {{"group", std::to_string(i)}}}}}}})},
                  {"ports", Json::array({{{"port", 80}}})}}})}}}});
  }
  nps.push_back(
      {{"metadata", {{"namespace", "bench"}, {"name", "server"}}},
       {"spec",
        {{"podSelector", {{"matchLabels", {{"app", "server"}}}}},
         {"ingress",
          Json::array({{{"from", Json::array({{{"podSelector",
                                                {{"matchLabels", {{"app", "client"}}}}}}})}}})}}}});
  return Json{
      {"namespaces", Json::array({{{"name", "bench"}}})}, {"pods", pods}, {"networkPolicies", nps}};
}

policy::Json l7State(unsigned rules) {
  using policy::Json;
  Json list = Json::array();
  list.push_back({{"action", "allow"}, {"http", {{"method", "GET"}, {"path", "/.*"}}}});
  for (unsigned i = 1; i < rules; ++i) {
    char buf[96];
    if (i % 3 == 0) {
      std::snprintf(buf, sizeof(buf), "/admin/section%u/.*", i);
      list.push_back({{"action", "log"}, {"http", {{"path", buf}}}});
    } else if (i % 3 == 1) {
      std::snprintf(buf, sizeof(buf), "(?i)sig%04u[a-z]{3}evil", i);
      list.push_back({{"action", "deny"}, {"pattern", buf}});
    } else {
      std::snprintf(buf, sizeof(buf), "x-attack-%u:\\s*[0-9a-f]{8}", i);
      list.push_back({{"action", "deny"}, {"pattern", buf}});
    }
  }
  return Json{{"namespaces", Json::array({{{"name", "bench"}}})},
              {"pods", Json::array({{{"namespace", "bench"},
                                     {"name", "web"},
                                     {"ip", "10.244.0.3"},
                                     {"labels", {{"app", "web"}}}}})},
              {"l7Rules", Json::array({{{"metadata", {{"namespace", "bench"}, {"name", "waf"}}},
                                        {"spec",
                                         {{"podSelector", Json::object()},
                                          {"ports", Json::array({{{"port", 80}}})},
                                          {"rules", list}}}}})}};
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t policies = 100, peers = 100;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--policies")
      policies = static_cast<uint32_t>(std::stoul(argv[++i]));
    if (std::string(argv[i]) == "--peers") peers = static_cast<uint32_t>(std::stoul(argv[++i]));
  }
  if (!perf::startBenchmark(argv[0], 2048)) return 1;
  rte_mempool* pool = perf::packetPool();
  perf::printTitle("nodeplane policy_bench: NetworkPolicy (rte_acl) and L7 rules (Hyperscan)",
                   "TSC cycles (median of 7 runs)");

  auto tracker = lb::ConnTracker::create(1 << 20, 1, 0, nullptr);
  if (!tracker) return 1;
  testing::FakeBackend backend;
  backend.pool = pool;
  backend.tracker = tracker->get();
  control::NodeSettings s = perf::benchNodeSettings();
  s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/14");
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
  control::NodeController node(s, backend);
  if (!node.start()) return 1;
  if (!perf::attachClientAndServer(node, kClientMac, "0a:00:00:00:00:0b")) return 1;
  control::ServiceSpec sv;
  sv.namespaceName = "bench";
  sv.name = "web";
  sv.clusterIps = {*Ipv4Address::parse("10.96.0.1")};
  sv.ports = {control::ServicePortSpec{"http", 6, 80, 8080, "", 0}};
  control::EndpointSpec ep;
  ep.ip = *Ipv4Address::parse("10.244.0.3");
  sv.endpoints = {ep};
  if (!node.setService(sv)) return 1;

  WorkerCounters counters;
  dp::WorkerContext ctx;
  ctx.counters = &counters;
  ctx.conntrack = tracker->get();
  ctx.icmpLimiter.configure(rte_get_tsc_hz(), 1000, 50);
  Burst burst;
  auto pipeline = [&](rte_mbuf** pkts, uint16_t n) {
    const dp::Snapshot& snap = *backend.current();
    ctx.generation = snap.generation;
    burst.count = n;
    burst.inPort = 0;
    std::copy(pkts, pkts + n, burst.pkts);
    dp::runStages(burst, snap, ctx);
  };
  auto expect = [&](Action a, const char* what) {
    for (uint16_t i = 0; i < burst.count; ++i)
      if (burst.meta[i].action != a) {
        std::fprintf(stderr, "bench: %s: packet %u: %s\n", what, i,
                     std::string(dropReasonInfo(burst.meta[i].drop).name).c_str());
        std::exit(1);
      }
  };

  // 1. Established flows.
  std::vector<Bytes> syns, acks, podSyns, podAcks;
  for (uint16_t p = 0; p < 1000; ++p) {
    const uint16_t port = static_cast<uint16_t>(20000 + p);
    auto from = [&] { return PacketBuilder().eth(kClientPortMac, kClientMac); };
    syns.push_back(from().ipv4("10.244.0.2", "10.96.0.1").tcp(port, 80, 0x02).payload(6).build());
    acks.push_back(from().ipv4("10.244.0.2", "10.96.0.1").tcp(port, 80, 0x10).payload(6).build());
    podSyns.push_back(
        from().ipv4("10.244.0.2", "10.244.0.3").tcp(port, 8080, 0x02).payload(6).build());
    podAcks.push_back(
        from().ipv4("10.244.0.2", "10.244.0.3").tcp(port, 8080, 0x10).payload(6).build());
  }
  perf::measureBursts(pool, syns, 0, pipeline);
  perf::printHeader();
  const perf::StageRun svcNoPolicy = perf::measureBursts(pool, acks, 0, pipeline);
  expect(Action::kTransmit, "service, no policy");
  perf::printRow("pod -> ClusterIP, established, no policy", svcNoPolicy);
  const perf::StageRun podNoPolicy = perf::measureBursts(pool, podAcks, 0, pipeline);
  expect(Action::kTransmit, "pod, no policy");
  perf::printRow("pod -> pod, no policy (not tracked)", podNoPolicy);

  const auto t0 = std::chrono::steady_clock::now();
  auto state = policy::policyStateFromJson(policyState(policies, peers));
  if (!state) {
    std::fprintf(stderr, "%s\n", state.error().message.c_str());
    return 1;
  }
  const auto t1 = std::chrono::steady_clock::now();
  if (auto st = node.applyPolicy(std::move(*state)); !st) {
    std::fprintf(stderr, "%s\n", st.error().message.c_str());
    return 1;
  }
  const auto t2 = std::chrono::steady_clock::now();
  const policy::PolicyTable& table = *node.policyTable();
  const perf::StageRun svcPolicy = perf::measureBursts(pool, acks, 0, pipeline);
  expect(Action::kTransmit, "service, policy");
  perf::printRow("pod -> ClusterIP, established, policy in force", svcPolicy);
  perf::measureBursts(pool, podSyns, 0, pipeline);
  const perf::StageRun podPolicy = perf::measureBursts(pool, podAcks, 0, pipeline);
  expect(Action::kTransmit, "pod, policy");
  perf::printRow("pod -> pod, established, policy in force (tracked)", podPolicy);
  std::printf("  the cached verdict on an established flow: %.1f cycles/packet\n",
              svcPolicy.net() - svcNoPolicy.net());
  std::printf("  tracking pod flows once policy is in force: %.1f cycles/packet\n\n",
              podPolicy.net() - podNoPolicy.net());

  // 2. First packets. Flows from the peers to the targets, half allowed (port 80), half not.
  std::mt19937 rng(11);
  std::vector<policy::FlowTuple> tuples;
  for (int i = 0; i < 8192; ++i) {
    const uint32_t t = rng() % policies, k = rng() % peers;
    tuples.push_back(
        policy::FlowTuple{rte_cpu_to_be_32(0x0af50000u + t * 256 + k + 1),
                          rte_cpu_to_be_32(0x0af40100u + (t / 250) * 256 + t % 250 + 1),
                          rte_cpu_to_be_16(static_cast<uint16_t>(1024 + i)),
                          rte_cpu_to_be_16(static_cast<uint16_t>(i % 2 ? 80 : 81)), 6});
  }
  size_t next = 0;
  unsigned denied = 0;
  const double evaluate = perf::cyclesPerPacket(
      [&] {
        denied +=
            policy::evaluate(table, tuples[next], 0, counters, 0) & policy::kVerdictDeny ? 1 : 0;
        next = (next + 1) & 8191;
      },
      1, 200000);
  std::vector<policy::AclKey> keys(tuples.size());
  std::vector<const policy::AclKey*> keyPtrs(tuples.size());
  for (size_t i = 0; i < tuples.size(); ++i) {
    keys[i] = policy::AclKey{
        6, {0, 0, 0}, tuples[i].src, tuples[i].dst, tuples[i].sport, tuples[i].dport};
    keyPtrs[i] = &keys[i];
  }
  uint32_t results[32 * policy::kCategories];
  next = 0;
  const double batch = perf::cyclesPerPacket(
      [&] {
        table.classifier().classify(&keyPtrs[next], 32, results);
        next = (next + 32) & 8191;
      },
      32, 20000);
  std::printf("first-packet classification, %zu classifier rules (%u policies x %u peers):\n",
              table.compiled().rules.size(), policies, peers);
  std::printf("  policy::evaluate() per new flow (one lookup, counters):  %.0f cycles\n", evaluate);
  std::printf("  rte_acl lookup in batches of 32 (for comparison):        %.0f cycles per flow\n",
              batch);
  std::printf("  policy compiled and published in %.0f ms (JSON read in %.0f ms)\n",
              std::chrono::duration<double, std::milli>(t2 - t1).count(),
              std::chrono::duration<double, std::milli>(t1 - t0).count());

  // Whole new pod flows (parse + flow stage: lookup miss, classification, insert).
  std::vector<Bytes> fresh;
  for (uint32_t f = 0; f < 200000; ++f) {
    const uint32_t t = f % policies, k = (f / policies) % peers;
    fresh.push_back(PacketBuilder()
                        .eth(kClientPortMac, kClientMac)
                        .ipv4(ipText(0x0af50000u + t * 256 + k + 1).c_str(),
                              ipText(0x0af40100u + (t / 250) * 256 + t % 250 + 1).c_str())
                        .tcp(static_cast<uint16_t>(1024 + f / (policies * peers)), 80, 0x02)
                        .build());
  }
  const uint64_t flowsBefore = counters.podFlows.read();
  const double perFlow = perf::newFlowPass(pool, fresh, *backend.current(), ctx).net();
  std::printf(
      "  new pod flows, parse + flow stage (miss, classify, insert): %.0f cycles each, "
      "%.2f M/s; %lu tracked\n\n",
      perFlow, rte_get_tsc_hz() / perFlow / 1e6,
      static_cast<unsigned long>(counters.podFlows.read() - flowsBefore));

  // 3. L7 scan.
  auto l7 = policy::policyStateFromJson(l7State(1000));
  if (!l7) {
    std::fprintf(stderr, "%s\n", l7.error().message.c_str());
    return 1;
  }
  const auto c0 = std::chrono::steady_clock::now();
  auto db = policy::L7Database::build(*l7, *Ipv4Prefix::parse("10.244.0.0/16"), 1, 256);
  if (!db || !*db) {
    std::fprintf(stderr, "L7: %s\n", db ? "nothing attached" : db.error().message.c_str());
    return 1;
  }
  const double compileMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
  const int32_t ruleset = (*db)->rulesetFor(rte_cpu_to_be_32(0x0af40003), rte_cpu_to_be_16(80));
  // Pipelined requests; each flow starts at a request boundary and, at the end of the stream,
  // closes and a new one opens (a new connection), so every flow sees a well-formed stream.
  std::string stream;
  std::vector<uint32_t> starts;
  for (int i = 0; stream.size() < (1u << 20); ++i) {
    char req[512];
    std::snprintf(
        req, sizeof(req),
        "GET /static/app/bundle-%d.js?v=%u HTTP/1.1\r\nHost: shop.example.com\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        "Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
        "Cookie: session=%08x%08x; theme=dark\r\nConnection: keep-alive\r\n\r\n",
        i, static_cast<unsigned>(rng()), static_cast<unsigned>(rng()),
        static_cast<unsigned>(rng()));
    starts.push_back(static_cast<uint32_t>(stream.size()));
    stream += req;
  }
  constexpr unsigned kFlows = 256, kSegment = 1448;
  std::vector<policy::L7Flow*> flows(kFlows);
  std::vector<uint32_t> seqs(kFlows), offsets(kFlows);
  policy::L7Report report;
  uint64_t opened = 0;
  auto open = [&](unsigned f) {
    if (flows[f]) (*db)->release(0, flows[f]);
    flows[f] = (*db)->allocate(0);
    flows[f]->ruleset = static_cast<uint32_t>(ruleset);
    seqs[f] = static_cast<uint32_t>(rng());
    (*db)->inspect(0, *flows[f], nullptr, 0, seqs[f]++, true, &report);
    offsets[f] = starts[rng() % (starts.size() / 2)];
    ++opened;
  };
  for (unsigned f = 0; f < kFlows; ++f) open(f);
  uint64_t bytes = 0, deniedFlows = 0;
  const uint64_t start = rte_rdtsc_precise();
  for (unsigned round = 0; round < 4000; ++round) {
    for (unsigned f = 0; f < kFlows; ++f) {
      const uint32_t length =
          std::min<uint32_t>(kSegment, static_cast<uint32_t>(stream.size()) - offsets[f]);
      const auto v =
          (*db)->inspect(0, *flows[f], reinterpret_cast<const uint8_t*>(stream.data()) + offsets[f],
                         length, seqs[f], false, &report);
      seqs[f] += length;
      offsets[f] += length;
      bytes += length;
      if (v != policy::L7Verdict::kPass) ++deniedFlows;
      if (v != policy::L7Verdict::kPass || offsets[f] == stream.size()) open(f);
    }
  }
  const uint64_t cycles = rte_rdtsc_precise() - start;
  const double gbps = double(bytes) * 8 * rte_get_tsc_hz() / double(cycles) / 1e9;
  std::printf(
      "L7 streaming scan, %zu rules (+2 internal), %u concurrent flows, %u-byte segments\n"
      "of pipelined HTTP requests: %.2f Gbit/s on one core (%.2f cycles/byte); %lu MB "
      "scanned,\n%lu flows opened, %lu denied (expected 0); database compiled in %.0f ms, "
      "stream state %zu bytes per flow\n",
      (*db)->matches().size(), kFlows, kSegment, gbps, double(cycles) / double(bytes),
      static_cast<unsigned long>(bytes >> 20), static_cast<unsigned long>(opened),
      static_cast<unsigned long>(deniedFlows), compileMs, (*db)->streamBytes());
  return 0;
}
