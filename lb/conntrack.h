// Connection tracking: one entry per flow, found from either direction, whichever worker sees it.
//
// Layout (decided by benchmark, see lb/README.md): one shard per worker. A shard is
// an rte_hash in lock-free-reader mode plus an array of 64-byte entries. Only the owning worker
// adds, deletes and ages its shard (one writer: no lock); any worker looks up any shard
// (lock-free). Both tuples of a flow map to the same entry (key data = index << 1 | direction). A
// flow lives in the shard of the worker that saw its first packet; a worker that misses its own
// shard looks in the others. Deleted keys and entry indices come back only after every worker has
// passed a quiescent state (the hash's internal QSBR defer queue, and the shard's own for entry
// indices). Fields other workers write (last seen, TCP state) are atomic; the rest is written once,
// before the keys are published.
#pragma once

#include <rte_byteorder.h>
#include <rte_ether.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/counters.h"
#include "core/result.h"

struct rte_hash;
struct rte_rcu_qsbr;
struct rte_rcu_qsbr_dq;

namespace nodeplane::lb {

// A flow as seen on the wire in one direction. Padding must be zero (it is part of the key).
struct FlowKey {
  rte_be32_t src = 0;
  rte_be32_t dst = 0;
  rte_be16_t sport = 0;
  rte_be16_t dport = 0;
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};

  FlowKey reversed() const {
    FlowKey r;
    r.src = dst;
    r.dst = src;
    r.sport = dport;
    r.dport = sport;
    r.proto = proto;
    return r;
  }
  bool operator==(const FlowKey& o) const {
    return src == o.src && dst == o.dst && sport == o.sport && dport == o.dport && proto == o.proto;
  }
};
static_assert(sizeof(FlowKey) == 16);

enum class ConnState : uint8_t {
  kFree = 0,
  kTcpSynSent,      // the original side sent SYN
  kTcpSynRecv,      // the reply side answered SYN-ACK
  kTcpEstablished,  // handshake done (or picked up mid-stream)
  kTcpFinWait,      // one side sent FIN
  kTcpTimeWait,     // both sides sent FIN
  kTcpClose,        // RST seen
  kUdpUnreplied,
  kUdpReplied,
  kIcmp,      // echo request/reply (identifier as port)
  kAffinity,  // a session-affinity record, not a flow (see service_stage)
};
const char* connStateName(ConnState s);

// Entry flags.
inline constexpr uint8_t kConnDnat = 0x01;       // destination translated (service)
inline constexpr uint8_t kConnSnat = 0x02;       // source translated (masquerade, hairpin, ...)
inline constexpr uint8_t kConnReturnMac = 0x04;  // arrived on the uplink: replies go to returnMac
inline constexpr uint8_t kConnFinOrig = 0x08;    // TCP FIN seen from the original side
inline constexpr uint8_t kConnFinReply = 0x10;   // TCP FIN seen from the reply side
inline constexpr uint8_t kConnReset = 0x20;      // reset by an L7 rule: every packet is refused

struct alignas(64) ConnEntry {
  FlowKey orig;          // as the client sent it (client -> VIP / destination)
  FlowKey reply;         // as replies arrive (backend -> client, after translation)
  uint32_t backendSlot;  // liveness: the snapshot's backend tag for this slot must still match
  uint32_t backendTag;
  uint32_t servicePort;  // stable service-port id (0: none)
  uint32_t lastSeen;     // ms, written by any worker (relaxed); modulo 2^32
  uint16_t stateWord;    // ConnState | flags << 8, updated by CAS from any worker
  uint8_t owner;         // shard (worker) index
  uint8_t reserved;
  uint32_t policyWord;  // cached policy verdict (policy/policy_table.h), written by any worker
  union {
    struct {
      uint16_t returnPort;       // with kConnReturnMac: the port replies leave on
      rte_ether_addr returnMac;  // and the MAC they go to (the client's, or its router's)
    };
    uint32_t affinityTimeoutMs;  // kAffinity records
  };

