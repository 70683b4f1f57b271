#include "lb/conntrack.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_tcp.h>

#include <algorithm>

namespace nodeplane::lb {

namespace {

constexpr uint8_t kFin = RTE_TCP_FIN_FLAG;
constexpr uint8_t kSyn = RTE_TCP_SYN_FLAG;
constexpr uint8_t kRst = RTE_TCP_RST_FLAG;
constexpr uint8_t kAck = RTE_TCP_ACK_FLAG;
constexpr uint32_t kEvictCandidates = 8;  // live entries considered for eviction
constexpr uint32_t kEvictWindow = 64;     // slots looked at from one position
constexpr uint32_t kEvictWindows = 4;     // positions tried before scanning on

void* keyData(uint32_t index, bool reply) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(index) << 1 | (reply ? 1 : 0));
}

ConnRef refFrom(void* data, uint16_t shard) {
  const auto v = reinterpret_cast<uintptr_t>(data);
  return ConnRef{static_cast<uint32_t>(v >> 1), shard, (v & 1) != 0};
}

}  // namespace

const char* connStateName(ConnState s) {
  switch (s) {
    case ConnState::kFree:
      return "free";
    case ConnState::kTcpSynSent:
      return "syn_sent";
    case ConnState::kTcpSynRecv:
      return "syn_recv";
    case ConnState::kTcpEstablished:
      return "established";
    case ConnState::kTcpFinWait:
      return "fin_wait";
    case ConnState::kTcpTimeWait:
      return "time_wait";
    case ConnState::kTcpClose:
      return "close";
    case ConnState::kUdpUnreplied:
      return "udp_unreplied";
    case ConnState::kUdpReplied:
      return "udp_replied";
    case ConnState::kIcmp:
      return "icmp";
    case ConnState::kAffinity:
      return "affinity";
  }
  return "?";
}

uint32_t connTimeout(const ConnTimeouts& t, ConnState s, uint32_t affinityTimeoutMs) {
  switch (s) {
    case ConnState::kTcpSynSent:
    case ConnState::kTcpSynRecv:
      return t.tcpSyn;
    case ConnState::kTcpEstablished:
      return t.tcpEstablished;
    case ConnState::kTcpFinWait:
      return t.tcpFin;
    case ConnState::kTcpTimeWait:
      return t.tcpTimeWait;
    case ConnState::kTcpClose:
      return t.tcpClose;
    case ConnState::kUdpUnreplied:
      return t.udp;
    case ConnState::kUdpReplied:
      return t.udpReplied;
    case ConnState::kIcmp:
      return t.icmp;
    case ConnState::kAffinity:
      return affinityTimeoutMs;
    case ConnState::kFree:
      return 0;
  }
  return 0;
}

bool isEstablished(ConnState s) {
  return s == ConnState::kTcpEstablished || s == ConnState::kUdpReplied;
}

ConnState initialTcpState(uint8_t f) {
  if ((f & (kSyn | kRst | kFin)) == kSyn && !(f & kAck)) return ConnState::kTcpSynSent;
  if ((f & (kSyn | kRst)) == 0 && (f & kAck)) return ConnState::kTcpEstablished;  // loose pick-up
  return ConnState::kFree;
}

