// Maglev consistent hashing (Eisenbud et al., NSDI 2016) as a pure, deterministic builder: the same
// backends (identity and weight) and table size give the same table on every node and every run.
// Backend identity is hashed with fixed seeds; nothing depends on order of insertion beyond the
// backends' order in the input (sorted by the caller for stability across nodes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nodeplane::lb {

struct MaglevBackend {
  std::string id;       // stable identity, e.g. "10.244.1.5:8080"
  uint32_t weight = 1;  // relative share of table entries; 0: not placed
  bool operator==(const MaglevBackend&) const = default;
};

// Default and bounds for the table size (must be prime, larger than the backend count).
inline constexpr uint32_t kMaglevDefaultSize = 16381;
inline constexpr uint32_t kMaglevMinSize = 7;
inline constexpr uint32_t kMaglevMaxSize = 1000003;

bool isPrime(uint32_t n);

// A backend's preference list over the table: slot j is (offset + j * skip) mod size.
struct MaglevPermutation {
  uint64_t offset;
  uint64_t skip;
};
MaglevPermutation maglevPermutation(const std::string& id, uint32_t size);

// The lookup table: entry[i] is the index (into `backends`) serving hash i mod size.
// Empty when no backend has a positive weight.
std::vector<uint16_t> buildMaglevTable(const std::vector<MaglevBackend>& backends, uint32_t size);
// The same into `table` (`size` entries); false (and `table` untouched) when no backend has a
// positive weight.
bool buildMaglevTable(const std::vector<MaglevBackend>& backends, uint32_t size, uint16_t* table);

// The table size for a service port with `backends` backends: the smallest prime of a fixed ladder
// (251, 509, 1021, ... 65521, ...) with at least 100 entries per backend, at most `maxSize`
// (which wins when it is smaller). Every node computes the same size from the same backends.
uint32_t maglevSizeFor(size_t backends, uint32_t maxSize);

// Entries that differ between two tables of the same size (how many flows would move).
uint32_t maglevDifferences(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b,
                           const std::vector<MaglevBackend>& backendsA,
                           const std::vector<MaglevBackend>& backendsB);

}  // namespace nodeplane::lb
