#include "lb/service_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <algorithm>

#include <atomic>
#include <map>

#include "lb/maglev.h"

namespace nodeplane::lb {

namespace {

struct LookupKey {
  rte_be32_t ip;
  rte_be16_t port;
  uint8_t proto;
  uint8_t pad;
};
static_assert(sizeof(LookupKey) == 8);

std::atomic<uint64_t> tableSequence{0};

}  // namespace

// Tables live in EAL memory (hugepages in production): a new flow reads one random entry of one
// of possibly thousands of tables, and a TLB miss per new flow is what 4 KiB pages would cost.
MaglevCache::Table MaglevCache::makeTable(const std::vector<uint16_t>& entries) {
  if (entries.empty()) return std::make_shared<const Entries>();
  void* raw = rte_malloc("np_maglev", sizeof(uint16_t) * entries.size(), RTE_CACHE_LINE_SIZE);
  if (raw == nullptr) {  // out of EAL memory: ordinary memory still works, only slower
    auto* plain = new uint16_t[entries.size()];
    std::copy(entries.begin(), entries.end(), plain);
    return std::shared_ptr<const Entries>(new Entries{plain, entries.size()}, [](const Entries* e) {
      delete[] e->data;
      delete e;
    });
  }
  std::copy(entries.begin(), entries.end(), static_cast<uint16_t*>(raw));
  return std::shared_ptr<const Entries>(
      new Entries{static_cast<uint16_t*>(raw), entries.size()}, [](const Entries* e) {
        rte_free(const_cast<uint16_t*>(e->data));
        delete e;
      });
}

MaglevCache::Table MaglevCache::get(const Key& key, uint32_t size) {
  if (size != size_) {  // a new table size invalidates everything
    tables_.clear();
    size_ = size;
  }
  auto it = tables_.find(key);
  if (it == tables_.end()) {
    std::vector<MaglevBackend> backends;
    for (const auto& [id, weight] : key) backends.push_back({id, weight});
    it = tables_.emplace(key, Slot{makeTable(buildMaglevTable(backends, size)), false}).first;
  }
  it->second.used = true;
  return it->second.table;
}

void MaglevCache::sweep() {
  for (auto it = tables_.begin(); it != tables_.end();) {
    if (!it->second.used) {
      it = tables_.erase(it);
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

ServiceTable::~ServiceTable() { rte_hash_free(lookup_); }

Result<std::shared_ptr<const ServiceTable>> ServiceTable::build(
    const std::vector<ServicePortInput>& inputs, std::vector<uint32_t> tags, uint32_t maglevSize,
    MaglevCache& cache, int socketId) {
  std::shared_ptr<ServiceTable> t(new ServiceTable());
  t->maglevSize_ = maglevSize;
  t->tags_ = std::move(tags);
  size_t addresses = 0;
  for (const auto& in : inputs) addresses += in.addresses.size();

  const std::string name = "np_svc_" + std::to_string(tableSequence.fetch_add(1));
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = std::max<uint32_t>(64, static_cast<uint32_t>(addresses * 2));
  params.key_len = sizeof(LookupKey);
  params.hash_func = rte_hash_crc;
  params.socket_id = socketId;
  t->lookup_ = rte_hash_create(&params);
  if (t->lookup_ == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("services: rte_hash_create: ") + rte_strerror(rte_errno));

  // Maglev tables are shared between service ports with the same backend identities and weights
  // (every port of a multi-port service, typically), and taken from the cache when unchanged.
  std::map<MaglevCache::Key, int32_t> tables;
  auto tableFor = [&](const std::vector<MaglevBackend>& backends) -> int32_t {
    MaglevCache::Key identity;
    for (const auto& b : backends) identity.emplace_back(b.id, b.weight);
    auto it = tables.find(identity);
    if (it != tables.end()) return it->second;
    MaglevCache::Table table = cache.get(identity, maglevSize);
    if (table->size == 0) return -1;
    const auto index = static_cast<int32_t>(t->tables_.size());
    t->tables_.push_back(std::move(table));
    tables.emplace(std::move(identity), index);
    return index;
  };

  for (const auto& in : inputs) {
    ServicePortEntry e{};
    e.id = in.id;
    e.proto = in.proto;
    e.flags = in.flags;
    e.affinityTimeoutMs = in.affinityTimeoutMs;
    e.backendsOffset = static_cast<uint32_t>(t->backends_.size());
    e.backendCount = static_cast<uint32_t>(in.backends.size());
    if (in.backends.size() > 65535)
      return invalidArgument("services: more than 65535 backends on one service port");
    // Maglev entries index the full backend list; unusable backends get no entries.
    std::vector<MaglevBackend> all, local;
    for (const auto& b : in.backends) {
      t->backends_.push_back(b.backend);
      all.push_back({b.identity, b.usable ? b.weight : 0});
      local.push_back({b.identity, b.usable && b.backend.local ? b.weight : 0});
    }
    bool anyUsable = false, anyLocal = false;
    for (size_t i = 0; i < all.size(); ++i) {
      anyUsable |= all[i].weight > 0;
      anyLocal |= local[i].weight > 0;
    }
    e.tableAll = anyUsable ? tableFor(all) : -1;
    e.tableLocal = anyLocal ? tableFor(local) : -1;
    const auto index = static_cast<uint32_t>(t->ports_.size());
    t->ports_.push_back(e);
    for (const auto& a : in.addresses) {
      const LookupKey key{a.ip, a.port, in.proto, 0};
      const uintptr_t value = static_cast<uintptr_t>(index) << 2 | static_cast<uintptr_t>(a.access);
      if (rte_hash_add_key_data(t->lookup_, &key, reinterpret_cast<void*>(value)) < 0)
        return makeError(ErrorCode::kResourceExhausted, "services: lookup table full");
    }
  }
  cache.sweep();
  return std::shared_ptr<const ServiceTable>(std::move(t));
}

uint64_t ServiceTable::findBulk(const Query* queries, unsigned n, uint32_t* portIndex,
                                ServiceAccess* access) const {
  LookupKey keys[RTE_HASH_LOOKUP_BULK_MAX];
  const void* keyPtrs[RTE_HASH_LOOKUP_BULK_MAX];
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  for (unsigned i = 0; i < n; ++i) {
    keys[i] = LookupKey{queries[i].ip, queries[i].port, queries[i].proto, 0};
    keyPtrs[i] = &keys[i];
  }
  uint64_t mask = 0;
  rte_hash_lookup_bulk_data(lookup_, keyPtrs, n, &mask, data);
  for (uint64_t m = mask; m; m &= m - 1) {
    const unsigned i = static_cast<unsigned>(__builtin_ctzll(m));
    const auto v = reinterpret_cast<uintptr_t>(data[i]);
    portIndex[i] = static_cast<uint32_t>(v >> 2);
    access[i] = static_cast<ServiceAccess>(v & 3);
  }
  return mask;
}

bool ServiceTable::find(rte_be32_t ip, rte_be16_t port, uint8_t proto, uint32_t* portIndex,
                        ServiceAccess* access) const {
  const LookupKey key{ip, port, proto, 0};
  void* data = nullptr;
  if (rte_hash_lookup_data(lookup_, &key, &data) < 0) return false;
  const auto v = reinterpret_cast<uintptr_t>(data);
  *portIndex = static_cast<uint32_t>(v >> 2);
  *access = static_cast<ServiceAccess>(v & 3);
  return true;
}

}  // namespace nodeplane::lb
