// The host path through the stages: what the node's kernel sends in on the host port, and what
// pods send to the node's address, against snapshots the real NodeController builds (its
// kernel-side links replaced by HostPathOps that record what they were asked).
#include <gtest/gtest.h>
#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>

#include "control/node_controller.h"
#include "dataplane/pipeline.h"
#include "lb/conntrack.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::Bytes;
using testing::PacketBuilder;

constexpr const char* kKernelMac = "0a:00:00:00:00:99";  // the kernel's end of the host veth
constexpr const char* kPodMac = "0a:00:00:00:00:0a";
constexpr const char* kNodeIp = "192.168.50.10";
constexpr const char* kPodIp = "10.244.1.2";
constexpr uint16_t kHostPort = 0;  // opened first (start), then the pod (port 1)
constexpr uint16_t kPodPort = 1;

// A node started with its host path ops recorded (no kernel links made) and one pod, web.
class HostNodeTest : public ::testing::Test {
 protected:
  void startNode(const control::NodeSettings& s) {
    node_ = std::make_unique<control::NodeController>(s, backend_);
    control::NodeController::HostPathOps ops;
    ops.create = [this](const control::HostPathConfig& c) -> Result<control::HostPathLinks> {
      created_ = c;
      return control::HostPathLinks{c.kernelInterface, control::hostPathPeerName(c.kernelInterface),
                                    testing::mac(kKernelMac)};
    };
    ops.addRoutes = [this](const control::HostPathConfig& c) {
      routed_ = c.prefixes;
      return okStatus();
    };
    ops.remove = [this](const std::string& name) { removed_.push_back(name); };
    ops.redirectNodePorts = [this](const std::vector<control::NodePortRedirect>& r) {
      redirects_ = r;
      return okStatus();
    };
    ops.removeNodePortRedirects = [this] { redirects_.reset(); };
    node_->setHostPathOps(ops);
    ASSERT_TRUE(node_->start().ok());
    control::PodAttachment a;
    a.namespaceName = "app";
    a.name = "web";
    a.containerId = "ctr-web";
    a.hostInterface = "veth-web";
    a.ip = testing::ip(kPodIp);
    a.mac = testing::mac(kPodMac);
    ASSERT_TRUE(node_->attachPod(a).ok());
    ctx_.counters = &counters_;
    ctx_.icmpLimiter.configure(1'000'000, 1000, 50);
  }

  PacketMeta run(const Bytes& frame, uint16_t port, rte_mbuf** out) {
    Burst burst;
    burst.count = 1;
    burst.inPort = port;
    burst.pkts[0] = testing::makeMbuf(frame, port);
    runStages(burst, *backend_.current(), ctx_);
    *out = burst.pkts[0];
    return burst.meta[0];
  }

  std::unique_ptr<lb::ConnTracker> tracker_;  // optional; outlives the node
  testing::FakeBackend backend_;
  std::unique_ptr<control::NodeController> node_;
  WorkerCounters counters_;
  WorkerContext ctx_;
  std::optional<control::HostPathConfig> created_;
  std::vector<Ipv4Prefix> routed_;
  std::vector<std::string> removed_;
  std::optional<std::vector<control::NodePortRedirect>> redirects_;
};

class HostPathTest : public HostNodeTest {
 protected:
  void SetUp() override {
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = testing::ip(kNodeIp);
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    s.hostInterface = "np0";
    startNode(s);
  }

  const char* hostPortMac() const { return testing::kFakePort0Mac; }
  const char* podPortMac() const { return testing::kFakePort1Mac; }
};

TEST_F(HostPathTest, MakesTheLinksAndRoutesThePodAndServiceCidrs) {
  ASSERT_TRUE(created_.has_value());
  EXPECT_EQ(created_->kernelInterface, "np0");
  EXPECT_EQ(created_->nodeIp, testing::ip(kNodeIp));
  EXPECT_EQ(created_->mtu, 1500u);  // no uplink: no overlay to make room for
  ASSERT_EQ(routed_.size(), 2u);
  EXPECT_EQ(routed_[0].toString(), "10.244.1.0/24");
  EXPECT_EQ(routed_[1].toString(), "10.96.0.0/12");
  EXPECT_EQ(backend_.current()->ports[kHostPort].role, PortRole::kHost);
  EXPECT_TRUE(backend_.current()->settings.hostPath);
  node_->shutdown();
  EXPECT_EQ(removed_, std::vector<std::string>{"np0"});
}

