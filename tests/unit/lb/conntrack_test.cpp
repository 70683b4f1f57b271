#include "lb/conntrack.h"

#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_tcp.h>

#include <set>

namespace nodeplane::lb {
namespace {

constexpr uint8_t F = RTE_TCP_FIN_FLAG, S = RTE_TCP_SYN_FLAG, R = RTE_TCP_RST_FLAG,
                  A = RTE_TCP_ACK_FLAG;

const ConnState kTcpStates[] = {ConnState::kTcpSynSent,     ConnState::kTcpSynRecv,
                                ConnState::kTcpEstablished, ConnState::kTcpFinWait,
                                ConnState::kTcpTimeWait,    ConnState::kTcpClose};

TEST(TcpStateMachine, EveryStateDirectionAndFlagCombination) {
  for (ConnState s : kTcpStates)
    for (bool fromOrig : {true, false})
      for (uint8_t combo = 0; combo < 16; ++combo) {
        const uint8_t f =
            (combo & 1 ? F : 0) | (combo & 2 ? S : 0) | (combo & 4 ? R : 0) | (combo & 8 ? A : 0);
        for (uint8_t finBits : {uint8_t{0}, kConnFinOrig, kConnFinReply}) {
          uint8_t flags = finBits;
          const ConnState next = nextTcpState(s, fromOrig, f, &flags);
          SCOPED_TRACE(std::string(connStateName(s)) + (fromOrig ? " orig " : " reply ") +
                       "flags " + std::to_string(f) + " fin " + std::to_string(finBits));
          if (((f & S) && (f & (F | R))) || f == 0) {
            EXPECT_EQ(next, s) << "nonsense segments change nothing";
          } else if (f & R) {
            EXPECT_EQ(next, ConnState::kTcpClose);
          } else if (f & F) {
            const uint8_t other = fromOrig ? kConnFinReply : kConnFinOrig;
            EXPECT_EQ(next, (finBits & other) ? ConnState::kTcpTimeWait : ConnState::kTcpFinWait);
            EXPECT_TRUE(flags & (fromOrig ? kConnFinOrig : kConnFinReply));
          } else if (s == ConnState::kTcpSynSent) {
            EXPECT_EQ(next, !fromOrig && (f & S) && (f & A) ? ConnState::kTcpSynRecv : s);
          } else if (s == ConnState::kTcpSynRecv) {
            EXPECT_EQ(next, fromOrig && (f & A) && !(f & S) ? ConnState::kTcpEstablished : s);
          } else if (s == ConnState::kTcpClose || s == ConnState::kTcpTimeWait) {
            EXPECT_EQ(next, fromOrig && (f & S) && !(f & A) ? ConnState::kTcpSynSent : s);
          } else {
            EXPECT_EQ(next, s);
          }
        }
      }
}

TEST(TcpStateMachine, HandshakeDataAndOrderlyClose) {
  uint8_t flags = 0;
  ConnState s = initialTcpState(S);
  ASSERT_EQ(s, ConnState::kTcpSynSent);
  s = nextTcpState(s, false, S | A, &flags);
  EXPECT_EQ(s, ConnState::kTcpSynRecv);
  s = nextTcpState(s, true, A, &flags);
  EXPECT_EQ(s, ConnState::kTcpEstablished);
  s = nextTcpState(s, false, A, &flags);
  EXPECT_EQ(s, ConnState::kTcpEstablished);
  s = nextTcpState(s, true, F | A, &flags);
  EXPECT_EQ(s, ConnState::kTcpFinWait);
  s = nextTcpState(s, false, F | A, &flags);
  EXPECT_EQ(s, ConnState::kTcpTimeWait);
  s = nextTcpState(s, true, S, &flags);
  EXPECT_EQ(s, ConnState::kTcpSynSent) << "a new connection on the same 5-tuple";
  EXPECT_EQ(flags & (kConnFinOrig | kConnFinReply), 0);
}

TEST(TcpStateMachine, WhatMayOpenAFlow) {
  EXPECT_EQ(initialTcpState(S), ConnState::kTcpSynSent);
  EXPECT_EQ(initialTcpState(A), ConnState::kTcpEstablished) << "loose pick-up after a restart";
  EXPECT_EQ(initialTcpState(A | 0x08), ConnState::kTcpEstablished);  // PSH|ACK
  for (uint8_t f :
       {uint8_t(0), uint8_t(S | A), uint8_t(R), uint8_t(R | A), uint8_t(F), uint8_t(S | F)})
    EXPECT_EQ(initialTcpState(f), ConnState::kFree) << int(f);
}

FlowKey key(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint8_t proto = 6) {
  FlowKey k;
  k.src = rte_cpu_to_be_32(src);
  k.dst = rte_cpu_to_be_32(dst);
  k.sport = rte_cpu_to_be_16(sport);
  k.dport = rte_cpu_to_be_16(dport);
  k.proto = proto;
  return k;
}

ConnEntry flow(uint32_t client, uint16_t port, ConnState state = ConnState::kTcpEstablished) {
  ConnEntry e{};
  e.orig = key(client, 0x0a600001, port, 80);     // client -> VIP 10.96.0.1:80
  e.reply = key(0x0af40105, client, 8080, port);  // backend -> client
  e.stateWord = static_cast<uint16_t>(state) | kConnDnat << 8;
  return e;
}

class ConnShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = ConnShard::create("ct_test" + std::to_string(counter++), 64, 0, 0, nullptr);
    ASSERT_TRUE(s.ok()) << s.error().message;
    shard = std::move(*s);
  }
  static inline int counter = 0;
  std::unique_ptr<ConnShard> shard;
};

