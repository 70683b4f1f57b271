// Fuzz target: the packet path. Bursts of arbitrary frames through runStages() on a node with a
// VXLAN uplink (fake port 0), the host path (port 1), two pods (ports 2, 3), a remote node,
// Services (local and remote backends, NodePort, affinity, SNAT), NetworkPolicy with an L7 rule,
// and a real connection table that ages between inputs. Nothing may read past a frame
// (exact-size buffers, ASan), crash, or leak an mbuf.
//
// Input: byte 0 picks the port (bits 0-1: the uplink, the client pod, the server pod, the host
// port), whether frames get headroom (bit 2) and whether each
// frame starts with a virtio-net header, as from a pod port (bit 3); then frames, each a 2-byte
// little-endian length and that many bytes, up to a burst of 32. What the stages send goes
// through the edge offloads (dataplane/offload.h): segmentation and checksums for the uplink,
// coalescing and the virtio-net header for a pod.
#include <rte_mbuf.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "control/node_controller.h"
#include "dataplane/offload.h"
#include "dataplane/pipeline.h"
#include "dataplane/vnet.h"
#include "lb/conntrack.h"
#include "policy/model_json.h"
#include "tests/fuzz/fuzz_eal.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace {

using namespace nodeplane;

struct Node {
  testing::FakeBackend backend;
  std::unique_ptr<lb::ConnTracker> tracker;
  std::unique_ptr<control::NodeController> node;
  WorkerCounters counters;
  dataplane::WorkerContext ctx;
};

control::PodAttachment pod(const char* ns, const char* name, const char* ip, const char* mac) {
  control::PodAttachment a;
  a.namespaceName = ns;
  a.name = a.containerId = name;
  a.hostInterface = std::string("veth-") + name;
  a.ip = *Ipv4Address::parse(ip);
  a.mac = *MacAddress::parse(mac);
  return a;
}

control::ServiceSpec service(const char* name, const char* vip, uint8_t proto, uint16_t nodePort,
                             bool affinity, std::vector<const char*> backends) {
  control::ServiceSpec s;
  s.namespaceName = "shop";
  s.name = name;
  s.type = nodePort ? "NodePort" : "ClusterIP";
  s.clusterIps = {*Ipv4Address::parse(vip)};
  if (nodePort) s.externalIps = {*Ipv4Address::parse("192.168.50.200")};
  s.ports = {control::ServicePortSpec{"p", proto, 80, 8080, "", nodePort}};
  s.affinityClientIp = affinity;
  for (const char* b : backends) {
    control::EndpointSpec e;
    e.ip = *Ipv4Address::parse(b);
    s.endpoints.push_back(e);
  }
  return s;
}

// Set-up must succeed, or every input would test nothing.
void check(const Status& st, const char* what) {
  if (st) return;
  std::fprintf(stderr, "fuzz set-up: %s: %s\n", what, st.error().message.c_str());
  std::abort();
}

