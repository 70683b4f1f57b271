// The publisher's reclamation contract: a snapshot is never freed while a reader that loaded it
// has not yet reported a quiescent state, and is freed after every reader has.
#include "dataplane/snapshot.h"

#include <gtest/gtest.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <thread>

namespace nodeplane::dataplane {
namespace {

std::atomic<int> liveSnapshots{0};
constexpr size_t kWorkers = 3;

// A snapshot whose shared sub-table counts itself: it is released exactly when the snapshot is
// freed (the same shared-ownership path the real route table takes).
std::unique_ptr<Snapshot> countedSnapshot(uint64_t generation) {
  auto s = std::make_unique<Snapshot>();
  s->generation = generation;
  s->workers.resize(kWorkers);
  s->routes =
      std::shared_ptr<const RouteTable>(nullptr, [](const RouteTable*) { --liveSnapshots; });
  ++liveSnapshots;
  return s;
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const size_t size = rte_rcu_qsbr_get_memsize(1);
    qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("qsbr_test", size, RTE_CACHE_LINE_SIZE));
    ASSERT_NE(qsbr_, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(qsbr_, 1), 0);
  }
  void TearDown() override { rte_free(qsbr_); }
  rte_rcu_qsbr* qsbr_ = nullptr;
};

TEST_F(SnapshotTest, OldSnapshotOutlivesAReaderInsideItsCriticalSection) {
  SnapshotPublisher publisher(qsbr_);
  publisher.publish(countedSnapshot(1));
  rte_rcu_qsbr_thread_register(qsbr_, 0);
  rte_rcu_qsbr_thread_online(qsbr_, 0);
  const Snapshot* held = publisher.current();  // reader loads gen 1

  publisher.publish(countedSnapshot(2));
  publisher.reclaim();
  EXPECT_EQ(liveSnapshots.load(), 2) << "gen 1 freed while a reader still holds it";
  EXPECT_EQ(held->generation, 1u);
  EXPECT_EQ(held->workers.size(), kWorkers);

  rte_rcu_qsbr_quiescent(qsbr_, 0);  // reader is done with gen 1
  publisher.reclaim();
  EXPECT_EQ(liveSnapshots.load(), 1);
  rte_rcu_qsbr_thread_offline(qsbr_, 0);
  rte_rcu_qsbr_thread_unregister(qsbr_, 0);
}

TEST_F(SnapshotTest, ConcurrentReaderNeverSeesAFreedSnapshot) {
  {
    SnapshotPublisher publisher(qsbr_);
    publisher.publish(countedSnapshot(0));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0}, bad{0};
    std::thread reader([&] {
      rte_rcu_qsbr_thread_register(qsbr_, 0);
      rte_rcu_qsbr_thread_online(qsbr_, 0);
      uint64_t lastGeneration = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        // Under AddressSanitizer a freed snapshot read here is a use-after-free report.
        const Snapshot* s = publisher.current();
        for (int i = 0; i < 50; ++i)
          if (s->workers.size() != kWorkers || s->generation < lastGeneration) bad.fetch_add(1);
        lastGeneration = s->generation;
        reads.fetch_add(1, std::memory_order_relaxed);
        rte_rcu_qsbr_quiescent(qsbr_, 0);
      }
      rte_rcu_qsbr_thread_offline(qsbr_, 0);
      rte_rcu_qsbr_thread_unregister(qsbr_, 0);
    });
    while (reads.load() == 0) std::this_thread::yield();
    for (uint64_t g = 1; g <= 3000; ++g) {
      publisher.publish(countedSnapshot(g));
      if (g % 100 == 0) publisher.synchronize();
      publisher.reclaim();
    }
    stop.store(true);
    reader.join();
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_GT(reads.load(), 0u);
  }
  EXPECT_EQ(liveSnapshots.load(), 0) << "every snapshot is freed in the end";
}

}  // namespace
}  // namespace nodeplane::dataplane
