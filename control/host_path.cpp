#include "control/host_path.h"

#include <fcntl.h>
#include <unistd.h>

#include "control/cni/netlink.h"

namespace nodeplane::control {

Result<HostPathLinks> createHostPathLinks(const HostPathConfig& config) {
  if (auto st = validateHostInterfaceName(config.kernelInterface); !st) return st.error();
  HostPathLinks links{config.kernelInterface, hostPathPeerName(config.kernelInterface), {}};
  // A pair left by a daemon that did not stop cleanly: start afresh (deleting one end deletes
  // both).
  if (auto st = cni::deleteLink(links.kernelInterface); !st) return st.error();
  if (auto st = cni::deleteLink(links.ourInterface); !st) return st.error();
  const int ownNetns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (ownNetns < 0)
    return makeError(ErrorCode::kUnavailable, "host path: cannot open /proc/self/ns/net");
  Status made =
      cni::createVethPair(links.ourInterface, links.kernelInterface, ownNetns, config.mtu);
  ::close(ownNetns);
  if (!made) return makeError(made.error().code, "host path: " + made.error().message);
  for (const std::string& link : {links.kernelInterface, links.ourInterface}) {
    // No IPv6 on either end: router solicitations and DAD would only be dropped by us.
    (void)cni::writeSysctl("net/ipv6/conf/" + link + "/disable_ipv6", "1");
    if (auto st = cni::setLinkUp(link, config.mtu); !st) {
      removeHostPath(links.kernelInterface);
      return makeError(st.error().code, "host path: " + st.error().message);
    }
  }
  auto info = cni::getLink(links.kernelInterface);
  if (!info) {
    removeHostPath(links.kernelInterface);
    return makeError(info.error().code, "host path: " + info.error().message);
  }
  links.kernelMac = info->mac;
  return links;
}

Status addHostPathRoutes(const HostPathConfig& config) {
  const std::string& link = config.kernelInterface;
  if (config.defaultRoute && !cni::hasAddress(link, config.nodeIp))
    if (auto st = cni::addAddress(link, Ipv4Prefix{config.nodeIp, 32}); !st)
      return makeError(st.error().code, "host path: " + st.error().message);
  if (auto st = cni::addRoute(link, Ipv4Prefix{config.gatewayIp, 32}, std::nullopt); !st)
    return makeError(st.error().code, "host path: " + st.error().message);
  if (config.defaultRoute)
    if (auto st =
            cni::addRoute(link, Ipv4Prefix{Ipv4Address{0}, 0}, config.gatewayIp, config.nodeIp);
        !st)
      return makeError(st.error().code,
                       "host path: the node's default route: " + st.error().message +
                           " (--host-default-route is for a node whose only NIC is the uplink; "
                           "this one has a default route already)");
  for (const Ipv4Prefix& prefix : config.prefixes)
    if (auto st = cni::addRoute(link, prefix, config.gatewayIp, config.nodeIp); !st)
      return makeError(st.error().code, "host path: " + st.error().message + " (the node address " +
                                            config.nodeIp.toString() +
                                            " must be one of the kernel's own)");
  return okStatus();
}

void removeHostPath(const std::string& kernelInterface) {
  (void)cni::deleteLink(kernelInterface);
}

}  // namespace nodeplane::control