ConnState nextTcpState(ConnState s, bool fromOrig, uint8_t f, uint8_t* flags) {
  // Nonsense combinations change nothing (and are not a reason to forget the flow).
  if ((f & kSyn) && (f & (kFin | kRst))) return s;
  if ((f & (kSyn | kFin | kRst | kAck)) == 0) return s;
  if (f & kRst) return ConnState::kTcpClose;
  if (f & kFin) {
    *flags |= fromOrig ? kConnFinOrig : kConnFinReply;
    const uint8_t both = kConnFinOrig | kConnFinReply;
    return (*flags & both) == both ? ConnState::kTcpTimeWait : ConnState::kTcpFinWait;
  }
  switch (s) {
    case ConnState::kTcpSynSent:
      if (!fromOrig && (f & kSyn) && (f & kAck)) return ConnState::kTcpSynRecv;
      return s;  // retransmitted SYN, or a stray ACK
    case ConnState::kTcpSynRecv:
      if (fromOrig && (f & kAck) && !(f & kSyn)) return ConnState::kTcpEstablished;
      return s;
    case ConnState::kTcpClose:
      // A new SYN on a closed 5-tuple reopens it (port reuse).
      if (fromOrig && (f & kSyn) && !(f & kAck)) return ConnState::kTcpSynSent;
      return s;
    case ConnState::kTcpTimeWait:
      if (fromOrig && (f & kSyn) && !(f & kAck)) {
        *flags &= static_cast<uint8_t>(~(kConnFinOrig | kConnFinReply));
        return ConnState::kTcpSynSent;
      }
      return s;
    default:
      return s;
  }
}

Result<std::unique_ptr<ConnShard>> ConnShard::create(const std::string& name, uint32_t capacity,
                                                     uint16_t shardIndex, int socketId,
                                                     rte_rcu_qsbr* qsbr) {
  std::unique_ptr<ConnShard> s(new ConnShard());
  s->capacity_ = capacity;
  s->slots_ = capacity + std::max<uint32_t>(64, capacity / 8);  // room for the grace period
  s->shardIndex_ = shardIndex;
  s->entries_ = static_cast<ConnEntry*>(
      rte_zmalloc_socket((name + "_e").c_str(), sizeof(ConnEntry) * s->slots_, 64, socketId));
  if (s->entries_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted, "conntrack: " + std::to_string(s->slots_) +
                                                        " entries do not fit in EAL memory");
  s->free_.reserve(s->slots_);
  for (uint32_t i = s->slots_; i-- > 0;) s->free_.push_back(i);

  rte_hash_parameters params{};
  const std::string hashName = name + "_h";
  params.name = hashName.c_str();
  // Two keys per entry, and cuckoo hashing wants headroom.
  params.entries = std::max<uint32_t>(1024, s->slots_ * 2 + s->slots_ / 2);
  params.key_len = sizeof(FlowKey);
  params.hash_func = rte_hash_crc;
  params.socket_id = socketId;
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  s->hash_ = rte_hash_create(&params);
  if (s->hash_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("conntrack: rte_hash_create: ") + rte_strerror(rte_errno));
  if (qsbr != nullptr) {
    rte_hash_rcu_config rcu{};
    rcu.v = qsbr;
    rcu.mode = RTE_HASH_QSBR_MODE_DQ;
    if (rte_hash_rcu_qsbr_add(s->hash_, &rcu) != 0)
      return makeError(ErrorCode::kInternal,
                       std::string("conntrack: rte_hash_rcu_qsbr_add: ") + rte_strerror(rte_errno));
    rte_rcu_qsbr_dq_parameters dq{};
    const std::string dqName = name + "_dq";
    dq.name = dqName.c_str();
    dq.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;  // the owner only
    dq.size = s->slots_;
    dq.esize = sizeof(uint32_t);
    dq.trigger_reclaim_limit = 64;
    dq.max_reclaim_size = 256;
    dq.free_fn = &ConnShard::freeIndices;
    dq.p = s.get();
    dq.v = qsbr;
    s->deferredFree_ = rte_rcu_qsbr_dq_create(&dq);
    if (s->deferredFree_ == nullptr)
      return makeError(ErrorCode::kResourceExhausted,
                       std::string("conntrack: defer queue: ") + rte_strerror(rte_errno));
  }
  return s;
}

ConnShard::~ConnShard() {
  if (deferredFree_ != nullptr) rte_rcu_qsbr_dq_delete(deferredFree_);
  rte_hash_free(hash_);
  rte_free(entries_);
}

