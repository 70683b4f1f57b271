// nodeplane-cni: the CNI plugin binary. Reads the network configuration on stdin and the CNI_*
// environment, prints the result or the error JSON on stdout (see cni_plugin.h).
#include <iostream>
#include <iterator>
#include <string>

#include "control/cni/cni_plugin.h"

int main() {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  auto outcome = nodeplane::cni::runCni(nodeplane::cni::CniEnv::fromProcess(), input);
  std::cout << outcome.stdoutText << std::flush;
  return outcome.exitCode;
}
