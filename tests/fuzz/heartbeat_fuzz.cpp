// Fuzz target: gateway heartbeats and export announcements (control/heartbeat.h) as a peer or
// the underlay may send any bytes to the heartbeat port. Decoding never reads past the payload
// (copied to a buffer of exactly its size, for ASan); what decodes encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "control/heartbeat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto payload = std::make_unique<uint8_t[]>(size == 0 ? 1 : size);
  if (size) std::memcpy(payload.get(), data, size);
  std::vector<uint8_t> again;
  if (auto hb = nodeplane::control::decodeHeartbeat(payload.get(), size))
    again = nodeplane::control::encodeHeartbeat(*hb);
  else if (auto a = nodeplane::control::decodeAnnouncement(payload.get(), size))
    again = nodeplane::control::encodeAnnouncement(*a);
  else
    return 0;
  if (again.size() != size || std::memcmp(again.data(), payload.get(), size) != 0) std::abort();
  return 0;
}
