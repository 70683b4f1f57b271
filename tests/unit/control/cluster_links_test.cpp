// Peer clusters on the control side: what is refused (by field), SPIs naming SA index and
// generation, that both gateways derive the same keys for a generation (what one seals the other
// opens, no other generation or secret does), and the link table the snapshot gets (inbound SAs
// of the newest and the previous generation, found by gateway and SPI).
#include "control/cluster_links.h"

#include "control/cluster_keys.h"

#include <gtest/gtest.h>

#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {
namespace {

using control::ClusterPeer;
using control::ClusterPeerSpec;
using control::NodeSettings;
using control::PeerMap;

NodeSettings settings(const char* id, const char* ip) {
  NodeSettings s;
  s.nodeName = id;
  s.clusterId = id;
  s.nodeIp = *Ipv4Address::parse(ip);
  s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
  s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/16");
  return s;
}

ClusterPeerSpec peer(const char* id, const char* gateway, const char* cidr,
                     const char* secret = "a secret of sixteen bytes or more") {
  ClusterPeerSpec p;
  p.clusterId = id;
  p.gateways = {*Ipv4Address::parse(gateway)};
  p.cidrs = {*Ipv4Prefix::parse(cidr)};
  p.secret = secret;
  return p;
}

std::string refusal(const ClusterPeerSpec& p, const NodeSettings& s, const PeerMap& others = {}) {
  auto st = control::validatePeer(p, s, others);
  return st.ok() ? "" : st.error().message;
}

TEST(ClusterLinksTest, BadPeersAreRefusedByField) {
  const NodeSettings east = settings("east", "192.168.53.10");
  EXPECT_EQ(refusal(peer("west", "192.168.53.11", "10.245.0.0/16"), east), "");
  EXPECT_NE(refusal(peer("east", "192.168.53.11", "10.245.0.0/16"), east).find("own ID"),
            std::string::npos);
  EXPECT_NE(refusal(peer("We_st", "192.168.53.11", "10.245.0.0/16"), east).find("DNS label"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.10", "10.245.0.0/16"), east).find("gatewayIps"),
            std::string::npos);
  ClusterPeerSpec twice = peer("west", "192.168.53.11", "10.245.0.0/16");
  twice.gateways.push_back(twice.gateways[0]);
  EXPECT_NE(refusal(twice, east).find("given twice"), std::string::npos);
  ClusterPeerSpec none = twice;
  none.gateways.clear();
  EXPECT_NE(refusal(none, east).find("gatewayIps: none"), std::string::npos);
  ClusterPeerSpec many = none;
  for (int i = 1; i <= 5; ++i) many.gateways.push_back(Ipv4Address{0xc0a83500u + 20 + i});
  EXPECT_NE(refusal(many, east).find("more than 4"), std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.245.0.0/16", "short"), east).find("secret"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.244.7.0/24"), east).find("cluster's CIDR"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.96.0.0/12"), east).find("service CIDR"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "0.0.0.0/0"), east).find("everything"),
            std::string::npos);
  PeerMap others;
  others["north"] = ClusterPeer{peer("north", "192.168.53.12", "10.246.0.0/16"), {}, ""};
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.246.1.0/24"), east, others)
                .find("cluster peer 'north'"),
            std::string::npos);
  NodeSettings anonymous = east;
  anonymous.clusterId.clear();
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.245.0.0/16"), anonymous).find("--cluster-id"),
            std::string::npos);
}

TEST(ClusterLinksTest, SpisNameTheIndexAndTheGeneration) {
  const uint64_t g = 1'765'000'000;  // December 2025
  const uint32_t spi = control::clusterSpi(3, g);
  EXPECT_GT(spi, 255u);
  EXPECT_EQ(control::spiIndex(spi), 3u);
  EXPECT_EQ(control::spiGeneration(spi, g), g);
  EXPECT_EQ(control::spiGeneration(spi, g + 86400 * 365), g) << "a year later, still that one";
  EXPECT_EQ(control::spiGeneration(spi, g - 3600), g) << "a clock an hour behind";
  EXPECT_NE(control::clusterSpi(3, g), control::clusterSpi(3, g + 1));
  EXPECT_NE(control::clusterSpi(3, g), control::clusterSpi(4, g));
  // Across the 27-bit wrap (every 4.25 years): the nearest generation with those bits.
  const uint64_t wrap = (g | 0x07ffffffu) + 1;
  EXPECT_EQ(control::spiGeneration(control::clusterSpi(0, wrap - 5), wrap + 10), wrap - 5);
  EXPECT_EQ(control::spiGeneration(control::clusterSpi(0, wrap + 5), wrap - 10), wrap + 5);
}