TEST_F(ConnShardTest, FindsTheEntryFromBothDirections) {
  const ConnEntry e = flow(0x0af40102, 40000);
  const int64_t index = shard->insert(e, 1000);
  ASSERT_GE(index, 0);
  ConnRef r;
  ASSERT_TRUE(shard->lookup(e.orig, &r));
  EXPECT_EQ(r.index, index);
  EXPECT_FALSE(r.reply);
  ASSERT_TRUE(shard->lookup(e.reply, &r));
  EXPECT_EQ(r.index, index);
  EXPECT_TRUE(r.reply);
  EXPECT_FALSE(shard->lookup(e.orig.reversed(), &r)) << "the VIP never sends";
  EXPECT_EQ(shard->live(), 1u);
  shard->remove(static_cast<uint32_t>(index));
  EXPECT_FALSE(shard->lookup(e.orig, &r));
  EXPECT_FALSE(shard->lookup(e.reply, &r));
  EXPECT_EQ(shard->live(), 0u);
}

TEST_F(ConnShardTest, BulkLookupReportsHitsByPosition) {
  std::vector<ConnEntry> flows;
  for (uint16_t p = 0; p < 10; ++p) {
    flows.push_back(flow(0x0af40102, 40000 + p));
    ASSERT_GE(shard->insert(flows.back(), 0), 0);
  }
  const FlowKey miss = key(1, 2, 3, 4);
  const FlowKey* keys[] = {&flows[3].orig, &miss, &flows[7].reply, &flows[0].orig};
  ConnRef hits[4];
  const uint64_t mask = shard->lookupBulk(keys, 4, hits);
  EXPECT_EQ(mask, 0b1101u);
  EXPECT_TRUE(hits[2].reply);
  EXPECT_EQ(shard->entry(hits[0].index).orig, flows[3].orig);
}

TEST_F(ConnShardTest, AgesEachStateByItsTimeout) {
  ConnTimeouts t;
  t.tcpSyn = 1000, t.tcpEstablished = 5000, t.udp = 2000, t.udpReplied = 3000;
  const uint32_t t0 = 100;
  shard->insert(flow(1, 1, ConnState::kTcpSynSent), t0);
  shard->insert(flow(1, 2, ConnState::kTcpEstablished), t0);
  ConnEntry udp = flow(1, 3, ConnState::kUdpUnreplied);
  udp.orig.proto = udp.reply.proto = 17;
  shard->insert(udp, t0);
  auto never = [](const ConnEntry&) { return false; };
  EXPECT_EQ(shard->age(t0 + 999, shard->slots(), t, never), 0u);
  EXPECT_EQ(shard->age(t0 + 1001, shard->slots(), t, never), 1u) << "the SYN";
  EXPECT_EQ(shard->age(t0 + 2001, shard->slots(), t, never), 1u) << "the unreplied UDP";
  EXPECT_EQ(shard->age(t0 + 4999, shard->slots(), t, never), 0u);
  EXPECT_EQ(shard->age(t0 + 5001, shard->slots(), t, never), 1u) << "established";
  EXPECT_EQ(shard->live(), 0u);
  EXPECT_EQ(shard->stats().expired.read(), 3u);
}

