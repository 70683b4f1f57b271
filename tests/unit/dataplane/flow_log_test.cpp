// The flow log's per-worker rings: bounded (a full ring keeps what it has and counts what it
// could not take), drained in order per worker, usable again once drained.
#include "dataplane/flow_log.h"

#include <gtest/gtest.h>

#include <vector>

namespace nodeplane::testing {
namespace {

using dataplane::FlowEvent;
using dataplane::FlowLog;
using dataplane::FlowRecord;

FlowRecord numbered(uint32_t n, uint16_t worker) {
  FlowRecord r{};
  r.src = n;
  r.worker = worker;
  r.event = FlowEvent::kForwarded;
  return r;
}

TEST(FlowLogTest, AFullRingIsBoundedAndCountsWhatItLost) {
  auto log = FlowLog::create(2, 64, 0);
  ASSERT_TRUE(log.ok()) << log.error().message;
  FlowLog& l = **log;
  for (uint32_t i = 0; i < 100; ++i) l.record(0, numbered(i, 0));
  for (uint32_t i = 0; i < 10; ++i) l.record(1, numbered(1000 + i, 1));
  EXPECT_EQ(l.overflow(), 36u) << "the ring holds 64; the rest is counted, not queued";

  std::vector<FlowRecord> out;
  EXPECT_EQ(l.drain(out, 1000), 74u);
  ASSERT_EQ(out.size(), 74u);
  for (uint32_t i = 0; i < 64; ++i) EXPECT_EQ(out[i].src, i) << "the first 64, in order";
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(out[64 + i].src, 1000 + i);

  // Drained: room again, and the loss count stays what it was.
  for (uint32_t i = 0; i < 64; ++i) l.record(0, numbered(i, 0));
  EXPECT_EQ(l.overflow(), 36u);
  out.clear();
  EXPECT_EQ(l.drain(out, 10), 10u) << "at most what was asked for";
  EXPECT_EQ(l.drain(out, 1000), 54u);
}

TEST(FlowLogTest, RingSizeMustBeAPowerOfTwo) {
  EXPECT_FALSE(FlowLog::create(1, 100, 0).ok());
  EXPECT_FALSE(FlowLog::create(1, 0, 0).ok());
}

TEST(FlowLogTest, ARecordOfAPacketCarriesItsTupleOnlyWhenItIsIpv4) {
  PacketMeta meta{};
  meta.l3 = L3Kind::kArp;
  meta.srcIp = 1;
  FlowRecord arp = dataplane::flowRecordOf(meta, 3, 1, FlowEvent::kDropped);
  EXPECT_EQ(arp.src, 0u);
  EXPECT_EQ(arp.inPort, 3);
  meta.l3 = L3Kind::kIpv4;
  meta.srcPort = 7;
  meta.flags = kFlagLaterFragment;
  FlowRecord fragment = dataplane::flowRecordOf(meta, 3, 1, FlowEvent::kDropped);
  EXPECT_EQ(fragment.src, 1u);
  EXPECT_EQ(fragment.sport, 0) << "a later fragment has no ports";
}

}  // namespace
}  // namespace nodeplane::testing
