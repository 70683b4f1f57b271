#include "control/node_validation.h"

#include <algorithm>

#include "core/names.h"

namespace nodeplane::control {

std::string describePod(const PodAttachment& s) {
  return "pod " + s.namespaceName + "/" + s.name + " (" + s.interface + ")";
}

Status validatePod(const PodAttachment& s, const NodeSettings& settings) {
  const std::string what = describePod(s);
  if (!isDnsLabel(s.namespaceName))
    return invalidArgument(what + ": field 'namespace': '" + s.namespaceName +
                           "' is not a valid namespace name");
  if (!isDnsSubdomain(s.name))
    return invalidArgument(what + ": field 'name': '" + s.name + "' is not a valid pod name");
  if (s.containerId.empty() || s.containerId.size() > 256)
    return invalidArgument(what + ": field 'containerId': empty or longer than 256");
  if (!isInterfaceName(s.interface))
    return invalidArgument(what + ": field 'interface': '" + s.interface +
                           "' is not an interface name");
  if (s.hostInterface.empty() == s.devargs.empty())
    return invalidArgument(what + ": exactly one of 'hostInterface' and 'devargs' is required");
  if (!s.hostInterface.empty() && !isInterfaceName(s.hostInterface))
    return invalidArgument(what + ": field 'hostInterface': '" + s.hostInterface +
                           "' is not an interface name");
  if (!settings.podCidr.contains(s.ip))
    return invalidArgument(what + ": field 'ip': " + s.ip.toString() +
                           " is outside this node's pod CIDR " + settings.podCidr.toString());
  if (s.ip == settings.podCidr.address ||
      s.ip.value == (settings.podCidr.address.value | ~settings.podCidr.mask()))
    return invalidArgument(what + ": field 'ip': " + s.ip.toString() +
                           " is the network or broadcast address of " +
                           settings.podCidr.toString());
  if (s.mac.isZero() || s.mac.isMulticast())
    return invalidArgument(what + ": field 'mac': " + s.mac.toString() +
                           " is not a unicast MAC address");
  return okStatus();
}

Status validateNode(const NodeSpec& n, const NodeMap& among, const NodeSettings& settings,
                    bool hasUplink) {
  const std::string what = "node " + n.name;
  if (!isDnsSubdomain(n.name))
    return invalidArgument(what + ": field 'name': not a valid Kubernetes node name");
  if (n.ip.value == 0 || (n.ip.value >> 28) >= 0xe)
    return invalidArgument(what + ": field 'ip': " + n.ip.toString() + " is not a unicast address");
  if (n.vtepMac && (n.vtepMac->isZero() || n.vtepMac->isMulticast()))
    return invalidArgument(what + ": field 'vtepMac': " + n.vtepMac->toString() +
                           " is not a unicast MAC address");
  if (n.name == settings.nodeName) {  // our own entry, as the cluster sees us
    if (n.ip != settings.nodeIp)
      return invalidArgument(what + ": field 'ip': " + n.ip.toString() +
                             " but this daemon runs with --node-ip " + settings.nodeIp.toString());
    if (std::find(n.podCidrs.begin(), n.podCidrs.end(), settings.podCidr) == n.podCidrs.end())
      return invalidArgument(what + ": field 'podCidrs': does not list this daemon's --pod-cidr " +
                             settings.podCidr.toString());
    return okStatus();
  }
  if (!hasUplink)
    return invalidArgument(what + ": this daemon has no --uplink: other nodes cannot be reached");
  if (n.ip == settings.nodeIp)
    return invalidArgument(what + ": field 'ip': " + n.ip.toString() + " is this node's address");
  if (n.podCidrs.empty()) return invalidArgument(what + ": field 'podCidrs': empty");
  for (const Ipv4Prefix& c : n.podCidrs) {
    const std::string field = what + ": field 'podCidrs': " + c.toString();
    if (c.overlaps(settings.podCidr))
      return invalidArgument(field + " overlaps this node's pod CIDR " +
                             settings.podCidr.toString());
    if (settings.clusterCidr && !settings.clusterCidr->contains(c.address))
      return invalidArgument(field + " is outside the cluster CIDR " +
                             settings.clusterCidr->toString());
    if (settings.serviceCidr && c.overlaps(*settings.serviceCidr))
      return invalidArgument(field + " overlaps the service CIDR " +
                             settings.serviceCidr->toString());
    if (c.contains(settings.gatewayIp))
      return invalidArgument(field + " contains the pods' gateway " +
                             settings.gatewayIp.toString());
  }
  for (const auto& [name, other] : among) {
    if (name == n.name || name == settings.nodeName) continue;
    if (other.ip == n.ip)
      return makeError(ErrorCode::kAlreadyExists, what + ": field 'ip': " + n.ip.toString() +
                                                      " already belongs to node " + name);
    for (const Ipv4Prefix& a : n.podCidrs)
      for (const Ipv4Prefix& b : other.podCidrs)
        if (a.overlaps(b))
          return makeError(ErrorCode::kAlreadyExists, what + ": field 'podCidrs': " + a.toString() +
                                                          " overlaps " + b.toString() +
                                                          " of node " + name);
  }
  return okStatus();
}

}  // namespace nodeplane::control