TEST_F(ConnShardTest, TimeWrapsWithoutExpiringEverything) {
  ConnTimeouts t;
  const uint32_t nearWrap = UINT32_MAX - 500;
  shard->insert(flow(1, 1), nearWrap);
  EXPECT_EQ(shard->age(nearWrap + 1000, shard->slots(), t, [](const ConnEntry&) { return false; }),
            0u);
}

TEST_F(ConnShardTest, DeadBackendsAreSweptWhateverTheirAge) {
  ConnEntry e = flow(1, 1);
  e.backendSlot = 7;
  shard->insert(e, 0);
  shard->insert(flow(1, 2), 0);
  EXPECT_EQ(shard->age(1, shard->slots(), ConnTimeouts{},
                       [](const ConnEntry& x) { return x.backendSlot == 7; }),
            1u);
  EXPECT_EQ(shard->live(), 1u);
}

TEST_F(ConnShardTest, WhenFullEvictsNonEstablishedNearbyNeverEstablished) {
  // Capacity 64: fill with established flows, then a new flow has nothing to evict.
  for (uint16_t p = 0; p < 64; ++p) ASSERT_GE(shard->insert(flow(1, p), 0), 0);
  EXPECT_EQ(shard->insert(flow(2, 1), 0), -ENOSPC);
  EXPECT_EQ(shard->stats().fullDrops.read(), 1u);
  EXPECT_EQ(shard->live(), 64u);

  // Half-open flows everywhere: a new one evicts one of them.
  auto s2 = ConnShard::create("ct_test_evict", 64, 0, 0, nullptr);
  ASSERT_TRUE(s2.ok());
  auto& small = **s2;
  for (uint16_t p = 0; p < 64; ++p)
    ASSERT_GE(small.insert(flow(1, p, ConnState::kTcpSynSent), 0), 0);
  EXPECT_GE(small.insert(flow(2, 1), 0), 0);
  EXPECT_EQ(small.stats().evictions.read(), 1u);
  EXPECT_EQ(small.live(), 64u);
}

TEST_F(ConnShardTest, RemovingAnEntryLeavesTheKeysANewerEntryTookOver) {
  // Two entries with one original tuple (the second replaced the key's data): removing the first
  // must not take the key away from the second, which is the live flow.
  const ConnEntry first = flow(1, 7, ConnState::kUdpUnreplied);
  ConnEntry second = first;
  second.reply = key(0x0af40106, 1, 8080, 7);  // another backend
  const int64_t a = shard->insert(first, 0);
  const int64_t b = shard->insert(second, 0);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  shard->remove(static_cast<uint32_t>(a));
  ConnRef r;
  ASSERT_TRUE(shard->lookup(first.orig, &r)) << "the live flow lost its key";
  EXPECT_EQ(r.index, static_cast<uint32_t>(b));
  ASSERT_TRUE(shard->lookup(second.reply, &r));
  EXPECT_EQ(r.index, static_cast<uint32_t>(b));
  EXPECT_FALSE(shard->lookup(first.reply, &r)) << "the removed entry's own key is gone";
}