// One frame of inner IPv4 behind an Ethernet header, as the link's TX buffer hands it to an SA.
Bytes innerFrame() {
  Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  const Bytes inner =
      PacketBuilder().ipv4("10.244.1.2", "10.245.1.2").udp(1, 2).payload(100).build();
  frame.insert(frame.end(), inner.begin(), inner.end());
  return frame;
}

TEST(ClusterLinksTest, WhatOneGatewaySealsTheOtherOpensWithTheSameGeneration) {
  auto device = overlay::EspDevice::open(0);
  ASSERT_TRUE(device.ok()) << device.error().message;
  std::shared_ptr<overlay::EspDevice> shared = std::move(*device);
  const NodeSettings east = settings("east", "192.168.53.10");
  const NodeSettings west = settings("west", "192.168.53.11");
  const ClusterPeerSpec westPeer = peer("west", "192.168.53.11", "10.245.0.0/16");
  const uint64_t g = 1'765'000'000;
  auto out = control::makeOutboundSas(shared, east, westPeer, west.nodeIp, g, 2);
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ((*out)->byWorker.size(), 2u);
  ASSERT_NE((*out)->control, nullptr);
  EXPECT_EQ((*out)->control->spi(), control::clusterSpi(control::kControlSaIndex, g));
  auto in = control::makeInboundSas(shared, west, "east", east.nodeIp, g, westPeer.secret, 1);
  auto other =
      control::makeInboundSas(shared, west, "east", east.nodeIp, g + 1, westPeer.secret, 1);
  auto wrongKey = control::makeInboundSas(shared, west, "east", east.nodeIp, g,
                                          "another secret, sixteen or more", 1);
  ASSERT_TRUE(in.ok() && other.ok() && wrongKey.ok());
  ASSERT_EQ((*in)->byIndex.size(), control::kSasPerPeer);
  for (unsigned index : {1u, control::kControlSaIndex}) {
    overlay::EspSa& sealer = index == 1 ? *(*out)->byWorker[1] : *(*out)->control;
    EXPECT_EQ((*in)->byIndex[index].spi, sealer.spi());
    rte_mbuf* m = makeMbuf(innerFrame());
    ASSERT_EQ(sealer.process(&m, 1), 1);
    rte_mbuf* again = rte_pktmbuf_copy(m, testPool(), 0, UINT32_MAX);
    rte_mbuf* third = rte_pktmbuf_copy(m, testPool(), 0, UINT32_MAX);
    ASSERT_EQ((*in)->byIndex[index].byWorker[0]->process(&m, 1), 1);
    const Bytes opened = mbufBytes(m);
    rte_pktmbuf_free(m);
    const Bytes sent = innerFrame();
    EXPECT_EQ(Bytes(opened.begin() + 14, opened.end()), Bytes(sent.begin() + 14, sent.end()));
    // Another generation's keys, or another secret's, do not open it.
    EXPECT_EQ((*other)->byIndex[index].byWorker[0]->process(&again, 1), 0);
    EXPECT_EQ((*wrongKey)->byIndex[index].byWorker[0]->process(&third, 1), 0);
    rte_pktmbuf_free(again);
    rte_pktmbuf_free(third);
  }
  EXPECT_EQ((*out)->mostSealed(), 1u);
}

