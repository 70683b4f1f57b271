// A node with an uplink, one local pod and one remote node, built by the real NodeController over
// the fake backend; the remote endpoint's MAC arrives as a punted ARP reply, as from a worker.
#pragma once

#include <gtest/gtest.h>
#include <rte_arp.h>

#include <chrono>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {

inline constexpr const char* kUplinkMac = kFakePort0Mac;
inline constexpr const char* kPodPortMac = kFakePort1Mac;
inline constexpr const char* kPodMac = "0a:00:00:00:00:0a";
inline constexpr const char* kPodIp = "10.244.1.2";
inline constexpr const char* kNodeIp = "192.168.50.10";
inline constexpr const char* kPeerIp = "192.168.50.11";
inline constexpr const char* kPeerMac = "52:54:00:00:00:0b";  // its underlay MAC
inline constexpr const char* kOurVtep = "0e:4e:c0:a8:32:0a";
inline constexpr const char* kPeerVtep = "0e:4e:c0:a8:32:0b";
inline constexpr uint16_t kUplinkPort = 0;
inline constexpr uint16_t kPodPort = 1;

class OverlayFixture : public ::testing::Test {
 public:
  void SetUp() override {
    backend.pool = testPool();
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = ip(kNodeIp);
    s.underlayPrefixLength = 24;
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
    s.uplinkDevargs = "net_fake_uplink";
    node = std::make_unique<control::NodeController>(s, backend);
    ASSERT_TRUE(node->start().ok());
    control::PodAttachment a;
    a.namespaceName = "ns-dev";
    a.name = "c1";
    a.containerId = "c1";
    a.hostInterface = "veth-c1";
    a.ip = ip(kPodIp);
    a.mac = mac(kPodMac);
    ASSERT_TRUE(node->attachPod(a).ok());
    control::NodeSpec peer{"node-gpu", ip(kPeerIp), {*Ipv4Prefix::parse("10.244.2.0/24")}, {}};
    ASSERT_TRUE(node->setNode(peer).ok());
    ctx.counters = &counters;
    ctx.icmpLimiter.configure(1'000'000, 1000, 50);
    clearInjected();
  }
  void TearDown() override { clearInjected(); }

  void clearInjected() {
    for (auto& [port, m] : backend.injected) rte_pktmbuf_free(m);
    backend.injected.clear();
  }

  // The peer's ARP reply reaches the control thread.
  void resolvePeer() {
    Bytes reply = PacketBuilder()
                      .eth(kUplinkMac, kPeerMac)
                      .arp(2, kPeerMac, kPeerIp, kNodeIp, kUplinkMac)
                      .build();
    backend.punted.push_back(dataplane::PuntedPacket{
        makeMbuf(reply, kUplinkPort), static_cast<uint8_t>(PuntReason::kArp), 0, kUplinkPort, 0});
    node->serviceSlowPath(std::chrono::steady_clock::now());
  }

  const dataplane::Snapshot& snapshot() { return *backend.current(); }

  PacketMeta run(const Bytes& frame, uint16_t port, rte_mbuf** out) {
    Burst burst;
    burst.count = 1;
    burst.inPort = port;
    burst.pkts[0] = makeMbuf(frame, port);
    ctx.generation = snapshot().generation;
    dataplane::runStages(burst, snapshot(), ctx);
    *out = burst.pkts[0];
    return burst.meta[0];
  }

  PacketBuilder fromPod() { return PacketBuilder().eth(kPodPortMac, kPodMac); }

  // An outer VXLAN frame from `src` around `inner`.
  Bytes vxlan(const Bytes& inner, const char* src = kPeerIp, uint32_t vni = 1,
              uint8_t flags = 0x08) {
    Bytes header = {flags,
                    0,
                    0,
                    0,
                    static_cast<uint8_t>(vni >> 16),
                    static_cast<uint8_t>(vni >> 8),
                    static_cast<uint8_t>(vni),
                    0};
    header.insert(header.end(), inner.begin(), inner.end());
    return PacketBuilder()
        .eth(kUplinkMac, kPeerMac)
        .ipv4(src, kNodeIp)
        .udp(50000, 4789)
        .payloadBytes(header)
        .build();
  }

  FakeBackend backend;
  std::unique_ptr<control::NodeController> node;
  WorkerCounters counters;
  dataplane::WorkerContext ctx;
};

}  // namespace nodeplane::testing
