// Fuzz target: gateway heartbeats (control/heartbeat.h) as a peer or the underlay may send any
// bytes to the heartbeat port. Decoding never reads past the payload (copied to a buffer of
// exactly its size, for ASan); what decodes encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "control/heartbeat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto payload = std::make_unique<uint8_t[]>(size == 0 ? 1 : size);
  if (size) std::memcpy(payload.get(), data, size);
  auto hb = nodeplane::control::decodeHeartbeat(payload.get(), size);
  if (!hb) return 0;
  const auto again = nodeplane::control::encodeHeartbeat(*hb);
  if (again.size() != size || std::memcmp(again.data(), payload.get(), size) != 0) std::abort();
  return 0;
}
