// The kernel network operations nodeplane-cni needs, over rtnetlink (libnl-route): veth pairs
// with one end created straight in the pod's network namespace, addresses, routes, link state,
// and ethtool feature switches. Everything returns Result; nothing here throws.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/ipv4.h"
#include "core/result.h"

namespace nodeplane::cni {

// Enters a network namespace for the lifetime of the object (this thread only), and returns
// to the original one on destruction.
class NetnsScope {
 public:
  static Result<std::unique_ptr<NetnsScope>> enter(const std::string& netnsPath);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  NetnsScope(int original) : original_(original) {}
  int original_;
};

struct LinkInfo {
  int index = 0;
  MacAddress mac;
  unsigned mtu = 0;
  bool up = false;
};

// All functions act in the network namespace the calling thread is in.
Result<LinkInfo> getLink(const std::string& name);
bool linkExists(const std::string& name);
// Creates hostName here and its peer peerName inside the namespace open as netnsFd.
Status createVethPair(const std::string& hostName, const std::string& peerName, int netnsFd,
                      unsigned mtu);
Status setLinkUp(const std::string& name, unsigned mtu);  // mtu 0: unchanged
Status deleteLink(const std::string& name);               // missing link: ok
Status addAddress(const std::string& link, Ipv4Prefix address);
// A route to `dst` on `link`: via `gateway` when given, else scope link; with `source` as the
// preferred source address when given.
Status addRoute(const std::string& link, Ipv4Prefix dst, std::optional<Ipv4Address> gateway,
                std::optional<Ipv4Address> source = std::nullopt);
bool hasAddress(const std::string& link, Ipv4Address address);
bool hasRoute(const std::string& link, Ipv4Prefix dst, std::optional<Ipv4Address> gateway);
// Turns the ethtool feature named `feature` (as `ethtool -k` names it) off on `link`; a feature
// the kernel does not know is left alone.
Status disableFeature(const std::string& link, const std::string& feature);
// Writes a sysctl under /proc/sys (e.g. "net/ipv6/conf/<if>/disable_ipv6"); missing: ok.
Status writeSysctl(const std::string& key, const std::string& value);

}  // namespace nodeplane::cni
