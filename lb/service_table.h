// The services part of a snapshot: which (address, port, protocol) is a service, its backends and
// their Maglev tables, and whether each backend is still the one a tracked flow was sent to.
// Built whole by the control thread from the model; immutable once published.
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "lb/backend_counters.h"
#include "lb/maglev.h"

struct rte_hash;

namespace nodeplane::lb {

// How a packet reached a service: traffic policies differ for in-cluster and external traffic.
enum class ServiceAccess : uint8_t { kCluster = 0, kExternal = 1, kNodePort = 2 };

inline constexpr uint8_t kServiceAffinity = 0x01;       // sessionAffinity: ClientIP
inline constexpr uint8_t kServiceExternalLocal = 0x02;  // externalTrafficPolicy: Local
inline constexpr uint8_t kServiceInternalLocal = 0x04;  // internalTrafficPolicy: Local

struct ServiceBackend {
  rte_be32_t ip;
  rte_be16_t port;
  uint8_t local;   // a pod on this node
  uint8_t usable;  // may take new flows (ready, or the serving-terminating fallback)
  uint32_t slot;   // liveness slot: alive while tags[slot] == tag
  uint32_t tag;
};
static_assert(sizeof(ServiceBackend) == 16);

struct ServicePortEntry {
  uint32_t id;  // stable service-port id (flows refer to it)
  uint8_t proto;
  uint8_t flags;
  uint16_t reserved;
  uint32_t affinityTimeoutMs;
  uint32_t backendsOffset;  // into the backend array
  uint32_t backendCount;
  int32_t tableAll;    // Maglev table over the usable backends, -1: none usable
  int32_t tableLocal;  // over the usable local backends (Local traffic policies), -1: none
};

// Maglev tables by table size, backend identities and weights, shared by every service port and
// snapshot that uses them and built only when no live table fits: a change rebuilds only the
// tables of the services it touched. Control thread only.
class MaglevCache {
 public:
  struct Entries {
    const uint16_t* data = nullptr;
    size_t size = 0;
    uint16_t operator[](size_t i) const { return data[i]; }
    const uint16_t* begin() const { return data; }
    const uint16_t* end() const { return data + size; }
  };
  using Table = std::shared_ptr<const Entries>;
  using Key = std::vector<MaglevBackend>;  // sorted by identity
  Table get(const Key& key, uint32_t size);
  size_t size() const { return tables_.size(); }

 private:
  struct KeyHash {
    size_t operator()(const std::pair<uint32_t, Key>& k) const;
  };
  // Builds the table straight into EAL memory (ordinary memory when that is exhausted).
  static Table makeTable(const std::vector<MaglevBackend>& backends, uint32_t size);
  // Weak: a table lives as long as some snapshot (or pending build) uses it.
  std::unordered_map<std::pair<uint32_t, Key>, std::weak_ptr<const Entries>, KeyHash> tables_;
  uint32_t gets_ = 0;
};

// What the control plane hands the builder for one service port.
struct ServicePortInput {
  uint32_t id = 0;
  uint8_t proto = 6;
  uint8_t flags = 0;
  uint32_t affinityTimeoutMs = 0;
  struct Address {
    rte_be32_t ip;
    rte_be16_t port;
    ServiceAccess access;
  };
  std::vector<Address> addresses;  // cluster IPs, external/LB IPs, node address:nodePort
  struct Backend {
    ServiceBackend backend;
    bool usable;  // ready, or serving-and-terminating when none is ready
    uint32_t weight;
    std::string identity;  // Maglev identity: the same on every node
  };
  std::vector<Backend> backends;  // sorted by identity
  // Its Maglev tables (over the usable backends, and the usable local ones when a traffic policy
  // is Local): set by resolve().
  MaglevCache::Table tableAll, tableLocal;

  // Looks up (or builds) this port's Maglev tables; the size follows the backend count
  // (maglevSizeFor), at most `maxSize`.
  void resolve(MaglevCache& cache, uint32_t maxSize);
};

class ServiceTable {
 public:
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;

  // `tags` has one entry per backend slot (index 0: no backend). Inputs must be resolved. The
  // address lookup of `previous` is shared when the addresses and their ports are the same (an
  // endpoint change): then nothing but arrays is built.
  // `counters`: the backends' counters (kept across tables); null: nothing counted.
  static Result<std::shared_ptr<const ServiceTable>> build(
      const std::vector<const ServicePortInput*>& ports, std::vector<uint32_t> tags,
      const ServiceTable* previous, int socketId,
      std::shared_ptr<BackendCounters> counters = nullptr);

  // The service port behind (ip, port, proto), and how it was reached. False when none.
  bool find(rte_be32_t ip, rte_be16_t port, uint8_t proto, uint32_t* portIndex,
            ServiceAccess* access) const;
  struct Query {
    rte_be32_t ip;
    rte_be16_t port;
    uint8_t proto;
  };
  // Up to 64 queries at once; bit i of the result set when query i is a service.
  uint64_t findBulk(const Query* queries, unsigned n, uint32_t* portIndex,
                    ServiceAccess* access) const;
  // Where pick(table, hash) will read: prefetch it before picking.
  const void* pickAddress(int32_t table, uint32_t hash) const {
    const MaglevCache::Entries& t = *tables_[static_cast<size_t>(table)];
    return t.data + hash % t.size;
  }
  const ServicePortEntry& port(uint32_t index) const { return ports_[index]; }
  const ServiceBackend& backend(const ServicePortEntry& p, uint32_t i) const {
    return backends_[p.backendsOffset + i];
  }
  // Maglev pick: a backend index of `p` for `hash` in table `table` (>= 0).
  uint32_t pick(int32_t table, uint32_t hash) const {
    const MaglevCache::Entries& t = *tables_[static_cast<size_t>(table)];
    return t[hash % t.size];
  }
  const MaglevCache::Entries& maglevTable(int32_t table) const { return *tables_[table]; }
  bool alive(uint32_t slot, uint32_t tag) const {
    return slot < tags_.size() && tags_[slot] == tag;
  }
  void prefetchTag(uint32_t slot) const {
    if (slot < tags_.size()) __builtin_prefetch(&tags_[slot]);
  }
  // A new flow to backend `slot` dropped for want of a free SNAT source port (worker `worker`).
  void countSnatExhausted(unsigned worker, uint32_t slot) const {
    if (counters_) counters_->snatExhausted(worker, slot).add();
  }
  size_t portCount() const { return ports_.size(); }
  size_t tableCount() const { return tables_.size(); }
  bool sharesLookupWith(const ServiceTable& other) const { return lookup_ == other.lookup_; }

 private:
  ServiceTable() = default;
  struct AddressEntry {
    uint64_t key;     // ip, port, protocol as the lookup key's bytes
    uintptr_t value;  // port index << 2 | access
    bool operator==(const AddressEntry&) const = default;
  };
  std::shared_ptr<rte_hash> lookup_;     // shared with snapshots that have the same addresses
  std::vector<AddressEntry> addresses_;  // what lookup_ holds
  std::vector<ServicePortEntry> ports_;
  std::vector<ServiceBackend> backends_;
  std::vector<MaglevCache::Table> tables_;  // shared with the cache and other snapshots
  std::vector<uint32_t> tags_;
  std::shared_ptr<BackendCounters> counters_;
};

}  // namespace nodeplane::lb