  ConnState state() const {
    return static_cast<ConnState>(
        std::atomic_ref<const uint16_t>(stateWord).load(std::memory_order_relaxed) & 0xff);
  }
  uint8_t flags() const {
    return static_cast<uint8_t>(
        std::atomic_ref<const uint16_t>(stateWord).load(std::memory_order_relaxed) >> 8);
  }
  void touch(uint32_t nowMs) {
    std::atomic_ref<uint32_t>(lastSeen).store(nowMs, std::memory_order_relaxed);
  }
  // Refreshes lastSeen when it is a second or more old: timeouts are seconds long, and not
  // writing the line on every packet keeps it clean and unshared between the workers that see
  // the two directions of a flow.
  void refresh(uint32_t nowMs) {
    if (nowMs - seen() >= kRefreshMs) touch(nowMs);
  }
  static constexpr uint32_t kRefreshMs = 1000;
  uint32_t policy() const {
    return std::atomic_ref<const uint32_t>(policyWord).load(std::memory_order_relaxed);
  }
  void setPolicy(uint32_t word) {
    std::atomic_ref<uint32_t>(policyWord).store(word, std::memory_order_relaxed);
  }
  uint32_t seen() const {
    return std::atomic_ref<const uint32_t>(lastSeen).load(std::memory_order_relaxed);
  }
};
static_assert(sizeof(ConnEntry) == 64, "one cache line per tracked flow");
static_assert(offsetof(ConnEntry, policyWord) % 4 == 0,
              "policyWord is read and written atomically");

// Idle timeouts per state, milliseconds. Defaults are documented in the README.
struct ConnTimeouts {
  uint32_t tcpSyn = 60'000;
  uint32_t tcpEstablished = 21'600'000;  // 6 h
  uint32_t tcpFin = 120'000;
  uint32_t tcpTimeWait = 120'000;
  uint32_t tcpClose = 10'000;
  uint32_t udp = 30'000;
  uint32_t udpReplied = 120'000;
  uint32_t icmp = 30'000;
};
uint32_t connTimeout(const ConnTimeouts& t, ConnState s, uint32_t affinityTimeoutMs);

// The TCP state machine: the state after a segment with `tcpFlags` from the original side
// (`fromOrig`) or the reply side. Invalid flag combinations leave the state unchanged.
// `flags` carries the FIN bits between calls.
ConnState nextTcpState(ConnState state, bool fromOrig, uint8_t tcpFlags, uint8_t* flags);
bool isEstablished(ConnState s);
// A first packet that may open a tracked TCP flow: a SYN, or (loose pick-up, e.g. after a daemon
// restart) a segment with ACK. Returns kFree when the segment cannot open a flow.
ConnState initialTcpState(uint8_t tcpFlags);

// Where a lookup found a flow.
struct ConnRef {
  uint32_t index = 0;
  uint16_t shard = 0;
  bool reply = false;  // matched the reply tuple
};

struct ConnShardStats {
  Counter inserts, deletes, expired, evictions, fullDrops;
};

class ConnShard {
 public:
  // capacity: live flows; the entry array has some slack for entries in their grace period.
  // qsbr: the workers' QSBR variable (null in single-threaded tests: frees are then immediate).
  static Result<std::unique_ptr<ConnShard>> create(const std::string& name, uint32_t capacity,
                                                   uint16_t shardIndex, int socketId,
                                                   rte_rcu_qsbr* qsbr);
  ~ConnShard();
  ConnShard(const ConnShard&) = delete;
  ConnShard& operator=(const ConnShard&) = delete;

  // Any thread. Up to 64 keys; hits[i] valid where bit i of the returned mask is set.
  uint64_t lookupBulk(const FlowKey* const* keys, unsigned n, ConnRef* hits) const;
  bool lookup(const FlowKey& key, ConnRef* hit) const;
  ConnEntry& entry(uint32_t index) { return entries_[index]; }
  const ConnEntry& entry(uint32_t index) const { return entries_[index]; }

