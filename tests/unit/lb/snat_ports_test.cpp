// SNAT source ports: disjoint shares per worker, and an exhausted pool remembered so that a flood
// past it costs no probing.
#include "lb/snat_ports.h"

#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include <memory>
#include <set>

namespace nodeplane::lb {
namespace {

FlowKey replyTo(uint32_t snatIp) {
  FlowKey k;
  k.src = rte_cpu_to_be_32(0x0af40103);  // the far end: 10.244.1.3:8080/UDP
  k.sport = rte_cpu_to_be_16(8080);
  k.dst = rte_cpu_to_be_32(snatIp);
  k.proto = 17;
  return k;
}

// Takes `port` of the pool towards replyTo(snatIp) by tracking a flow whose reply uses it.
void take(ConnShard& shard, uint32_t snatIp, uint16_t port, uint32_t client) {
  ConnEntry e{};
  e.reply = replyTo(snatIp);
  e.reply.dport = rte_cpu_to_be_16(port);
  e.orig = e.reply.reversed();
  e.orig.src = rte_cpu_to_be_32(client);
  e.stateWord = static_cast<uint16_t>(ConnState::kUdpReplied);
  ASSERT_GE(shard.insert(e, 0), 0);
}

TEST(SnatPorts, WorkersPickFromDisjointShares) {
  auto s = ConnShard::create("snat_share", 1024, 0, 0, nullptr);
  ASSERT_TRUE(s.ok());
  std::set<uint16_t> seen[2];
  for (unsigned worker = 0; worker < 2; ++worker) {
    SnatPorts ports;
    for (uint32_t hash = 0; hash < 200; ++hash) {
      FlowKey reply = replyTo(0x0af40100);
      ASSERT_TRUE(ports.allocate(**s, &reply, hash * 7919u, worker, 2, 0));
      const uint16_t p = rte_be_to_cpu_16(reply.dport);
      EXPECT_GE(p, SnatPorts::kFirst);
      EXPECT_LE(p, SnatPorts::kLast);
      EXPECT_EQ(p % 2, worker) << "worker " << worker << " took another worker's port " << p;
      seen[worker].insert(p);
    }
  }
  EXPECT_GT(seen[0].size(), 100u);
}

TEST(SnatPorts, AGivenRangeIsKeptAndAnEmptyOneRefuses) {
  auto s = ConnShard::create("snat_range", 1024, 0, 0, nullptr);
  ASSERT_TRUE(s.ok());
  SnatPorts ports;
  for (uint32_t hash = 0; hash < 500; ++hash) {
    FlowKey reply = replyTo(0x0af40100);
    ASSERT_TRUE(ports.allocate(**s, &reply, hash * 7919u, 1, 2, 0, SnatPorts::kSharedFirst,
                               SnatPorts::kSharedLast));
    const uint16_t p = rte_be_to_cpu_16(reply.dport);
    EXPECT_GE(p, SnatPorts::kSharedFirst);
    EXPECT_LE(p, SnatPorts::kSharedLast);
    EXPECT_EQ((p - SnatPorts::kSharedFirst) % 2, 1u);
  }
  FlowKey reply = replyTo(0x0af40100);
  EXPECT_FALSE(ports.allocate(**s, &reply, 1, 0, 4, 0, 5000, 5002)) << "fewer ports than workers";
}

TEST(SnatPorts, AnExhaustedPoolIsRememberedThenProbedAgain) {
  auto s = ConnShard::create("snat_full", 32768, 0, 0, nullptr);
  ASSERT_TRUE(s.ok());
  ConnShard& shard = **s;
  uint32_t client = 0x0b000000;
  for (uint32_t p = SnatPorts::kFirst; p <= SnatPorts::kLast; ++p)
    take(shard, 0x0af40100, static_cast<uint16_t>(p), ++client);
  SnatPorts ports;
  FlowKey reply = replyTo(0x0af40100);
  EXPECT_FALSE(ports.allocate(shard, &reply, 1, 0, 1, 1000));
  // Another group (another SNAT address) is not affected.
  FlowKey other = replyTo(0x0af40200);
  EXPECT_TRUE(ports.allocate(shard, &other, 1, 0, 1, 1000));
  // Ports come back, but within kRetryMs the group is known to be exhausted: refused without
  // looking (this is what keeps a flood past exhaustion cheap) ...
  ConnRef r;
  FlowKey freed = replyTo(0x0af40100);
  freed.dport = rte_cpu_to_be_16(SnatPorts::kFirst + 5);
  ASSERT_TRUE(shard.lookup(freed, &r));
  shard.remove(r.index);
  EXPECT_FALSE(ports.allocate(shard, &reply, 1, 0, 1, 1000 + SnatPorts::kRetryMs - 1));
  // ... and after it, looked for again and found.
  bool found = false;
  for (uint32_t hash = 0; hash < 28232 && !found; ++hash)
    found = ports.allocate(shard, &reply, hash, 0, 1, 1000 + SnatPorts::kRetryMs * (hash + 1));
  EXPECT_TRUE(found);
  EXPECT_EQ(rte_be_to_cpu_16(reply.dport), SnatPorts::kFirst + 5);
}

}  // namespace
}  // namespace nodeplane::lb