TEST(ClusterLinksTest, TheLinkTableFindsInboundSasByGatewayAndSpi) {
  auto device = overlay::EspDevice::open(0);
  ASSERT_TRUE(device.ok());
  std::shared_ptr<overlay::EspDevice> shared = std::move(*device);
  const NodeSettings east = settings("east", "192.168.53.10");
  const uint64_t g = 1'765'000'000;
  ClusterPeer west{peer("west", "192.168.53.11", "10.245.0.0/16"), {}, ""};
  control::GatewaySas sas;
  sas.gateway = west.spec.gateways[0];
  sas.outbound = *control::makeOutboundSas(shared, east, west.spec, sas.gateway, g, 1);
  sas.inbound =
      *control::makeInboundSas(shared, east, "west", sas.gateway, g + 9, west.spec.secret, 1);
  sas.previous =
      *control::makeInboundSas(shared, east, "west", sas.gateway, g + 3, west.spec.secret, 1);
  west.gateways = {sas};
  auto peers = std::make_shared<PeerMap>();
  (*peers)["west"] = west;
  dataplane::PortInfo uplink;
  uplink.id = 3;
  FakeBackend backend;
  control::UnderlayResolver resolver(backend);  // nothing resolved yet
  auto table = control::buildClusterLinks(peers, east, uplink, resolver, {}, 0);
  ASSERT_EQ(table->links.size(), 1u);
  EXPECT_FALSE(table->links[0].resolved) << "until ARP answers, the link sends nothing";
  EXPECT_EQ(table->links[0].uplinkPort, 3);
  EXPECT_EQ(table->links[0].innerMtu, 1500u - overlay::EspSa::kOverhead);
  ASSERT_EQ(table->links[0].outbound.size(), 1u);
  EXPECT_EQ(table->links[0].outbound[0], sas.outbound->byWorker[0].get());
  ASSERT_EQ(table->inbound.size(), 2 * control::kSasPerPeer) << "the newest and the one before";
  for (size_t i = 1; i < table->inbound.size(); ++i)
    EXPECT_LT(table->inbound[i - 1].spi, table->inbound[i].spi);
  const rte_be32_t from = rte_cpu_to_be_32(sas.gateway.value);
  for (uint64_t generation : {g + 9, g + 3}) {
    const auto* in = table->findSpi(from, control::clusterSpi(2, generation));
    ASSERT_NE(in, nullptr) << generation;
    EXPECT_EQ(in->link, 0);
    EXPECT_EQ(in->byWorker[0],
              (generation == g + 9 ? sas.inbound : sas.previous)->byIndex[2].byWorker[0].get());
  }
  EXPECT_EQ(table->findSpi(from, control::clusterSpi(2, g)), nullptr) << "not learned";
  EXPECT_EQ(table->findSpi(rte_cpu_to_be_32(0xc0a83509u), control::clusterSpi(2, g + 9)), nullptr)
      << "the same SPI from another address";
  EXPECT_EQ(table->espLinkFrom(from), 0);
  EXPECT_EQ(table->espLinkFrom(rte_cpu_to_be_32(0xc0a83509u)), -1);
}

// Globalnet: clusters with the same pod and service CIDRs, each with a global CIDR of its own.
NodeSettings globalSettings(const char* id, const char* ip, const char* global) {
  NodeSettings s = settings(id, ip);
  s.globalCidr = *Ipv4Prefix::parse(global);
  return s;
}

ClusterPeerSpec globalPeer(const char* id, const char* gateway, const char* global) {
  ClusterPeerSpec p = peer(id, gateway, "10.244.0.0/16");  // the same as ours
  p.globalCidr = *Ipv4Prefix::parse(global);
  return p;
}

TEST(ClusterLinksTest, GlobalnetPeersAreRoutedByTheirGlobalCidrAndCheckedByField) {
  const NodeSettings east = globalSettings("east", "192.168.53.10", "242.0.0.0/24");
  const ClusterPeerSpec west = globalPeer("west", "192.168.53.11", "242.1.0.0/24");
  EXPECT_EQ(refusal(west, east), "") << "overlapping pod CIDRs are fine with Globalnet";
  EXPECT_EQ(control::routedPrefixes(west), std::vector<Ipv4Prefix>{*west.globalCidr});
  ClusterPeerSpec plain = peer("west", "192.168.53.11", "10.245.0.0/16");
  EXPECT_NE(refusal(plain, east).find("globalCidr: required"), std::string::npos);
  EXPECT_NE(refusal(west, settings("east", "192.168.53.10")).find("no --cluster-global-cidr"),
            std::string::npos);
  EXPECT_NE(refusal(globalPeer("west", "192.168.53.11", "242.0.0.128/25"), east)
                .find("globalCidr: 242.0.0.128/25 overlaps this cluster's global CIDR"),
            std::string::npos);
  PeerMap others;
  others["north"] = ClusterPeer{globalPeer("north", "192.168.53.12", "242.1.0.0/16"), {}, ""};
  EXPECT_NE(refusal(west, east, others).find("overlaps cluster peer 'north'"), std::string::npos);
  ClusterPeerSpec noCidrs = west;
  noCidrs.cidrs.clear();
  EXPECT_EQ(refusal(noCidrs, east), "") << "a Globalnet peer's own CIDRs are only shown";
}

