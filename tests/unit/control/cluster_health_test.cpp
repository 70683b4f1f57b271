// Which gateways are in use: every watched gateway starts alive; one that is not heard for longer
// than the dead interval is passed over for the next of its list; heard again, it is preferred
// again; with none alive the first stays; this node is always alive to itself; what is no longer
// watched is forgotten; heartbeats are due once per interval.
#include "control/cluster_health.h"

#include <gtest/gtest.h>

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;
using control::ClusterHealth;
using control::ClusterPeer;
using control::PeerMap;

const Ipv4Address kW1{0xc0a8350b}, kW2{0xc0a8350c};

PeerMap westWithTwoGateways() {
  PeerMap peers;
  ClusterPeer west;
  west.spec.clusterId = "west";
  west.spec.gateways = {kW1, kW2};
  peers["west"] = west;
  return peers;
}

TEST(ClusterHealthTest, ASilentGatewayIsPassedOverAndPreferredAgainWhenHeard) {
  ClusterHealth health({100ms, 500ms});
  const auto t0 = ClusterHealth::Clock::now();
  const PeerMap peers = westWithTwoGateways();
  health.watch(peers, {}, t0);
  EXPECT_EQ(health.choose(peers, {}, "e1", t0).peers.at("west"), kW1);
  // w2 answers, w1 does not.
  for (auto t = t0; t < t0 + 800ms; t += 100ms) health.heardPeer("west", kW2, 1, t);
  EXPECT_EQ(health.choose(peers, {}, "e1", t0 + 400ms).peers.at("west"), kW1) << "still in grace";
  EXPECT_EQ(health.choose(peers, {}, "e1", t0 + 700ms).peers.at("west"), kW2);
  EXPECT_FALSE(health.peer("west", kW1, t0 + 700ms).alive);
  EXPECT_TRUE(health.peer("west", kW2, t0 + 700ms).alive);
  EXPECT_EQ(health.peer("west", kW2, t0 + 700ms).received, 8u);
  health.heardPeer("west", kW1, 9, t0 + 750ms);
  EXPECT_EQ(health.choose(peers, {}, "e1", t0 + 760ms).peers.at("west"), kW1);
  // Both silent: the first is used (a lone gateway never drops for want of an answer).
  EXPECT_EQ(health.choose(peers, {}, "e1", t0 + 5s).peers.at("west"), kW1);
  health.heardPeer("east", kW1, 1, t0);  // not watched: ignored
  EXPECT_EQ(health.peer("east", kW1, t0).received, 0u);
}

TEST(ClusterHealthTest, ThisClustersGatewayIsTheFirstAliveAndThisNodeIsAlwaysAlive) {
  ClusterHealth health({100ms, 500ms});
  const auto t0 = ClusterHealth::Clock::now();
  const std::vector<std::string> gateways = {"w1", "w2"};
  health.watch({}, gateways, t0);
  EXPECT_EQ(health.choose({}, gateways, "w3", t0).local, "w1");
  EXPECT_EQ(health.choose({}, gateways, "w3", t0 + 1s).local, "w1") << "none alive: the first";
  health.heardNode("w2", 1, t0 + 900ms);
  EXPECT_EQ(health.choose({}, gateways, "w3", t0 + 1s).local, "w2");
  EXPECT_EQ(health.choose({}, gateways, "w2", t0 + 2s).local, "w2") << "w2 to itself";
  EXPECT_EQ(health.choose({}, gateways, "w1", t0 + 2s).local, "w1");
  // A new list: w2 forgotten and watched anew.
  health.watch({}, {"w1"}, t0 + 2s);
  EXPECT_EQ(health.node("w2", t0 + 2s).received, 0u);
}

TEST(ClusterHealthTest, HeartbeatsAreDueOncePerInterval) {
  ClusterHealth health({100ms, 500ms});
  const auto t0 = ClusterHealth::Clock::now();
  EXPECT_TRUE(health.sendDue(t0));
  EXPECT_FALSE(health.sendDue(t0 + 50ms));
  EXPECT_TRUE(health.sendDue(t0 + 100ms));
  EXPECT_FALSE(health.sendDue(t0 + 150ms));
}

}  // namespace
}  // namespace nodeplane::testing