Node& node() {
  static Node* n = [] {
    fuzz::startEal();
    auto* made = new Node;
    made->backend.pool = testing::testPool();
    auto tracker = lb::ConnTracker::create(4096, 1, 0, nullptr);
    if (!tracker) std::abort();
    made->tracker = std::move(*tracker);
    made->backend.tracker = made->tracker.get();
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = *Ipv4Address::parse("192.168.50.10");
    s.underlayPrefixLength = 24;
    s.underlayGateway = *Ipv4Address::parse("192.168.50.1");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    s.uplinkDevargs = "net_fake_uplink";
    s.hostInterface = "np0";
    s.maglevSize = 251;
    s.l7FlowsPerWorker = 16;
    s.clusterDns = {*Ipv4Address::parse("10.96.0.254")};  // no upstream: TCP answered, refusals
    made->node = std::make_unique<control::NodeController>(s, made->backend);
    auto& n = *made->node;
    control::NodeController::HostPathOps ops;  // no kernel links or nftables from a fuzzer
    ops.create = [](const control::HostPathConfig& c) -> Result<control::HostPathLinks> {
      return control::HostPathLinks{c.kernelInterface, control::hostPathPeerName(c.kernelInterface),
                                    *MacAddress::parse("0a:00:00:00:00:99")};
    };
    ops.addRoutes = [](const control::HostPathConfig&) { return okStatus(); };
    ops.remove = [](const std::string&) {};
    ops.redirectNodePorts = [](const std::vector<control::NodePortRedirect>&) {
      return okStatus();
    };
    ops.removeNodePortRedirects = [] {};
    n.setHostPathOps(ops);
    check(n.start(), "start");
    check(n.attachPod(pod("shop", "client", "10.244.1.2", "0a:00:00:00:00:0a")).ok()
              ? okStatus()
              : makeError(ErrorCode::kInternal, "client"),
          "attach");
    check(n.attachPod(pod("web", "server", "10.244.1.3", "0a:00:00:00:00:0b")).ok()
              ? okStatus()
              : makeError(ErrorCode::kInternal, "server"),
          "attach");
    check(n.setNode({"node-gpu",
                     *Ipv4Address::parse("192.168.50.11"),
                     {*Ipv4Prefix::parse("10.244.2.0/24")},
                     {}}),
          "node");
    for (const auto& sv :
         {service("web", "10.96.0.10", 6, 30080, false, {"10.244.1.3", "10.244.2.5"}),
          service("dns", "10.96.0.53", 17, 0, true, {"10.244.1.3"}),
          service("self", "10.96.0.77", 6, 0, false, {"10.244.1.2"})})
      check(n.setService(sv), "service");
    auto state = policy::policyStateFromJson(policy::Json::parse(R"({
      "namespaces": [{"name": "shop"}, {"name": "web"}],
      "pods": [{"namespace": "shop", "name": "client", "ip": "10.244.1.2", "labels": {"app": "c"}},
               {"namespace": "web", "name": "server", "ip": "10.244.1.3", "labels": {"app": "w"},
                "ports": [{"name": "http", "containerPort": 8080}]}],
      "networkPolicies": [{"metadata": {"namespace": "web", "name": "allow-http"},
        "spec": {"podSelector": {"matchLabels": {"app": "w"}},
                 "ingress": [{"ports": [{"port": "http"}, {"port": 53, "protocol": "UDP"}]}]}}],
      "l7Rules": [{"metadata": {"namespace": "web", "name": "api"},
        "spec": {"podSelector": {"matchLabels": {"app": "w"}}, "ports": [{"port": 8080}],
                 "rules": [{"action": "allow", "http": {"method": "GET", "path": "/api/.*"}},
                           {"action": "deny", "pattern": "(?i)drop\\s+table"}]}}]})"));
    check(state ? okStatus() : state.error(), "policy state");
    check(n.applyPolicy(std::move(*state)), "policy");
    made->ctx.counters = &made->counters;
    made->ctx.conntrack = made->tracker.get();
    made->ctx.icmpLimiter.configure(1'000'000, 1000, 50);
    return made;
  }();
  return *n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Node& n = node();
  if (size < 1) return 0;
  // Selector -> port id: uplink 0, client pod 2, server pod 3, host port 1 (opened at start).
  static constexpr uint16_t kPortOf[4] = {0, 2, 3, 1};
  const uint16_t port = kPortOf[data[0] & 3];
  const bool headroom = data[0] & 4;
  const bool vnet = data[0] & 8;
  Burst burst;
  burst.count = 0;
  burst.inPort = port;
  size_t at = 1;
  while (at + 2 <= size && burst.count < 32) {
    const size_t len = std::min<size_t>(data[at] | data[at + 1] << 8, size - at - 2);
    at += 2;
    const size_t header = vnet ? std::min(len, sizeof(dataplane::VnetHeader)) : 0;
    dataplane::VnetHeader h{};
    std::memcpy(&h, data + at, header);
    const testing::Bytes frame(data + at + header, data + at + len);
    at += len;
    if (frame.size() > 2048) continue;
    rte_mbuf* m = headroom ? testing::makeMbuf(frame, port) : testing::makeExactMbuf(frame, port);
    if (vnet &&
        dataplane::vnetToMbuf(h, static_cast<uint32_t>(frame.size()), m) != DropReason::kNone) {
      rte_pktmbuf_free(m);
      continue;
    }
    burst.pkts[burst.count++] = m;
  }
  if (burst.count == 0) return 0;
  n.ctx.nowMs += 250;  // time passes between bursts: flows age, L7 states are reclaimed
  n.ctx.generation = n.backend.current()->generation;
  dataplane::runStages(burst, *n.backend.current(), n.ctx);
  // The edges: the uplink's packets made ready for a wire, the pods' coalesced and given their
  // virtio-net header.
  static rte_mempool* indirect = rte_pktmbuf_pool_create("fuzz_indirect", 1023, 0, 0, 0, 0);
  static const rte_gso_ctx gso = dataplane::makeGsoContext(testing::testPool(), indirect);
  rte_mbuf* toPods[kMaxBurst];
  uint16_t podCount = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    rte_mbuf* m = burst.pkts[i];
    if (burst.meta[i].action != Action::kTransmit) {
      rte_pktmbuf_free(m);
    } else if (burst.meta[i].outPort == 0) {
      rte_mbuf* out[dataplane::kMaxGsoSegments];
      const uint16_t k = dataplane::prepareForWire(m, out, gso, n.counters);
      rte_pktmbuf_free_bulk(out, k);
    } else {
      toPods[podCount++] = m;
    }
  }
  podCount = dataplane::coalesceForPod(toPods, podCount, n.counters);
  for (uint16_t i = 0; i < podCount; ++i) {
    volatile dataplane::VnetHeader h = dataplane::vnetFromMbuf(toPods[i]);
    (void)h;
  }
  rte_pktmbuf_free_bulk(toPods, podCount);
  n.tracker->shard(0).age(n.ctx.nowMs, 64, n.tracker->timeouts(),
                          [](const lb::ConnEntry&) { return false; });
  return 0;
}
