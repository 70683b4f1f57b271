// Peer clusters on the control side: what is refused (by field), that both gateways derive the
// same SPIs and keys (what one seals the other opens), that a new secret means new SPIs, and the
// link table the snapshot gets (inbound SPIs sorted, a retired secret's SAs still opening).
#include "control/cluster_links.h"

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
  p.gatewayIp = *Ipv4Address::parse(gateway);
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
  EXPECT_NE(refusal(peer("west", "192.168.53.10", "10.245.0.0/16"), east).find("gatewayIp"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.245.0.0/16", "short"), east).find("secret"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.244.7.0/24"), east).find("cluster's CIDR"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.96.0.0/12"), east).find("service CIDR"),
            std::string::npos);
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "0.0.0.0/0"), east).find("everything"),
            std::string::npos);
  PeerMap others;
  others["north"] =
      ClusterPeer{peer("north", "192.168.53.12", "10.246.0.0/16"), nullptr, nullptr, ""};
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.246.1.0/24"), east, others)
                .find("cluster peer 'north'"),
            std::string::npos);
  NodeSettings anonymous = east;
  anonymous.clusterId.clear();
  EXPECT_NE(refusal(peer("west", "192.168.53.11", "10.245.0.0/16"), anonymous).find("--cluster-id"),
            std::string::npos);
}

TEST(ClusterLinksTest, BothGatewaysDeriveTheSameSasAndANewSecretNewSpis) {
  const std::string secret = "a secret of sixteen bytes or more";
  EXPECT_EQ(control::clusterSpi(secret, "east", "west", 3),
            control::clusterSpi(secret, "east", "west", 3));
  EXPECT_NE(control::clusterSpi(secret, "east", "west", 0),
            control::clusterSpi(secret, "west", "east", 0));
  EXPECT_NE(control::clusterSpi(secret, "east", "west", 0),
            control::clusterSpi("another secret, as long", "east", "west", 0));
  EXPECT_GT(control::clusterSpi(secret, "east", "west", 0), 255u);

  auto device = overlay::EspDevice::open(0);
  ASSERT_TRUE(device.ok()) << device.error().message;
  std::shared_ptr<overlay::EspDevice> shared = std::move(*device);
  auto eastSas = control::makePeerSas(shared, settings("east", "192.168.53.10"),
                                      peer("west", "192.168.53.11", "10.245.0.0/16"), 2);
  auto westSas = control::makePeerSas(shared, settings("west", "192.168.53.11"),
                                      peer("east", "192.168.53.10", "10.244.0.0/16"), 1);
  ASSERT_TRUE(eastSas.ok() && westSas.ok());
  ASSERT_EQ((*eastSas)->outbound.size(), 2u);
  ASSERT_EQ((*westSas)->inbound.size(), control::kSasPerPeer);
  // East's worker 1 seals; west opens with the SA of the same SPI.
  overlay::EspSa& out = *(*eastSas)->outbound[1];
  const auto& in = (*westSas)->inbound[1];
  EXPECT_EQ(in.spi, out.spi());
  Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
  const Bytes inner =
      PacketBuilder().ipv4("10.244.1.2", "10.245.1.2").udp(1, 2).payload(100).build();
  frame.insert(frame.end(), inner.begin(), inner.end());
  rte_mbuf* m = makeMbuf(frame);
  ASSERT_EQ(out.process(&m, 1), 1);
  ASSERT_EQ(in.byWorker[0]->process(&m, 1), 1);
  const Bytes opened = mbufBytes(m);
  rte_pktmbuf_free(m);
  EXPECT_EQ(Bytes(opened.begin() + 14, opened.end()), inner);
}

TEST(ClusterLinksTest, TheLinkTableSortsInboundSpisAndKeepsARetiredSecretOpening) {
  auto device = overlay::EspDevice::open(0);
  ASSERT_TRUE(device.ok());
  std::shared_ptr<overlay::EspDevice> shared = std::move(*device);
  const NodeSettings east = settings("east", "192.168.53.10");
  ClusterPeer west{peer("west", "192.168.53.11", "10.245.0.0/16"), nullptr, nullptr, ""};
  west.sas = *control::makePeerSas(shared, east, west.spec, 1);
  west.retired = *control::makePeerSas(
      shared, east, peer("west", "192.168.53.11", "10.245.0.0/16", "the secret before this one"),
      1);
  auto peers = std::make_shared<PeerMap>();
  (*peers)["west"] = west;
  dataplane::PortInfo uplink;
  uplink.id = 3;
  FakeBackend backend;
  control::UnderlayResolver resolver(backend);  // nothing resolved yet
  auto table = control::buildClusterLinks(peers, east, uplink, resolver);
  ASSERT_EQ(table->links.size(), 1u);
  EXPECT_FALSE(table->links[0].resolved) << "until ARP answers, the link sends nothing";
  EXPECT_EQ(table->links[0].uplinkPort, 3);
  EXPECT_EQ(table->links[0].innerMtu, 1500u - overlay::EspSa::kOverhead);
  ASSERT_EQ(table->inbound.size(), 2 * control::kSasPerPeer) << "the current and the retired";
  for (size_t i = 1; i < table->inbound.size(); ++i)
    EXPECT_LT(table->inbound[i - 1].spi, table->inbound[i].spi);
  const uint32_t old = control::clusterSpi("the secret before this one", "west", "east", 0);
  ASSERT_NE(table->findSpi(old), nullptr);
  EXPECT_EQ(table->findSpi(old)->byWorker[0], west.retired->inbound[0].byWorker[0].get());
  EXPECT_EQ(table->findSpi(12345), nullptr);
}

}  // namespace
}  // namespace nodeplane::testing
