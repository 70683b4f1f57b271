#include "lb/service_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <algorithm>
#include <cstring>

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
MaglevCache::Table MaglevCache::makeTable(const std::vector<MaglevBackend>& backends,
                                          uint32_t size) {
  void* raw = rte_malloc("np_maglev", sizeof(uint16_t) * size, RTE_CACHE_LINE_SIZE);
  const bool eal = raw != nullptr;
  uint16_t* data = eal ? static_cast<uint16_t*>(raw) : new uint16_t[size];
  if (!buildMaglevTable(backends, size, data)) {
    if (eal)
      rte_free(raw);
    else
      delete[] data;
    return std::make_shared<const Entries>();
  }
  return std::shared_ptr<const Entries>(new Entries{data, size}, [eal](const Entries* e) {
    if (eal)
      rte_free(const_cast<uint16_t*>(e->data));
    else
      delete[] e->data;
    delete e;
  });
}

size_t MaglevCache::KeyHash::operator()(const std::pair<uint32_t, Key>& k) const {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ k.first;
  for (const auto& [id, weight] : k.second) {
    for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ull;
    h = (h ^ weight) * 0x100000001b3ull;
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

MaglevCache::Table MaglevCache::get(const Key& key, uint32_t size) {
  // Forget tables no snapshot uses any more, now and then.
  if (++gets_ % 4096 == 0)
    for (auto it = tables_.begin(); it != tables_.end();)
      it = it->second.expired() ? tables_.erase(it) : std::next(it);
  auto [it, added] = tables_.try_emplace({size, key});
  if (Table live = it->second.lock()) return live;
  Table table = makeTable(key, size);
  it->second = table;
  return table;
}

void ServicePortInput::resolve(MaglevCache& cache, uint32_t maxSize) {
  // Maglev entries index the full backend list; unusable backends get no entries.
  // Only a port with a Local traffic policy picks from its local backends alone.
  const bool wantsLocal = flags & (kServiceExternalLocal | kServiceInternalLocal);
  MaglevCache::Key all, local;
  all.reserve(backends.size());
  if (wantsLocal) local.reserve(backends.size());
  bool anyUsable = false, anyLocal = false;
  for (const auto& b : backends) {
    const uint32_t w = b.usable ? b.weight : 0;
    all.push_back({b.identity, w});
    anyUsable |= w > 0;
    if (wantsLocal) {
      const uint32_t lw = b.usable && b.backend.local ? b.weight : 0;
      local.push_back({b.identity, lw});
      anyLocal |= lw > 0;
    }
  }
  const uint32_t size = maglevSizeFor(backends.size(), maxSize);
  tableAll = anyUsable ? cache.get(all, size) : nullptr;
  tableLocal = anyLocal ? cache.get(local, size) : nullptr;
}

Result<std::shared_ptr<const ServiceTable>> ServiceTable::build(
    const std::vector<const ServicePortInput*>& inputs, std::vector<uint32_t> tags,
    const ServiceTable* previous, int socketId, std::shared_ptr<BackendCounters> counters) {
  std::shared_ptr<ServiceTable> t(new ServiceTable());
  t->tags_ = std::move(tags);
  t->counters_ = std::move(counters);
  size_t backendCount = 0, addressCount = 0;
  for (const ServicePortInput* in : inputs) {
    backendCount += in->backends.size();
    addressCount += in->addresses.size();
  }
  t->ports_.reserve(inputs.size());
  t->backends_.reserve(backendCount);
  t->addresses_.reserve(addressCount);
  // Ports with the same tables (the ports of a multi-port service, listed together) share an
  // index; so do a port's two tables when every usable backend is local.
  auto tableFor = [&](const MaglevCache::Table& table) -> int32_t {
    if (!table || table->size == 0) return -1;
    const size_t n = t->tables_.size();
    for (size_t back = 1; back <= 4 && back <= n; ++back)
      if (t->tables_[n - back] == table) return static_cast<int32_t>(n - back);
    t->tables_.push_back(table);
    return static_cast<int32_t>(n);
  };
  for (const ServicePortInput* in : inputs) {
    if (in->backends.size() > 65535)
      return invalidArgument("services: more than 65535 backends on one service port");
    ServicePortEntry e{};
    e.id = in->id;
    e.proto = in->proto;
    e.flags = in->flags;
    e.affinityTimeoutMs = in->affinityTimeoutMs;
    e.backendsOffset = static_cast<uint32_t>(t->backends_.size());
    e.backendCount = static_cast<uint32_t>(in->backends.size());
    for (const auto& b : in->backends) t->backends_.push_back(b.backend);
    e.tableAll = tableFor(in->tableAll);
    e.tableLocal = tableFor(in->tableLocal);
    const auto index = static_cast<uint32_t>(t->ports_.size());
    t->ports_.push_back(e);
    for (const auto& a : in->addresses) {
      const LookupKey key{a.ip, a.port, in->proto, 0};
      uint64_t bits;
      std::memcpy(&bits, &key, sizeof(bits));
      t->addresses_.push_back(AddressEntry{
          bits, static_cast<uintptr_t>(index) << 2 | static_cast<uintptr_t>(a.access)});
    }
  }
  if (previous != nullptr && previous->addresses_ == t->addresses_) {
    t->lookup_ = previous->lookup_;  // same addresses, same ports: the lookup is unchanged
    return std::shared_ptr<const ServiceTable>(std::move(t));
  }
  const std::string name = "np_svc_" + std::to_string(tableSequence.fetch_add(1));
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = std::max<uint32_t>(64, static_cast<uint32_t>(addressCount * 2));
  params.key_len = sizeof(LookupKey);
  params.hash_func = rte_hash_crc;
  params.socket_id = socketId;
  rte_hash* h = rte_hash_create(&params);
  if (h == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("services: rte_hash_create: ") + rte_strerror(rte_errno));
  t->lookup_ = std::shared_ptr<rte_hash>(h, rte_hash_free);
  for (const AddressEntry& a : t->addresses_)
    if (rte_hash_add_key_data(h, &a.key, reinterpret_cast<void*>(a.value)) < 0)
      return makeError(ErrorCode::kResourceExhausted, "services: lookup table full");
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
  rte_hash_lookup_bulk_data(lookup_.get(), keyPtrs, n, &mask, data);
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
  if (rte_hash_lookup_data(lookup_.get(), &key, &data) < 0) return false;
  const auto v = reinterpret_cast<uintptr_t>(data);
  *portIndex = static_cast<uint32_t>(v >> 2);
  *access = static_cast<ServiceAccess>(v & 3);
  return true;
}

}  // namespace nodeplane::lb
