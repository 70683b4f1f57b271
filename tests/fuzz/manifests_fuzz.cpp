// Fuzz target: the agent's reading of manifests (YAML or JSON, several documents) and their
// translation into a node's desired state. Nothing throws, crashes, or expands without bound
// (aliases, nesting).
#include <cstdint>
#include <string>

#include "control/agent/cluster_state.h"
#include "control/agent/manifests.h"
#include "control/agent/translate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodeplane::agent;
  const std::string text(reinterpret_cast<const char*>(data), size);
  LoadedObjects loaded = parseManifests(text, "fuzz.yaml");
  ClusterState state;
  state.replaceSource("fuzz", loaded.objects);
  Translation t = translate(state);
  (void)t.args.dump(-1, ' ', false, Json::error_handler_t::replace);
  return 0;
}
