// ESP SA generations between two gateways, east and west, on the control side: generations only
// grow (also across a restart that reads the kept one), a peer set again keeps what it may keep,
// rekeys are scheduled, worn or promoted after the overlap, and a gateway learns the other's
// generation from its first packet, refusing what is stale, too new or sealed with another key.
#include "control/cluster_keys.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {
namespace {

using control::ClusterKeys;
using control::ClusterPeer;
using control::ClusterPeerSpec;
using control::NodeSettings;
using control::PeerMap;

constexpr uint64_t kNow = 1'765'000'000;

NodeSettings settings(const char* id, const char* ip) {
  NodeSettings s;
  s.nodeName = id;
  s.clusterId = id;
  s.nodeIp = *Ipv4Address::parse(ip);
  s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
  s.clusterRekeySeconds = 60;
  return s;
}

ClusterPeerSpec peer(const char* id, const char* gateway,
                     const char* secret = "a secret of sixteen bytes or more") {
  ClusterPeerSpec p;
  p.clusterId = id;
  p.gateways = {*Ipv4Address::parse(gateway)};
  p.cidrs = {*Ipv4Prefix::parse("10.245.0.0/16")};
  p.secret = secret;
  return p;
}

// A generation file of the test's own (none yet: generations start at the clock the test gives).
std::string freshFile(const char* name) {
  const auto f = std::filesystem::temp_directory_path() /
                 ("np-keys-" + std::string(name) + "-" + std::to_string(::getpid()));
  std::filesystem::remove(f);
  return f.string();
}

class ClusterKeysTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* name : {"east", "west"}) std::filesystem::remove(freshFile(name));
  }
  void SetUp() override {
    auto d = overlay::EspDevice::open(0);
    ASSERT_TRUE(d.ok()) << d.error().message;
    device = std::move(*d);
  }

  // East's SAs towards west (as east's control thread makes them), and west's view of east.
  ClusterPeer eastsViewOfWest(ClusterKeys& keys, const char* secret = nullptr) {
    auto p =
        keys.peerFor(secret ? peer("west", "192.168.53.11", secret) : peer("west", "192.168.53.11"),
                     nullptr, device, 1, kNow);
    EXPECT_TRUE(p.ok());
    return *p;
  }
  PeerMap westsPeers(const char* secret = "a secret of sixteen bytes or more") {
    PeerMap peers;
    auto p = westKeys.peerFor(peer("east", "192.168.53.10", secret), nullptr, device, 1, kNow);
    EXPECT_TRUE(p.ok());
    peers["east"] = *p;
    return peers;
  }
  // A frame sealed by `sa` (the outer Ethernet, IPv4 and ESP headers, as the uplink receives it).
  rte_mbuf* sealed(overlay::EspSa& sa) {
    Bytes frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00};
    const Bytes inner = PacketBuilder().ipv4("10.244.1.2", "10.245.1.2").udp(1, 2).build();
    frame.insert(frame.end(), inner.begin(), inner.end());
    rte_mbuf* m = makeMbuf(frame);
    EXPECT_EQ(sa.process(&m, 1), 1);
    return m;
  }
  bool learn(PeerMap& peers, rte_mbuf* m, uint64_t now, DropReason* why) {
    const bool ok = westKeys.learn(peers, 0, m, testPool(), device, 1, now, why);
    rte_pktmbuf_free(m);
    return ok;
  }

  std::shared_ptr<overlay::EspDevice> device;
  NodeSettings east = settings("east", "192.168.53.10");
  NodeSettings west = settings("west", "192.168.53.11");
  ClusterKeys westKeys{west, freshFile("west")};
};