TEST_F(HostPathTest, TheNodeReachesAPod) {
  Bytes in =
      PacketBuilder().eth(hostPortMac(), kKernelMac).ipv4(kNodeIp, kPodIp).tcp(40000, 8080).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kHostPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kPodPort);
  EXPECT_TRUE(meta.flags & kFlagFromHost);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  EXPECT_EQ(0, memcmp(eth->dst_addr.addr_bytes, testing::mac(kPodMac).bytes.data(), 6));
  EXPECT_EQ(0, memcmp(eth->src_addr.addr_bytes, testing::mac(podPortMac()).bytes.data(), 6));
  rte_pktmbuf_free(m);
}

TEST_F(HostPathTest, APodReachesTheNodeAddressThroughTheHostPort) {
  Bytes in =
      PacketBuilder().eth(podPortMac(), kPodMac).ipv4(kPodIp, kNodeIp).tcp(40000, 6443).build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kPodPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kHostPort);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  EXPECT_EQ(0, memcmp(eth->dst_addr.addr_bytes, testing::mac(kKernelMac).bytes.data(), 6));
  EXPECT_EQ(0, memcmp(eth->src_addr.addr_bytes, testing::mac(hostPortMac()).bytes.data(), 6));
  rte_pktmbuf_free(m);
}

TEST_F(HostPathTest, AnswersTheKernelsArpForTheGateway) {
  Bytes in = PacketBuilder()
                 .eth("ff:ff:ff:ff:ff:ff", kKernelMac)
                 .arp(1, kKernelMac, kNodeIp, "169.254.1.1")
                 .build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kHostPort, &m);
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, kHostPort);
  auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, 14);
  EXPECT_EQ(rte_be_to_cpu_16(arp->arp_opcode), RTE_ARP_OP_REPLY);
  EXPECT_EQ(0,
            memcmp(arp->arp_data.arp_sha.addr_bytes, testing::mac(hostPortMac()).bytes.data(), 6));
  rte_pktmbuf_free(m);
}

TEST_F(HostPathTest, RefusesWhatTheKernelMustNotSend) {
  struct Case {
    Bytes frame;
    DropReason why;
  } cases[] = {
      // A source the replies could not come back to.
      {PacketBuilder().eth(hostPortMac(), kKernelMac).ipv4("10.0.0.5", kPodIp).udp(1, 2).build(),
       DropReason::kHostSourceNotNode},
      // Not to our MAC.
      {PacketBuilder().eth("0a:0a:0a:0a:0a:0a", kKernelMac).ipv4(kNodeIp, kPodIp).udp(1, 2).build(),
       DropReason::kEthDstNotLocal},
      // To the pod CIDR but no such pod.
      {PacketBuilder()
           .eth(hostPortMac(), kKernelMac)
           .ipv4(kNodeIp, "10.244.1.77")
           .udp(1, 2)
           .build(),
       DropReason::kPodUnknown},
  };
  for (const Case& c : cases) {
    rte_mbuf* m;
    PacketMeta meta = run(c.frame, kHostPort, &m);
    EXPECT_EQ(meta.action, Action::kDrop);
    EXPECT_EQ(meta.drop, c.why) << dropReasonInfo(meta.drop).name;
    rte_pktmbuf_free(m);
  }
}

TEST_F(HostPathTest, NodePortsFromTheNodeFollowTheServices) {
  ASSERT_TRUE(redirects_.has_value());
  EXPECT_TRUE(redirects_->empty());
  control::ServiceSpec s;
  s.namespaceName = "app";
  s.name = "web";
  s.type = "NodePort";
  s.clusterIps = {testing::ip("10.96.0.41")};
  s.ports = {control::ServicePortSpec{"http", 6, 80, 8080, "", 30080}};
  ASSERT_TRUE(node_->setService(s).ok());
  ASSERT_EQ(redirects_->size(), 1u);
  EXPECT_EQ((*redirects_)[0].nodePort, 30080);
  EXPECT_EQ((*redirects_)[0].clusterIp, testing::ip("10.96.0.41"));
  EXPECT_EQ((*redirects_)[0].port, 80);
  const std::string rules = control::nodePortRedirectRules(*redirects_);
  EXPECT_NE(rules.find("tcp dport 30080 dnat to 10.96.0.41:80"), std::string::npos) << rules;
  ASSERT_TRUE(node_->deleteService("app", "web").ok());
  EXPECT_TRUE(redirects_->empty());
  node_->shutdown();
  EXPECT_FALSE(redirects_.has_value());
}