TEST(ClusterLinksTest, ExportAddressesComeFromTheGlobalCidr) {
  const NodeSettings east = globalSettings("east", "192.168.53.10", "242.0.0.0/29");
  control::ExportMap exports;
  auto first = control::exportAddress("shop/web", std::nullopt, east, exports);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->toString(), "242.0.0.2") << "after the network and the egress address";
  EXPECT_EQ(control::globalEgressIp(*east.globalCidr).toString(), "242.0.0.1");
  exports["shop/web"] = *first;
  EXPECT_EQ(control::exportAddress("shop/web", std::nullopt, east, exports)->toString(),
            "242.0.0.2")
      << "an export keeps its address";
  EXPECT_EQ(control::exportAddress("shop/db", std::nullopt, east, exports)->toString(),
            "242.0.0.3");
  auto taken = control::exportAddress("shop/db", first.value(), east, exports);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.error().message.find("globalIp: 242.0.0.2 is service shop/web's"),
            std::string::npos);
  for (const char* bad : {"242.0.0.1", "242.0.0.7", "242.0.0.0", "10.0.0.5"}) {
    auto r = control::exportAddress("shop/db", Ipv4Address::parse(bad), east, exports);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("globalIp: " + std::string(bad)), std::string::npos);
  }
  for (int i = 3; i <= 6; ++i) exports["ns/s" + std::to_string(i)] = Ipv4Address{0xf2000000u + i};
  auto full = control::exportAddress("shop/db", std::nullopt, east, exports);
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().message.find("every address"), std::string::npos);
  EXPECT_EQ(control::exportAddress("shop/web", std::nullopt, settings("east", "192.168.53.10"), {})
                ->value,
            0u)
      << "no global CIDR: exported at its ClusterIP";
  EXPECT_FALSE(control::exportAddress("shop/web", Ipv4Address::parse("242.0.0.5"),
                                      settings("east", "192.168.53.10"), {})
                   .ok());
}

control::EndpointSpec endpoint(const char* ip, bool ready = true, const char* hostname = "") {
  control::EndpointSpec e;
  e.ip = *Ipv4Address::parse(ip);
  e.ready = ready;
  e.hostname = hostname;
  return e;
}

TEST(ClusterLinksTest, ExportsAreTranslatedAtTheirClusterIpOrHeadlessAtTheirEndpoints) {
  control::ExportMap exports = {{"shop/web", *Ipv4Address::parse("242.0.0.9")},
                                {"shop/db", *Ipv4Address::parse("242.0.0.2")},
                                {"shop/gone", *Ipv4Address::parse("242.0.0.3")},
                                {"shop/alias", *Ipv4Address::parse("242.0.0.4")}};
  std::map<std::string, control::ServiceSpec> services;
  services["shop/web"].clusterIps = {*Ipv4Address::parse("10.96.0.20")};
  services["shop/db"].endpoints = {endpoint("10.244.1.5", true, "db-0"),
                                   endpoint("10.244.2.6", true, "db-1"),
                                   endpoint("10.244.2.7", false)};  // headless
  services["shop/alias"].externalName = "example.org";
  const NodeSettings plain = settings("east", "192.168.53.10");
  const NodeSettings global = globalSettings("east", "192.168.53.10", "242.0.0.0/24");
  // Without a global CIDR a headless export has nothing to translate (its pods' addresses are
  // announced as they are).
  auto list = control::resolveGlobalIngress(exports, services, plain);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].localIp.toString(), "10.96.0.20");
  EXPECT_EQ(control::exportState("shop/db", services, plain),
            "headless (its endpoints' addresses are announced)");
  EXPECT_EQ(control::exportState("shop/gone", services, plain), "no such service");
  EXPECT_EQ(control::exportState("shop/web", services, plain), "active");
  EXPECT_EQ(control::exportState("shop/alias", services, plain), "ExternalName (not exported)");
  // With one, each ready endpoint gets an address from the top of the global CIDR down.
  list = control::resolveGlobalIngress(exports, services, global);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1].globalIp.toString(), "242.0.0.254");
  EXPECT_EQ(list[1].localIp.toString(), "10.244.1.5");
  EXPECT_TRUE(list[1].endpoint);
  EXPECT_EQ(list[1].hostname, "db-0");
  EXPECT_EQ(list[2].globalIp.toString(), "242.0.0.253");
  EXPECT_EQ(control::exportState("shop/db", services, global),
            "headless (its endpoints get global addresses)");
  // An endpoint keeps its address while it stays; a gone one's is free again.
  services["shop/db"].endpoints.erase(services["shop/db"].endpoints.begin());
  services["shop/db"].endpoints.push_back(endpoint("10.244.1.9"));
  const auto again = control::resolveGlobalIngress(exports, services, global, list);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[1].localIp.toString(), "10.244.2.6");
  EXPECT_EQ(again[1].globalIp.toString(), "242.0.0.253") << "kept";
  EXPECT_EQ(again[2].localIp.toString(), "10.244.1.9");
  EXPECT_EQ(again[2].globalIp.toString(), "242.0.0.254") << "the highest free";
  // No export takes an endpoint's address.
  auto taken =
      control::exportAddress("shop/new", Ipv4Address::parse("242.0.0.253"), global, exports, again);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.error().message.find("an endpoint's"), std::string::npos);

  // The data plane's table: both ways, found by binary search (a pod's address as a ClusterIP).
  const NodeSettings& east = global;
  ClusterPeer west{globalPeer("west", "192.168.53.11", "242.1.0.0/24"), {}, ""};
  west.gateways = {control::GatewaySas{west.spec.gateways[0], nullptr, nullptr, nullptr, nullptr}};
  auto peers = std::make_shared<PeerMap>();
  (*peers)["west"] = west;
  dataplane::PortInfo uplink;
  FakeBackend backend;
  control::UnderlayResolver resolver(backend);
  control::GlobalIngressList many = again;
  many.push_back({*Ipv4Address::parse("242.0.0.4"), *Ipv4Address::parse("10.96.0.1"), "a/b"});
  many.push_back({*Ipv4Address::parse("242.0.0.200"), *Ipv4Address::parse("10.96.5.5"), "c/d"});
  auto table = control::buildClusterLinks(peers, east, uplink, resolver, many, 0);
  ASSERT_TRUE(table->globalnet());
  EXPECT_EQ(table->globalEgressIp, rte_cpu_to_be_32(0xf2000001u));
  EXPECT_TRUE(table->isGlobal(rte_cpu_to_be_32(0xf20000feu)));
  EXPECT_FALSE(table->isGlobal(rte_cpu_to_be_32(0xf2010001u)));
  for (const auto& g : many) {
    const auto* in = table->toCluster(rte_cpu_to_be_32(g.globalIp.value));
    ASSERT_NE(in, nullptr) << g.service;
    EXPECT_EQ(in->clusterIp, rte_cpu_to_be_32(g.localIp.value));
    const auto* out = table->toGlobal(rte_cpu_to_be_32(g.localIp.value));
    ASSERT_NE(out, nullptr) << g.service;
    EXPECT_EQ(out->globalIp, rte_cpu_to_be_32(g.globalIp.value));
  }
  EXPECT_EQ(table->toCluster(rte_cpu_to_be_32(0xf2000005u)), nullptr);
  EXPECT_EQ(table->toGlobal(rte_cpu_to_be_32(0x0a600002u)), nullptr);
}