TEST(ConnTracker, FindsFlowsInOtherWorkersShards) {
  auto t = ConnTracker::create(256, 3, 0, nullptr);
  ASSERT_TRUE(t.ok());
  ConnTracker& ct = **t;
  const ConnEntry a = flow(1, 1), b = flow(2, 2), c = flow(3, 3);
  ASSERT_GE(ct.shard(0).insert(a, 0), 0);
  ASSERT_GE(ct.shard(1).insert(b, 0), 0);
  ASSERT_GE(ct.shard(2).insert(c, 0), 0);
  const FlowKey miss = key(9, 9, 9, 9);
  const FlowKey* keys[] = {&c.reply, &a.orig, &miss, &b.reply};
  ConnRef hits[4];
  // Worker 1 looks first in its own shard, then in the others.
  const uint64_t mask = ct.lookupBulk(1, keys, 4, hits);
  EXPECT_EQ(mask, 0b1011u);
  EXPECT_EQ(hits[0].shard, 2);
  EXPECT_TRUE(hits[0].reply);
  EXPECT_EQ(hits[1].shard, 0);
  EXPECT_EQ(hits[3].shard, 1);
  EXPECT_EQ(ct.live(), 3u);
  EXPECT_EQ(ct.capacity(), 3u * 86);  // 256 over 3 shards, rounded up
}

TEST(ConnShardQsbr, IndicesComeBackOnlyAfterReadersAreQuiescent) {
  const size_t size = rte_rcu_qsbr_get_memsize(1);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("ct_qsbr", size, 64));
  ASSERT_EQ(rte_rcu_qsbr_init(qsbr, 1), 0);
  {
    auto s = ConnShard::create("ct_qsbr_shard", 64, 0, 0, qsbr);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ConnShard& shard = **s;
    rte_rcu_qsbr_thread_register(qsbr, 0);
    rte_rcu_qsbr_thread_online(qsbr, 0);  // a worker in the middle of a burst
    std::set<int64_t> used;
    for (uint16_t p = 0; p < 64; ++p) used.insert(shard.insert(flow(1, p), 0));
    for (int64_t i : used) shard.remove(static_cast<uint32_t>(i));
    // New flows must not land on indices a reader might still hold.
    for (uint16_t p = 0; p < 32; ++p) {
      const int64_t i = shard.insert(flow(2, p), 0);
      ASSERT_GE(i, 0);
      EXPECT_EQ(used.count(i), 0u) << "index " << i << " reused inside its grace period";
    }
    rte_rcu_qsbr_quiescent(qsbr, 0);
    rte_rcu_qsbr_thread_offline(qsbr, 0);
    rte_rcu_qsbr_thread_unregister(qsbr, 0);
  }
  rte_free(qsbr);
}

// A flood of unanswered UDP fills the table; every new flow must still find a slot by evicting
// one of them, however the grace periods of the evicted ones overlap.
TEST(ConnShardQsbr, AFloodOfUnansweredFlowsNeverLeavesANewFlowWithoutASlot) {
  const size_t size = rte_rcu_qsbr_get_memsize(1);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("ct_qsbr_flood", size, 64));
  ASSERT_EQ(rte_rcu_qsbr_init(qsbr, 1), 0);
  {
    auto s = ConnShard::create("ct_flood_shard", 1024, 0, 0, qsbr);
    ASSERT_TRUE(s.ok()) << s.error().message;
    ConnShard& shard = **s;
    rte_rcu_qsbr_thread_register(qsbr, 0);
    rte_rcu_qsbr_thread_online(qsbr, 0);
    // Bursts of 64 new flows, the worker quiescent between bursts (as the worker loop is).
    uint32_t client = 0x0b000000;
    for (int burst = 0; burst < 200; ++burst) {
      for (int i = 0; i < 64; ++i) {
        const int64_t index =
            shard.insert(flow(++client, static_cast<uint16_t>(i), ConnState::kUdpUnreplied), 0);
        ASSERT_GE(index, 0) << "burst " << burst << " flow " << i << ": no slot although "
                            << shard.live() << " unanswered flows were evictable";
      }
      rte_rcu_qsbr_quiescent(qsbr, 0);
    }
    EXPECT_EQ(shard.stats().fullDrops.read(), 0u);
    EXPECT_GT(shard.stats().evictions.read(), 0u);
    // The flood is over; the first new flow after it gets a slot too.
    EXPECT_GE(shard.insert(flow(++client, 1, ConnState::kTcpSynSent), 0), 0);
    rte_rcu_qsbr_thread_offline(qsbr, 0);
    rte_rcu_qsbr_thread_unregister(qsbr, 0);
  }
  rte_free(qsbr);
}

}  // namespace
}  // namespace nodeplane::lb