// The uplink as the node's only NIC (--host-default-route): the node address is the host
// interface's, the node's own traffic to the outside leaves by the uplink, and what the uplink
// brings for the node address goes to the host port. Ports: uplink 0, host 1, pod 2.
class HostDefaultRouteTest : public HostNodeTest {
 protected:
  static constexpr uint16_t kUplink = 0, kHost = 1, kPod = 2;
  static constexpr const char* kGatewayMac = "52:54:00:00:00:01";
  static constexpr const char* kUplinkMac = "02:fe:00:00:00:00";
  static constexpr const char* kHostMac = "02:fe:00:00:00:01";
  static constexpr const char* kPodPortMac = "02:fe:00:00:00:02";

  void SetUp() override {
    auto tracker = lb::ConnTracker::create(4096, 1, 0, nullptr);
    ASSERT_TRUE(tracker.ok());
    tracker_ = std::move(*tracker);
    backend_.tracker = tracker_.get();
    backend_.pool = testing::testPool();
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = testing::ip(kNodeIp);
    s.underlayPrefixLength = 24;
    s.underlayGateway = testing::ip("192.168.50.1");
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    s.uplinkDevargs = "net_fake_uplink";
    s.hostInterface = "np0";
    s.hostDefaultRoute = true;
    startNode(s);
    // The underlay gateway answers the node's ARP.
    Bytes reply = PacketBuilder()
                      .eth(kUplinkMac, kGatewayMac)
                      .arp(2, kGatewayMac, "192.168.50.1", kNodeIp, kUplinkMac)
                      .build();
    backend_.punted.push_back(
        {testing::makeMbuf(reply, kUplink), static_cast<uint8_t>(PuntReason::kArp), 0, kUplink, 0});
    node_->serviceSlowPath(std::chrono::steady_clock::now());
    ctx_.conntrack = tracker_.get();
  }
  void TearDown() override {
    for (auto& [port, m] : backend_.injected) rte_pktmbuf_free(m);
  }
};

TEST_F(HostDefaultRouteTest, TheKernelGetsTheNodeAddressAndItsDefaultRoute) {
  ASSERT_TRUE(created_.has_value());
  EXPECT_TRUE(created_->defaultRoute);
  EXPECT_TRUE(backend_.current()->settings.hostDefaultRoute);
  // The kernel's own connections use the node address: masquerade stays above its ports.
  EXPECT_EQ(backend_.current()->settings.snatPortFirst, 61000);
}

TEST_F(HostDefaultRouteTest, TheNodeReachesTheOutsideByTheUplinkWithItsOwnAddress) {
  Bytes in = PacketBuilder()
                 .eth(kHostMac, kKernelMac)
                 .ipv4(kNodeIp, "203.0.113.10")
                 .tcp(40000, 443)
                 .build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kHost, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kUplink);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  EXPECT_EQ(0, memcmp(eth->dst_addr.addr_bytes, testing::mac(kGatewayMac).bytes.data(), 6));
  EXPECT_EQ(0, memcmp(eth->src_addr.addr_bytes, testing::mac(kUplinkMac).bytes.data(), 6));
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
  EXPECT_EQ(ip->src_addr, rte_cpu_to_be_32(testing::ip(kNodeIp).value));  // not masqueraded
  rte_pktmbuf_free(m);
}

TEST_F(HostDefaultRouteTest, WhatTheUplinkBringsTheNodeGoesToTheHostPort) {
  Bytes in = PacketBuilder()
                 .eth(kUplinkMac, kGatewayMac)
                 .ipv4("203.0.113.10", kNodeIp)
                 .tcp(443, 40000, 0x12)
                 .build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kUplink, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kHost);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  EXPECT_EQ(0, memcmp(eth->dst_addr.addr_bytes, testing::mac(kKernelMac).bytes.data(), 6));
  rte_pktmbuf_free(m);
  // Another address on the uplink is still not the node's.
  Bytes other = PacketBuilder()
                    .eth(kUplinkMac, kGatewayMac)
                    .ipv4("203.0.113.10", "192.168.50.77")
                    .tcp(443, 40000, 0x12)
                    .build();
  meta = run(other, kUplink, &m);
  EXPECT_EQ(meta.action, Action::kDrop);
  EXPECT_EQ(meta.drop, DropReason::kUplinkNotForNode) << dropReasonInfo(meta.drop).name;
  rte_pktmbuf_free(m);
}