void ConnShard::freeIndices(void* shard, void* elements, unsigned count) {
  auto* s = static_cast<ConnShard*>(shard);
  const auto* indices = static_cast<const uint32_t*>(elements);
  for (unsigned i = 0; i < count; ++i) s->free_.push_back(indices[i]);
}

uint64_t ConnShard::lookupBulk(const FlowKey* const* keys, unsigned n, ConnRef* hits) const {
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  uint64_t mask = 0;
  rte_hash_lookup_bulk_data(
      hash_, reinterpret_cast<const void**>(const_cast<const FlowKey**>(keys)), n, &mask, data);
  for (uint64_t m = mask; m; m &= m - 1) {
    const unsigned i = static_cast<unsigned>(__builtin_ctzll(m));
    hits[i] = refFrom(data[i], shardIndex_);
  }
  return mask;
}

bool ConnShard::lookup(const FlowKey& key, ConnRef* hit) const {
  void* data = nullptr;
  if (rte_hash_lookup_data(hash_, &key, &data) < 0) return false;
  *hit = refFrom(data, shardIndex_);
  return true;
}

uint32_t ConnShard::popFree() {
  if (free_.empty() && deferredFree_ != nullptr) {
    unsigned freed = 0, pending = 0, available = 0;
    rte_rcu_qsbr_dq_reclaim(deferredFree_, 256, &freed, &pending, &available);
  }
  if (free_.empty()) return UINT32_MAX;
  const uint32_t index = free_.back();
  free_.pop_back();
  return index;
}

bool ConnShard::evictNear(uint32_t hash) {
  // "Near": the first live entries from a position the new flow's hash picks, so eviction is
  // spread over the table and looks at few slots (only when the table is full). A window may hold
  // no live entry at all: the table keeps slots - capacity of slack for entries in their grace
  // period, and after a fill those can be adjacent. Then another position is tried, and after
  // kEvictWindows the scan goes on from the last one: a full table has live entries within
  // slots - capacity positions of anywhere, so a non-established one is found if there is one
  // among the first kEvictCandidates live entries seen.
  uint32_t considered = 0;
  uint32_t index = hash % slots_;
  for (uint32_t scanned = 0; scanned < slots_ && considered < kEvictCandidates; ++scanned) {
    if (considered == 0 && scanned != 0 && scanned % kEvictWindow == 0 &&
        scanned / kEvictWindow < kEvictWindows) {
      hash = hash * 2654435761u + 0x9e3779b9u;  // a window of free slots: another position
      index = hash % slots_;
    }
    const ConnState s = entries_[index].state();
    const uint32_t at = index;
    index = index + 1 == slots_ ? 0 : index + 1;
    if (s == ConnState::kFree) continue;
    ++considered;
    if (isEstablished(s)) continue;
    remove(at);
    stats_.evictions.add();
    return true;
  }
  return false;
}

int64_t ConnShard::insert(const ConnEntry& proto, uint32_t nowMs) {
  if (live_ >= capacity_ && !evictNear(rte_hash_crc(&proto.orig, sizeof(FlowKey), 0))) {
    stats_.fullDrops.add();
    return -ENOSPC;
  }
  const uint32_t index = popFree();
  if (index == UINT32_MAX) {  // everything is still in its grace period
    stats_.fullDrops.add();
    return -ENOSPC;
  }
  ConnEntry& e = entries_[index];
  e = proto;
  e.owner = static_cast<uint8_t>(shardIndex_);
  e.lastSeen = nowMs;
  // Publish the reply key first: a worker seeing a reply finds the complete entry.
  if (rte_hash_add_key_data(hash_, &e.reply, keyData(index, true)) < 0) {
    e.stateWord = 0;
    free_.push_back(index);
    stats_.fullDrops.add();
    return -ENOSPC;
  }
  if (!(e.orig == e.reply)) {
    if (rte_hash_add_key_data(hash_, &e.orig, keyData(index, false)) < 0) {
      rte_hash_del_key(hash_, &e.reply);
      e.stateWord = 0;
      free_.push_back(index);
      stats_.fullDrops.add();
      return -ENOSPC;
    }
  }
  std::atomic_ref<uint32_t>(live_).store(live_ + 1, std::memory_order_relaxed);
  stats_.inserts.add();
  return index;
}

