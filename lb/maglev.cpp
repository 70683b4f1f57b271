#include "lb/maglev.h"

#include <algorithm>
#include <limits>

namespace nodeplane::lb {

namespace {

// FNV-1a over the identity, then a splitmix64 finaliser with a seed: cheap, deterministic and
// well mixed. Two seeds give the independent offset and skip hashes the paper asks for.
uint64_t hashId(const std::string& id, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (unsigned char c : id) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h += 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

constexpr uint64_t kOffsetSeed = 0x6e6f6465706c616eull;  // "nodeplan"
constexpr uint64_t kSkipSeed = 0x6d61676c65760001ull;    // "maglev"

}  // namespace

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; static_cast<uint64_t>(d) * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

MaglevPermutation maglevPermutation(const std::string& id, uint32_t size) {
  return MaglevPermutation{hashId(id, kOffsetSeed) % size, hashId(id, kSkipSeed) % (size - 1) + 1};
}

bool buildMaglevTable(const std::vector<MaglevBackend>& backends, uint32_t size, uint16_t* table) {
  struct Candidate {
    uint32_t skip, position;  // position: (offset + next * skip) mod size, kept incrementally
    uint32_t weight, index;
    uint64_t credit;  // weighted turns: a backend places an entry each time credit reaches max
  };
  // Backends are few (a service port's endpoints): the candidates live on the stack up to 64.
  constexpr size_t kInline = 64;
  Candidate inlineCands[kInline];
  std::vector<Candidate> heapCands;
  Candidate* cands = inlineCands;
  if (backends.size() > kInline) {
    heapCands.resize(backends.size());
    cands = heapCands.data();
  }
  size_t count = 0;
  uint32_t maxWeight = 0;
  for (uint32_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0) continue;
    const MaglevPermutation p = maglevPermutation(backends[i].id, size);
    cands[count++] = Candidate{static_cast<uint32_t>(p.skip), static_cast<uint32_t>(p.offset),
                               backends[i].weight, i, 0};
    maxWeight = std::max(maxWeight, backends[i].weight);
  }
  if (count == 0) return false;
  if (count == 1) {  // its preference list visits every slot (size is prime): all of them are its
    std::fill(table, table + size, static_cast<uint16_t>(cands[0].index));
    return true;
  }
  constexpr uint16_t kEmpty = std::numeric_limits<uint16_t>::max();
  std::fill(table, table + size, kEmpty);
  // Each round every backend earns its weight in credit; one with at least maxWeight credit
  // claims its next preferred empty slot. Equal weights reduce to the paper's round robin. The
  // preference list is walked by adding skip modulo size (no division per probe).
  auto advance = [size](Candidate& c) {
    c.position += c.skip;
    if (c.position >= size) c.position -= size;
  };
  uint32_t filled = 0;
  while (true) {
    for (size_t k = 0; k < count; ++k) {
      Candidate& c = cands[k];
      c.credit += c.weight;
      if (c.credit < maxWeight) continue;
      c.credit -= maxWeight;
      while (table[c.position] != kEmpty) advance(c);
      table[c.position] = static_cast<uint16_t>(c.index);
      advance(c);
      if (++filled == size) return true;
    }
  }
}

std::vector<uint16_t> buildMaglevTable(const std::vector<MaglevBackend>& backends, uint32_t size) {
  std::vector<uint16_t> table(size);
  if (!buildMaglevTable(backends, size, table.data())) table.clear();
  return table;
}

uint32_t maglevSizeFor(size_t backends, uint32_t maxSize) {
  // A ladder of primes, each about twice the last: a table grows or shrinks only when the backend
  // count crosses a step, and at least 100 entries per backend keep Maglev's disruption small.
  static constexpr uint32_t kLadder[] = {251,   509,   1021,   2039,   4093,   8191,   16381,
                                         32749, 65521, 131071, 262139, 524287, 1000003};
  for (uint32_t p : kLadder)
    if (p >= maxSize || static_cast<uint64_t>(p) >= 100 * static_cast<uint64_t>(backends))
      return std::min(p, maxSize);
  return maxSize;
}

uint32_t maglevDifferences(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b,
                           const std::vector<MaglevBackend>& backendsA,
                           const std::vector<MaglevBackend>& backendsB) {
  uint32_t moved = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (backendsA[a[i]].id != backendsB[b[i]].id) ++moved;
  return moved;
}

}  // namespace nodeplane::lb