TEST_F(HostDefaultRouteTest, PodsStillLeaveMasqueradedAboveTheKernelsPorts) {
  Bytes in = PacketBuilder()
                 .eth(kPodPortMac, kPodMac)
                 .ipv4(kPodIp, "203.0.113.10")
                 .tcp(40000, 443)
                 .build();
  rte_mbuf* m;
  PacketMeta meta = run(in, kPod, &m);
  ASSERT_EQ(meta.action, Action::kTransmit) << dropReasonInfo(meta.drop).name;
  EXPECT_EQ(meta.outPort, kUplink);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
  EXPECT_EQ(ip->src_addr, rte_cpu_to_be_32(testing::ip(kNodeIp).value));
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, 34);
  EXPECT_GE(rte_be_to_cpu_16(tcp->src_port), 61000);
  rte_pktmbuf_free(m);
}

TEST_F(HostDefaultRouteTest, TheGuardKeepsTheKernelOffTheWholeUplink) {
  control::UplinkGuardConfig g;
  g.interface = "ul0";
  g.nodeIp = testing::ip(kNodeIp);
  g.whole = true;
  const std::string rules = control::uplinkGuardRules(g);
  EXPECT_NE(rules.find("hook ingress device \"ul0\""), std::string::npos) << rules;
  EXPECT_NE(rules.find("    counter drop comment"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("dport"), std::string::npos) << rules;  // everything, not some ports
}

TEST(UplinkGuard, OnlyAnAfPacketUplinkIsShared) {
  EXPECT_EQ(control::sharedUplinkInterface("net_af_packet0,iface=eth0,qpairs=2"), "eth0");
  EXPECT_EQ(control::sharedUplinkInterface("net_af_packet0,iface=eth0"), "eth0");
  EXPECT_FALSE(control::sharedUplinkInterface("0000:3b:00.0").has_value());
  EXPECT_FALSE(control::sharedUplinkInterface("net_af_packet0,iface=a\"b").has_value());
  control::UplinkGuardConfig g;
  g.interface = "eth0";
  g.nodeIp = testing::ip("10.200.0.1");
  const std::string rules = control::uplinkGuardRules(g);
  EXPECT_NE(rules.find("hook ingress device \"eth0\""), std::string::npos) << rules;
  EXPECT_NE(rules.find("ip daddr 10.200.0.1 udp dport 4789"), std::string::npos) << rules;
  EXPECT_NE(rules.find("tcp dport 30000-32767"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("masqueraded"), std::string::npos) << "no SNAT range given: none guarded";
  // Behind the guard, masquerade takes ports above the kernel's ephemeral range, and the guard
  // keeps the kernel from answering their replies (a RST from a kernel without the socket).
  control::NodeSettings shared;
  shared.uplinkGuard = true;
  shared.uplinkDevargs = "net_af_packet0,iface=eth0";
  const auto [first, last] = control::snatPortRange(shared);
  EXPECT_EQ(first, 61000);
  EXPECT_EQ(last, 65535);
  g.snatPortFirst = first;
  g.snatPortLast = last;
  const std::string guarded = control::uplinkGuardRules(g);
  EXPECT_NE(guarded.find("ip daddr 10.200.0.1 tcp dport 61000-65535 counter drop"),
            std::string::npos)
      << guarded;
  EXPECT_NE(guarded.find("ip daddr 10.200.0.1 udp dport 61000-65535 counter drop"),
            std::string::npos)
      << guarded;
  control::NodeSettings nic = shared;
  nic.uplinkDevargs = "0000:3b:00.0";
  EXPECT_EQ(control::snatPortRange(nic), (std::pair<uint16_t, uint16_t>{32768, 60999}));
  nic.snatPorts = std::pair<uint16_t, uint16_t>{40000, 50000};
  EXPECT_EQ(control::snatPortRange(nic), (std::pair<uint16_t, uint16_t>{40000, 50000}));
}

TEST(HostPathNames, InterfaceNamesAreChecked) {
  EXPECT_TRUE(control::validateHostInterfaceName("nodeplane0").ok());
  EXPECT_EQ(control::hostPathPeerName("nodeplane0"), "nodeplane0-dp");
  EXPECT_FALSE(control::validateHostInterfaceName("").ok());
  EXPECT_FALSE(control::validateHostInterfaceName("much-too-long-name").ok());
  EXPECT_FALSE(control::validateHostInterfaceName("np 0").ok());
  EXPECT_FALSE(control::validateHostInterfaceName("np/0").ok());
}

}  // namespace
}  // namespace nodeplane::dataplane