TEST_F(ClusterKeysTest, GenerationsOnlyGrowAndAreKeptAcrossARestart) {
  const auto file =
      std::filesystem::temp_directory_path() / ("np-esp-generation-" + std::to_string(::getpid()));
  std::filesystem::remove(file);
  {
    ClusterKeys keys(east, file.string());
    EXPECT_EQ(keys.nextGeneration(kNow), kNow);
    EXPECT_EQ(keys.nextGeneration(kNow), kNow + 1) << "twice in one second";
    EXPECT_EQ(keys.nextGeneration(kNow - 100), kNow + 2) << "a clock set back";
    EXPECT_EQ(keys.started(), 3u);
  }
  ClusterKeys restarted(east, file.string());
  EXPECT_EQ(restarted.nextGeneration(kNow), kNow + 3) << "never one begun before the restart";
  std::filesystem::remove(file);
  // Not kept: after the second this one started in.
  ClusterKeys unkept(east, "");
  const uint64_t now = control::unixSeconds();
  EXPECT_GT(unkept.nextGeneration(now), now);
}

TEST_F(ClusterKeysTest, APeerSetAgainKeepsItsSasUnlessTheSecretChanged) {
  ClusterKeys keys(east, freshFile("east"));
  ClusterPeer first = eastsViewOfWest(keys);
  ASSERT_EQ(first.gateways.size(), 1u);
  ASSERT_TRUE(first.gateways[0].outbound);
  first.gateways[0].inbound = *control::makeInboundSas(
      device, east, "west", first.gateways[0].gateway, kNow, first.spec.secret, 1);
  auto same = keys.peerFor(first.spec, &first, device, 1, kNow + 5);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->gateways[0].outbound, first.gateways[0].outbound) << "sequence numbers go on";
  EXPECT_EQ(same->gateways[0].inbound, first.gateways[0].inbound);
  EXPECT_EQ(same->retiredSecret, "");
  ClusterPeerSpec changed = first.spec;
  changed.secret = "a new secret, sixteen bytes long";
  auto rekeyed = keys.peerFor(changed, &first, device, 1, kNow + 5);
  ASSERT_TRUE(rekeyed.ok());
  EXPECT_GT(rekeyed->gateways[0].outbound->generation, first.gateways[0].outbound->generation);
  EXPECT_EQ(rekeyed->gateways[0].outbound->secret, changed.secret);
  EXPECT_EQ(rekeyed->gateways[0].inbound, first.gateways[0].inbound)
      << "what west seals with is west's: still opened";
  EXPECT_EQ(rekeyed->retiredSecret, first.spec.secret);
}

