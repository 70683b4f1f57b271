// A node with two local pods (fake ports 0 and 1) and a real single-threaded connection table,
// built by the real NodeController over the fake backend; frames run through the real stages.
// Shared by the service-stage and policy-enforcement tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "lb/conntrack.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {

// The pair: the first pod attached takes fake port 0, the second fake port 1.
inline constexpr const char* kFirstPodIp = "10.244.1.2";
inline constexpr const char* kFirstPodMac = "0a:00:00:00:00:0a";
inline constexpr const char* kSecondPodIp = "10.244.1.3";
inline constexpr const char* kSecondPodMac = "0a:00:00:00:00:0b";

class PodPairFixture : public ::testing::Test {
 protected:
  // node-cpu 192.168.50.10, pods 10.244.1.0/24 in a 10.244.0.0/16 cluster, services 10.96.0.0/12,
  // Maglev tables of 251 entries.
  static control::NodeSettings nodeSettings() {
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = ip("192.168.50.10");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    s.maglevSize = 251;
    return s;
  }

  void startNode(const control::NodeSettings& s, uint32_t conntrackCapacity = 4096) {
    auto t = lb::ConnTracker::create(conntrackCapacity, 1, 0, nullptr);
    ASSERT_TRUE(t.ok());
    tracker = std::move(*t);
    backend.tracker = tracker.get();
    backend.pool = testPool();
    node = std::make_unique<control::NodeController>(s, backend);
    ASSERT_TRUE(node->start().ok());
    ctx.counters = &counters;
    ctx.conntrack = tracker.get();
    ctx.icmpLimiter.configure(1'000'000, 1000, 50);
  }

  // Stops the node started by startNode (to start another).
  void stopNode() {
    node.reset();
    backend = FakeBackend{};
    tracker.reset();
  }

  // Pods take fake ports in the order they are attached.
  void attach(const char* ns, const char* name, const char* ipText, const char* macText) {
    control::PodAttachment a;
    a.namespaceName = ns;
    a.name = a.containerId = name;
    a.hostInterface = std::string("veth-") + name;
    a.ip = ip(ipText);
    a.mac = mac(macText);
    ASSERT_TRUE(node->attachPod(a).ok());
  }

  // Attaches the pair (namespace, name of each).
  void attachPair(const char* firstNs, const char* firstName, const char* secondNs,
                  const char* secondName) {
    attach(firstNs, firstName, kFirstPodIp, kFirstPodMac);      // port 0
    attach(secondNs, secondName, kSecondPodIp, kSecondPodMac);  // port 1
  }

  // A frame the first / second pod sends (Ethernet from the pod's MAC to its port's).
  static PacketBuilder fromFirstPod() { return PacketBuilder().eth(kFakePort0Mac, kFirstPodMac); }
  static PacketBuilder fromSecondPod() { return PacketBuilder().eth(kFakePort1Mac, kSecondPodMac); }

  // Runs one frame through the stages; returns every packet that came out (the frame's own
  // first, then any the stages made), freeing none.
  std::vector<std::pair<PacketMeta, rte_mbuf*>> runAll(const Bytes& frame, uint16_t port) {
    return runBurst({frame}, port);
  }

  // Runs frames received together (one burst) through the stages; returns every packet that came
  // out, in burst order, freeing none.
  std::vector<std::pair<PacketMeta, rte_mbuf*>> runBurst(const std::vector<Bytes>& frames,
                                                         uint16_t port) {
    Burst burst;
    burst.count = static_cast<uint16_t>(frames.size());
    burst.inPort = port;
    for (size_t i = 0; i < frames.size(); ++i) burst.pkts[i] = makeMbuf(frames[i], port);
    ctx.generation = backend.current()->generation;
    dataplane::runStages(burst, *backend.current(), ctx);
    std::vector<std::pair<PacketMeta, rte_mbuf*>> out;
    for (uint16_t i = 0; i < burst.count; ++i) out.emplace_back(burst.meta[i], burst.pkts[i]);
    return out;
  }

  FakeBackend backend;
  std::unique_ptr<lb::ConnTracker> tracker;
  std::unique_ptr<control::NodeController> node;
  WorkerCounters counters;
  dataplane::WorkerContext ctx;
};

}  // namespace nodeplane::testing
