// The underlay neighbour state machine with an injected clock.
#include "overlay/neighbor_table.h"

#include <gtest/gtest.h>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::overlay {
namespace {

using namespace std::chrono_literals;
using testing::ip;
using testing::mac;

class NeighborTableTest : public ::testing::Test {
 protected:
  NeighborTable::TimePoint t0 = NeighborTable::Clock::now();
  NeighborTable table;
  bool changed = false;
  std::vector<rte_mbuf*> dropped;

  std::vector<NeighborTable::Probe> due(std::chrono::milliseconds at) {
    changed = false;
    return table.due(t0 + at, &changed, &dropped);
  }
  void TearDown() override {
    for (rte_mbuf* m : dropped) rte_pktmbuf_free(m);
  }
};

TEST_F(NeighborTableTest, ProbesNewAddressesAndLearnsOnlyWantedOnes) {
  table.setWanted({ip("192.168.50.11")}, t0);
  auto probes = due(0ms);
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_FALSE(probes[0].unicastTo);
  EXPECT_TRUE(due(500ms).empty()) << "retransmit waits a second";
  EXPECT_EQ(due(1000ms).size(), 1u);
  EXPECT_FALSE(table.learn(ip("192.168.50.99"), mac("52:54:00:00:00:99"), t0))
      << "an address nobody asked for is not learned (ARP floods cannot grow the table)";
  EXPECT_TRUE(table.learn(ip("192.168.50.11"), mac("52:54:00:00:00:0b"), t0 + 1100ms));
  EXPECT_EQ(table.mac(ip("192.168.50.11"))->toString(), "52:54:00:00:00:0b");
  EXPECT_FALSE(table.learn(ip("192.168.50.11"), mac("52:54:00:00:00:0b"), t0 + 1200ms))
      << "the same MAC again is no change";
}

TEST_F(NeighborTableTest, StaleEntriesAreRefreshedByUnicastAndWithdrawnWhenSilent) {
  table.setWanted({ip("192.168.50.11")}, t0);
  due(0ms);
  table.learn(ip("192.168.50.11"), mac("52:54:00:00:00:0b"), t0);
  EXPECT_TRUE(due(29s).empty());
  auto probes = due(30s);
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_TRUE(probes[0].unicastTo) << "a stale entry is probed where it was";
  EXPECT_TRUE(table.mac(ip("192.168.50.11"))) << "still usable while stale";
  due(31s);
  due(32s);
  EXPECT_FALSE(changed);
  probes = due(33s);
  EXPECT_TRUE(changed) << "no answer to three probes: the MAC is withdrawn";
  EXPECT_FALSE(table.mac(ip("192.168.50.11")));
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_FALSE(probes[0].unicastTo) << "back to broadcasting";
}

TEST_F(NeighborTableTest, HeldPacketsAreBoundedReleasedOrDropped) {
  table.setWanted({ip("192.168.50.11")}, t0);
  for (int i = 0; i < 16; ++i)
    EXPECT_TRUE(table.hold(ip("192.168.50.11"), testing::makeMbuf(testing::Bytes(60, 0))));
  rte_mbuf* extra = testing::makeMbuf(testing::Bytes(60, 0));
  EXPECT_FALSE(table.hold(ip("192.168.50.11"), extra)) << "16 per address at most";
  rte_pktmbuf_free(extra);
  rte_mbuf* stranger = testing::makeMbuf(testing::Bytes(60, 0));
  EXPECT_FALSE(table.hold(ip("10.0.0.1"), stranger));
  rte_pktmbuf_free(stranger);

  due(0ms), due(1s), due(2s);  // three broadcast probes, unanswered
  EXPECT_TRUE(dropped.empty());
  due(3s);
  EXPECT_EQ(dropped.size(), 16u) << "gave up: held packets are dropped";
  rte_mbuf* late = testing::makeMbuf(testing::Bytes(60, 0));
  EXPECT_FALSE(table.hold(ip("192.168.50.11"), late)) << "failed: new packets are not held";
  rte_pktmbuf_free(late);
  EXPECT_TRUE(due(4s).empty()) << "failed addresses are probed more slowly";
  EXPECT_EQ(due(8s).size(), 1u);

  table.learn(ip("192.168.50.11"), mac("52:54:00:00:00:0b"), t0 + 9s);  // it came back
  EXPECT_TRUE(table.release(ip("192.168.50.11")).empty());
}

TEST_F(NeighborTableTest, ForgetsAddressesNoLongerWanted) {
  table.setWanted({ip("192.168.50.11"), ip("192.168.50.12")}, t0);
  table.learn(ip("192.168.50.12"), mac("52:54:00:00:00:0c"), t0);
  EXPECT_TRUE(table.hold(ip("192.168.50.11"), testing::makeMbuf(testing::Bytes(60, 0))));
  EXPECT_TRUE(table.setWanted({ip("192.168.50.11")}, t0)) << "a resolved address went away";
  EXPECT_FALSE(table.mac(ip("192.168.50.12")));
  EXPECT_EQ(table.list(t0).size(), 1u);
  EXPECT_EQ(table.list(t0)[0].held, 1u);
}

}  // namespace
}  // namespace nodeplane::overlay
