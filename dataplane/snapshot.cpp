#include "dataplane/snapshot.h"

#include <rte_errno.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace nodeplane::dataplane {

namespace {
constexpr uint32_t kDeferQueueSize = 64;  // pending old snapshots; full → synchronous wait
std::atomic<uint32_t> publisherSequence{0};
}  // namespace

SnapshotPublisher::SnapshotPublisher(rte_rcu_qsbr* qsbr) : qsbr_(qsbr) {
  std::string name = "np_snap_dq" + std::to_string(publisherSequence.fetch_add(1));
  rte_rcu_qsbr_dq_parameters params{};
  params.name = name.c_str();
  params.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;  // control thread only
  params.size = kDeferQueueSize;
  params.esize = sizeof(void*);
  params.trigger_reclaim_limit = 1;
  params.max_reclaim_size = kDeferQueueSize;
  params.free_fn = &SnapshotPublisher::freeSnapshots;
  params.p = this;
  params.v = qsbr_;
  deferQueue_ = rte_rcu_qsbr_dq_create(&params);
  if (deferQueue_ == nullptr)
    throw std::runtime_error(std::string("rte_rcu_qsbr_dq_create: ") + rte_strerror(rte_errno));
}

SnapshotPublisher::~SnapshotPublisher() {
  // Callers stop the workers first; then everything pending can go.
  synchronize();
  reclaim();
  rte_rcu_qsbr_dq_delete(deferQueue_);
  delete current_.exchange(nullptr);
}

void SnapshotPublisher::publish(std::unique_ptr<Snapshot> next) {
  const Snapshot* old = current_.exchange(next.release(), std::memory_order_acq_rel);
  if (old == nullptr) return;
  void* entry = const_cast<Snapshot*>(old);
  if (rte_rcu_qsbr_dq_enqueue(deferQueue_, &entry) != 0) {
    // The defer queue is full of snapshots still in their grace period: wait for it.
    synchronize();
    delete old;
  }
}

void SnapshotPublisher::synchronize() {
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
}

void SnapshotPublisher::reclaim() {
  unsigned freed = 0, pending = 0, available = 0;
  rte_rcu_qsbr_dq_reclaim(deferQueue_, kDeferQueueSize, &freed, &pending, &available);
}

void SnapshotPublisher::freeSnapshots(void*, void* entries, unsigned count) {
  auto** snapshots = static_cast<Snapshot**>(entries);
  for (unsigned i = 0; i < count; ++i) delete snapshots[i];
}

}  // namespace nodeplane::dataplane
