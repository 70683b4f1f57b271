// Fuzz target: the CNI plugin's reading of its network configuration (stdin) and environment.
// Input: four lines (CNI_CONTAINERID, CNI_IFNAME, CNI_ARGS, command selector) then the config.
// The commands are those that fail before touching the system here (ADD into a network namespace
// that does not exist, VERSION, unknown ones); every outcome is a spec result or error, never a
// crash.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "control/cni/cni_plugin.h"
#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nodeplane;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  cni::CniEnv env;
  std::string selector;
  std::getline(in, env.containerId);
  std::getline(in, env.ifname);
  std::getline(in, env.args);
  std::getline(in, selector);
  const char* commands[] = {"ADD", "VERSION", "FROB", ""};
  env.command = commands[selector.empty() ? 0 : static_cast<unsigned char>(selector[0]) % 4];
  env.netns = "/nonexistent/np-fuzz-netns";
  env.path = "/nonexistent/np-fuzz-cni";
  const std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  cni::CniOutcome out = cni::runCni(env, config);
  if (!out.stdoutText.empty() && !json::parse(out.stdoutText)) std::abort();
  return 0;
}