  // Owner only. Inserts both tuples of `proto` (state, keys, translation filled in). When the
  // table is full, evicts a non-established entry near the new one's hash if there is one.
  // Returns the index, or -ENOSPC (nothing evictable: the caller drops the flow). The caller
  // makes sure the tuples are not in the shard yet (a key added twice would be taken over).
  int64_t insert(const ConnEntry& proto, uint32_t nowMs);
  // Removes the entry and those of its keys that still point to it.
  void remove(uint32_t index);
  // Ages `budget` entries from the sweep cursor: expired ones, and those `dead` says are dead
  // (their backend went away), are removed. Returns how many.
  template <typename DeadFn>
  uint32_t age(uint32_t nowMs, uint32_t budget, const ConnTimeouts& t, DeadFn&& dead);

  uint32_t live() const {
    return std::atomic_ref<const uint32_t>(live_).load(std::memory_order_relaxed);
  }
  uint32_t capacity() const { return capacity_; }
  uint32_t slots() const { return slots_; }
  const ConnShardStats& stats() const { return stats_; }
  uint16_t index() const { return shardIndex_; }

 private:
  ConnShard() = default;
  bool evictNear(uint32_t hash);
  uint32_t popFree();
  static void freeIndices(void* shard, void* elements, unsigned count);
  void removeKey(const FlowKey& key, uint32_t index, bool reply);

  rte_hash* hash_ = nullptr;
  rte_rcu_qsbr_dq* deferredFree_ = nullptr;
  ConnEntry* entries_ = nullptr;
  std::vector<uint32_t> free_;
  uint32_t capacity_ = 0;
  uint32_t slots_ = 0;
  uint32_t live_ = 0;
  uint32_t cursor_ = 0;
  uint16_t shardIndex_ = 0;
  ConnShardStats stats_;
};

// All shards: lookups anywhere, each worker writing its own.
class ConnTracker {
 public:
  static Result<std::unique_ptr<ConnTracker>> create(uint32_t capacity, unsigned shards,
                                                     int socketId, rte_rcu_qsbr* qsbr);
  ConnShard& shard(unsigned i) { return *shards_[i]; }
  const ConnShard& shard(unsigned i) const { return *shards_[i]; }
  unsigned shardCount() const { return static_cast<unsigned>(shards_.size()); }
  // Looks `keys` up in shard `first` (the caller's own), then the misses in the others.
  uint64_t lookupBulk(unsigned first, const FlowKey* const* keys, unsigned n, ConnRef* hits) const;
  ConnEntry& entry(const ConnRef& r) { return shards_[r.shard]->entry(r.index); }
  const ConnTimeouts& timeouts() const { return timeouts_; }
  void setTimeouts(const ConnTimeouts& t) { timeouts_ = t; }
  uint32_t capacity() const;
  uint32_t live() const;
  // EAL memory the table took at creation (entries, both hash keys per flow, slack, rings).
  uint64_t memoryBytes() const { return memoryBytes_; }

 private:
  std::vector<std::unique_ptr<ConnShard>> shards_;
  uint64_t memoryBytes_ = 0;
  ConnTimeouts timeouts_;
};

template <typename DeadFn>
uint32_t ConnShard::age(uint32_t nowMs, uint32_t budget, const ConnTimeouts& t, DeadFn&& dead) {
  uint32_t removed = 0;
  for (uint32_t i = 0; i < budget; ++i) {
    const uint32_t index = cursor_;
    cursor_ = cursor_ + 1 == slots_ ? 0 : cursor_ + 1;
    ConnEntry& e = entries_[index];
    const ConnState s = e.state();
    if (s == ConnState::kFree) continue;
    const uint32_t affinityMs = s == ConnState::kAffinity ? e.affinityTimeoutMs : 0;
    const bool expired = nowMs - e.seen() > connTimeout(t, s, affinityMs);
    if (expired || dead(e)) {
      remove(index);
      (expired ? stats_.expired : stats_.deletes).add();
      ++removed;
    }
  }
  return removed;
}

}  // namespace nodeplane::lb
