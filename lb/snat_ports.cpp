#include "lb/snat_ports.h"

#include <rte_hash_crc.h>

#include <algorithm>

namespace nodeplane::lb {

bool SnatPorts::allocate(const ConnShard& own, FlowKey* reply, uint32_t hash, unsigned worker,
                         unsigned workers, uint32_t nowMs, uint16_t first, uint16_t last) {
  // The group: the reply tuple without the port being chosen.
  const uint32_t groupHash = rte_hash_crc_4byte(
      reply->dst,
      rte_hash_crc_4byte(reply->src, static_cast<uint32_t>(reply->sport) << 8 | reply->proto));
  Exhausted& cached = exhausted_[groupHash % kCacheSize];
  const bool sameGroup = cached.valid && cached.farIp == reply->src &&
                         cached.snatIp == reply->dst && cached.farPort == reply->sport &&
                         cached.proto == reply->proto;
  if (sameGroup && static_cast<int32_t>(cached.untilMs - nowMs) > 0) return false;

  workers = std::max(1u, workers);
  const uint32_t span = last >= first ? (uint32_t{last} - first + 1) / workers : 0;
  if (span == 0) return false;
  for (uint32_t attempt = 0; attempt < kAttempts; ++attempt) {
    const uint32_t k = (hash + attempt * 40503u) % span;
    reply->dport = rte_cpu_to_be_16(static_cast<uint16_t>(first + k * workers + worker));
    ConnRef r;
    if (!own.lookup(*reply, &r)) {
      if (sameGroup) cached.valid = false;  // ports came back
      return true;
    }
  }
  cached = Exhausted{reply->src, reply->dst, reply->sport, reply->proto, true, nowMs + kRetryMs};
  return false;
}

}  // namespace nodeplane::lb