TEST_F(ClusterKeysTest, RekeysAreScheduledOrWornAndPromotedAfterTheOverlap) {
  ClusterKeys keys(east, freshFile("east"));
  PeerMap peers;
  peers["west"] = eastsViewOfWest(keys);
  control::GatewaySas& g = peers["west"].gateways[0];
  const auto start = g.outbound->started;
  const uint64_t first = g.outbound->generation;
  EXPECT_FALSE(keys.due(peers, start + std::chrono::seconds(59)));
  EXPECT_TRUE(keys.due(peers, start + std::chrono::seconds(60)));
  ASSERT_TRUE(keys.rekey(peers, device, 1, start + std::chrono::seconds(60), kNow + 60));
  ASSERT_TRUE(g.pending);
  EXPECT_GT(g.pending->generation, first);
  EXPECT_EQ(g.outbound->generation, first) << "data stays on the old one during the overlap";
  EXPECT_FALSE(keys.due(peers, start + std::chrono::milliseconds(60'500)));
  ASSERT_TRUE(keys.rekey(peers, device, 1, start + std::chrono::seconds(61), kNow + 61));
  EXPECT_FALSE(g.pending);
  EXPECT_GT(g.outbound->generation, first);
  EXPECT_FALSE(keys.due(peers, start + std::chrono::seconds(62)));
}

TEST_F(ClusterKeysTest, AGatewayLearnsTheOthersGenerationFromItsFirstPacket) {
  ClusterKeys eastKeys(east, freshFile("east"));
  ClusterPeer westPeer = eastsViewOfWest(eastKeys);
  PeerMap peers = westsPeers();
  DropReason why = DropReason::kNone;
  // East's first packet: west learns that generation (the packet itself is not delivered).
  ASSERT_TRUE(learn(peers, sealed(*westPeer.gateways[0].outbound->byWorker[0]), kNow, &why));
  const control::GatewaySas& g = peers["east"].gateways[0];
  ASSERT_TRUE(g.inbound);
  EXPECT_EQ(g.inbound->generation, westPeer.gateways[0].outbound->generation);
  EXPECT_EQ(g.inbound->byIndex.size(), control::kSasPerPeer);
  EXPECT_EQ(westKeys.learned(), 1u);
  // East's next generation (a heartbeat sealed by its control thread), then the old one again.
  PeerMap eastPeers{{"west", westPeer}};
  ASSERT_TRUE(eastKeys.rekey(eastPeers, device, 1,
                             westPeer.gateways[0].outbound->started + std::chrono::hours(1),
                             kNow + 3600));
  const auto& pending = eastPeers["west"].gateways[0].pending;
  ASSERT_TRUE(pending);
  ASSERT_TRUE(learn(peers, sealed(*pending->control), kNow + 3600, &why));
  EXPECT_EQ(peers["east"].gateways[0].inbound->generation, pending->generation);
  EXPECT_EQ(peers["east"].gateways[0].previous->generation,
            westPeer.gateways[0].outbound->generation)
      << "the one before stays, for packets on their way";
  EXPECT_FALSE(
      learn(peers, sealed(*westPeer.gateways[0].outbound->byWorker[0]), kNow + 3600, &why));
  EXPECT_EQ(why, DropReason::kEspGenerationStale) << "not newer than the one learned";
}

TEST_F(ClusterKeysTest, WhatIsNotTheOthersNextGenerationIsRefused) {
  ClusterKeys eastKeys(east, freshFile("east"));
  DropReason why = DropReason::kNone;
  {  // another secret: does not open
    ClusterPeer other = eastsViewOfWest(eastKeys, "a secret west does not have!!");
    PeerMap peers = westsPeers();
    EXPECT_FALSE(learn(peers, sealed(*other.gateways[0].outbound->byWorker[0]), kNow, &why));
    EXPECT_EQ(why, DropReason::kEspGenerationRefused);
    EXPECT_FALSE(peers["east"].gateways[0].inbound);
  }
  {  // sealed with the secret west had before: learned (the clusters change one after the other)
    ClusterPeer old = eastsViewOfWest(eastKeys, "the secret of last month, long");
    PeerMap peers = westsPeers("the secret of last month, long");
    auto changed = westKeys.peerFor(peer("east", "192.168.53.10", "this month's secret, long!"),
                                    &peers["east"], device, 1, kNow);
    ASSERT_TRUE(changed.ok());
    peers["east"] = *changed;
    EXPECT_TRUE(learn(peers, sealed(*old.gateways[0].outbound->byWorker[0]), kNow, &why));
  }
  ClusterPeer westPeer = eastsViewOfWest(eastKeys);
  const uint64_t g = westPeer.gateways[0].outbound->generation;
  for (uint64_t now : {g - control::kGenerationSkewSeconds - 5,  // begun too far ahead of us
                       g + 2 * 60 + control::kGenerationSkewSeconds + 5}) {  // or too long ago
    PeerMap peers = westsPeers();
    EXPECT_FALSE(learn(peers, sealed(*westPeer.gateways[0].outbound->byWorker[0]), now, &why));
    EXPECT_EQ(why, DropReason::kEspGenerationStale) << now;
  }
  // Not ESP of a peer gateway's link, or cut short: refused, never read past the packet.
  PeerMap peers = westsPeers();
  rte_mbuf* shortFrame = makeMbuf(Bytes(20, 0));
  EXPECT_FALSE(westKeys.learn(peers, 0, shortFrame, testPool(), device, 1, kNow, &why));
  EXPECT_FALSE(westKeys.learn(peers, 7, shortFrame, testPool(), device, 1, kNow, &why));
  rte_pktmbuf_free(shortFrame);
}

}  // namespace
}  // namespace nodeplane::testing