TEST(ClusterLinksTest, VxlanPeersNeedAVniOfTheirOwnAndGetAFramedLinkWithoutSas) {
  const NodeSettings east = settings("east", "192.168.53.10");
  ClusterPeerSpec west = peer("west", "192.168.53.11", "10.245.0.0/16", "");
  west.tunnel = ClusterPeerSpec::Tunnel::kVxlan;
  EXPECT_NE(refusal(west, east).find("vni: a VXLAN tunnel needs a VNI"), std::string::npos);
  west.vni = east.vni;
  EXPECT_NE(refusal(west, east).find("overlay VNI"), std::string::npos);
  west.vni = 7001;
  EXPECT_EQ(refusal(west, east), "") << "no secret needed";
  PeerMap others;
  ClusterPeerSpec north = peer("north", "192.168.53.12", "10.246.0.0/16", "");
  north.tunnel = ClusterPeerSpec::Tunnel::kVxlan;
  north.vni = 7001;
  others["north"] = ClusterPeer{north, {}, ""};
  EXPECT_NE(refusal(west, east, others).find("is cluster peer 'north's"), std::string::npos);

  control::ClusterKeys keys(east, "");
  auto made = keys.peerFor(west, nullptr, nullptr, 2, 1'765'000'000);
  ASSERT_TRUE(made.ok()) << made.error().message;
  ClusterPeer p = *made;
  ASSERT_EQ(p.gateways.size(), 1u);
  EXPECT_TRUE(!p.gateways[0].outbound && !p.gateways[0].inbound) << "VXLAN: no SAs";
  auto peers = std::make_shared<PeerMap>();
  (*peers)["west"] = p;
  dataplane::PortInfo uplink;
  FakeBackend backend;
  control::UnderlayResolver resolver(backend);
  auto table = control::buildClusterLinks(peers, east, uplink, resolver, {}, 0);
  ASSERT_EQ(table->links.size(), 1u);
  const dataplane::ClusterLink& link = table->links[0];
  ASSERT_NE(link.vxlan, nullptr);
  EXPECT_EQ(link.innerMtu, 1500u - 50);
  EXPECT_EQ(table->vxlanLinkFrom(rte_cpu_to_be_32(0xc0a8350b)), 0);
  EXPECT_EQ(table->vxlanLinkFrom(rte_cpu_to_be_32(0xc0a8350c)), -1);
  EXPECT_TRUE(table->inbound.empty());
}

}  // namespace
}  // namespace nodeplane::testing
