// Fuzz target: the cluster DNS responder on any message a pod can send (dns/responder.h), over
// UDP and TCP limits, and the decoder npctl uses on what it answers (dns/present.h). Nothing may
// read past the message (it is copied to a buffer of exactly its size, for ASan), an answer
// never exceeds its size limit, and every answer decodes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dns/present.h"
#include "dns/responder.h"

namespace {

using namespace nodeplane::dns;

const Zone& zone() {
  static const Zone z = [] {
    ZoneService web{"backend", "web", {0x0a60001e}, {{"http", 6, 80}, {"dns", 17, 53}}, {}, ""};
    ZoneService db{"backend", "db", {}, {{"pg", 6, 5432}}, {}, ""};
    for (uint32_t i = 0; i < 40; ++i)
      db.endpoints.push_back(
          {0x0af40100u + i, i == 0 ? "db-0" : "", i % 7 != 3, {{"pg", 6, 5432}}});
    ZoneService ext{"backend", "ext", {}, {}, {}, "outside.example"};
    return Zone(ZoneConfig{}, {web, db, ext});
  }();
  return z;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto msg = std::make_unique<uint8_t[]>(size == 0 ? 1 : size);
  if (size) std::memcpy(msg.get(), data, size);
  for (bool tcp : {false, true}) {
    std::vector<uint8_t> out(tcp ? 65535 : kMaxUdpSize);
    const Response r = respond(msg.get(), size, zone(), tcp, out.data(), out.size());
    if (r.length > out.size()) std::abort();
    if (r.length == 0) continue;
    if (!tcp && r.length > kMaxUdpSize) std::abort();
    if (!present(out.data(), r.length)) std::abort();  // everything we say decodes
  }
  (void)present(msg.get(), size);
  return 0;
}