void ConnShard::removeKey(const FlowKey& key, uint32_t index, bool reply) {
  // Only if the key is still ours: an entry's key may have been taken by a newer entry (rte_hash
  // replaces the data of a key added twice), and removing it would orphan that live flow.
  void* data = nullptr;
  if (rte_hash_lookup_data(hash_, &key, &data) >= 0 && data == keyData(index, reply))
    rte_hash_del_key(hash_, &key);
}

void ConnShard::remove(uint32_t index) {
  ConnEntry& e = entries_[index];
  if (e.state() == ConnState::kFree) return;
  removeKey(e.reply, index, true);
  if (!(e.orig == e.reply)) removeKey(e.orig, index, false);
  std::atomic_ref<uint16_t>(e.stateWord).store(0, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(live_).store(live_ - 1, std::memory_order_relaxed);
  // The index returns only after every worker that may have looked it up is done with it.
  if (deferredFree_ == nullptr || rte_rcu_qsbr_dq_enqueue(deferredFree_, &index) != 0)
    free_.push_back(index);
}

Result<std::unique_ptr<ConnTracker>> ConnTracker::create(uint32_t capacity, unsigned shards,
                                                         int socketId, rte_rcu_qsbr* qsbr) {
  static std::atomic<uint32_t> sequence{0};
  const uint32_t id = sequence.fetch_add(1);
  std::unique_ptr<ConnTracker> t(new ConnTracker());
  // What the EAL heap gave the shards (created at start-up, on the control thread, while nothing
  // else allocates from it).
  auto heapInUse = [socketId] {
    rte_malloc_socket_stats st{};
    rte_malloc_get_socket_stats(socketId < 0 ? 0 : socketId, &st);
    return st.heap_allocsz_bytes;
  };
  const uint64_t before = heapInUse();
  const uint32_t perShard = std::max<uint32_t>(64, (capacity + shards - 1) / shards);
  for (unsigned i = 0; i < shards; ++i) {
    auto shard = ConnShard::create("np_ct" + std::to_string(id) + "_" + std::to_string(i), perShard,
                                   static_cast<uint16_t>(i), socketId, qsbr);
    if (!shard) return shard.error();
    t->shards_.push_back(std::move(*shard));
  }
  const uint64_t after = heapInUse();
  t->memoryBytes_ = after > before ? after - before : 0;
  return t;
}

uint64_t ConnTracker::lookupBulk(unsigned first, const FlowKey* const* keys, unsigned n,
                                 ConnRef* hits) const {
  uint64_t found = shards_[first]->lookupBulk(keys, n, hits);
  const uint64_t all = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
  for (unsigned s = 0; s < shards_.size() && found != all; ++s) {
    if (s == first) continue;
    // Look the remaining misses up in this shard.
    const FlowKey* missing[64];
    unsigned position[64];
    unsigned m = 0;
    for (uint64_t bits = all & ~found; bits; bits &= bits - 1) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(bits));
      position[m] = i;
      missing[m++] = keys[i];
    }
    ConnRef partial[64];
    const uint64_t got = shards_[s]->lookupBulk(missing, m, partial);
    for (uint64_t bits = got; bits; bits &= bits - 1) {
      const unsigned j = static_cast<unsigned>(__builtin_ctzll(bits));
      hits[position[j]] = partial[j];
      found |= uint64_t{1} << position[j];
    }
  }
  return found;
}

uint32_t ConnTracker::capacity() const {
  uint32_t c = 0;
  for (const auto& s : shards_) c += s->capacity();
  return c;
}

uint32_t ConnTracker::live() const {
  uint32_t c = 0;
  for (const auto& s : shards_) c += s->live();
  return c;
}

}  // namespace nodeplane::lb
