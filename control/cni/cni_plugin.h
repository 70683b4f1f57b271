// nodeplane-cni: a CNI plugin (spec 1.0.0; also answers 0.3.x/0.4.0 configs) that connects a pod
// to the nodeplane daemon. ADD: IPAM from the delegate (host-local), a veth pair with the pod end
// created in CNI_NETNS as CNI_IFNAME (address /32, link-local default gateway, TSO and checksum
// offload on, UDP segmentation offload off), the host end attached to the daemon as a pod port. DEL
// undoes it and succeeds when things are already gone. CHECK verifies interface, address, routes
// and the daemon's attachment.
#pragma once

#include <map>
#include <string>

namespace nodeplane::cni {

struct CniEnv {
  std::string command;      // CNI_COMMAND
  std::string containerId;  // CNI_CONTAINERID
  std::string netns;        // CNI_NETNS
  std::string ifname;       // CNI_IFNAME
  std::string args;         // CNI_ARGS
  std::string path;         // CNI_PATH

  static CniEnv fromProcess();
};

struct CniOutcome {
  int exitCode = 0;
  std::string stdoutText;  // result or error JSON (empty for a successful DEL)
};

CniOutcome runCni(const CniEnv& env, const std::string& stdinText);

// "np" + 13 hex digits of a hash of (containerId, ifname): stable, so DEL finds it again.
std::string hostInterfaceName(const std::string& containerId, const std::string& ifname);
// "K=V;K=V" -> map; malformed pairs are skipped.
std::map<std::string, std::string> parseCniArgs(const std::string& args);

}  // namespace nodeplane::cni
