// Fuzz target: the desired-state reader, both ways the daemon reads an apply (simdjson for the
// whole line, nlohmann for anything else). Neither throws; when both read the same arguments
// they agree on the result and on the error text (the contract apply_reader_test holds them to).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "control/apply_reader.h"
#include "control/model_json.h"
#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodeplane;
  const std::string args(reinterpret_cast<const char*>(data), size);
  const std::string line = R"({"v":1,"id":1,"op":"apply","args":)" + args + "}";
  auto fast = control::readApplyRequest(line);
  auto parsed = json::parse(args);
  if (!parsed || !parsed->is_object()) return 0;
  auto generic = control::desiredStateFromJson(*parsed);
  if (!fast) return 0;  // the generic path takes lines the fast one does not
  if (fast->state.ok() != generic.ok()) std::abort();
  if (!generic.ok() && fast->state.error().message != generic.error().message) std::abort();
  return 0;
}
