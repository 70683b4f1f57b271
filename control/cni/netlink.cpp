#include "control/cni/netlink.h"

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

namespace nodeplane::cni {

namespace {

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct RtAddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct RouteDeleter {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;
using Addr = std::unique_ptr<nl_addr, AddrDeleter>;

Error nlError(const std::string& what, int err) {
  return makeError(ErrorCode::kInternal, what + ": " + nl_geterror(err));
}

Result<Sock> connect() {
  Sock sock(nl_socket_alloc());
  if (!sock) return makeError(ErrorCode::kInternal, "netlink: out of memory");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0)
    return nlError("netlink connect", err);
  return sock;
}

Result<Link> fetchLink(nl_sock* sock, const std::string& name) {
  rtnl_link* link = nullptr;
  if (int err = rtnl_link_get_kernel(sock, 0, name.c_str(), &link); err < 0)
    return makeError(
        err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV ? ErrorCode::kNotFound : ErrorCode::kInternal,
        "link " + name + ": " + nl_geterror(err));
  return Link(link);
}

Addr makeAddr(uint32_t hostOrder, uint8_t prefixLength) {
  uint32_t be = htonl(hostOrder);
  Addr addr(nl_addr_build(AF_INET, &be, sizeof(be)));
  if (addr) nl_addr_set_prefixlen(addr.get(), prefixLength);
  return addr;
}

}  // namespace

Result<std::unique_ptr<NetnsScope>> NetnsScope::enter(const std::string& netnsPath) {
  int original = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0)
    return makeError(ErrorCode::kInternal, std::string("open own netns: ") + strerror(errno));
  int target = ::open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    ::close(original);
    return makeError(ErrorCode::kNotFound,
                     "network namespace " + netnsPath + ": " + strerror(errno));
  }
  int rc = ::setns(target, CLONE_NEWNET);
  int saved = errno;
  ::close(target);
  if (rc != 0) {
    ::close(original);
    return makeError(ErrorCode::kInternal,
                     "entering network namespace " + netnsPath + ": " + strerror(saved));
  }
  return std::unique_ptr<NetnsScope>(new NetnsScope(original));
}

NetnsScope::~NetnsScope() {
  (void)::setns(original_, CLONE_NEWNET);
  ::close(original_);
}

Result<LinkInfo> getLink(const std::string& name) {
  auto sock = connect();
  if (!sock) return sock.error();
  auto link = fetchLink(sock->get(), name);
  if (!link) return link.error();
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(link->get());
  info.mtu = rtnl_link_get_mtu(link->get());
  info.up = rtnl_link_get_flags(link->get()) & IFF_UP;
  if (nl_addr* a = rtnl_link_get_addr(link->get()); a && nl_addr_get_len(a) == 6)
    std::memcpy(info.mac.bytes.data(), nl_addr_get_binary_addr(a), 6);
  return info;
}

bool linkExists(const std::string& name) {
  return getLink(name).ok();
}

Status createVethPair(const std::string& hostName, const std::string& peerName, int netnsFd,
                      unsigned mtu) {
  auto sock = connect();
  if (!sock) return sock.error();
  Link veth(rtnl_link_veth_alloc());
  if (!veth) return makeError(ErrorCode::kInternal, "netlink: out of memory");
  rtnl_link_set_name(veth.get(), hostName.c_str());
  rtnl_link_set_mtu(veth.get(), mtu);
  rtnl_link* peer = rtnl_link_veth_get_peer(veth.get());
  rtnl_link_set_name(peer, peerName.c_str());
  rtnl_link_set_mtu(peer, mtu);
  rtnl_link_set_ns_fd(peer, netnsFd);
  rtnl_link_put(peer);
  int err = rtnl_link_add(sock->get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0)
    return makeError(err == -NLE_EXIST ? ErrorCode::kAlreadyExists : ErrorCode::kInternal,
                     "creating veth " + hostName + " / " + peerName + ": " + nl_geterror(err));
  return okStatus();
}

Status setLinkUp(const std::string& name, unsigned mtu) {
  auto sock = connect();
  if (!sock) return sock.error();
  auto link = fetchLink(sock->get(), name);
  if (!link) return link.error();
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (mtu != 0) rtnl_link_set_mtu(change.get(), mtu);
  if (int err = rtnl_link_change(sock->get(), link->get(), change.get(), 0); err < 0)
    return nlError("setting " + name + " up", err);
  return okStatus();
}

Status deleteLink(const std::string& name) {
  auto sock = connect();
  if (!sock) return sock.error();
  auto link = fetchLink(sock->get(), name);
  if (!link) return link.error().code == ErrorCode::kNotFound ? okStatus() : Status(link.error());
  if (int err = rtnl_link_delete(sock->get(), link->get());
      err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV)
    return nlError("deleting " + name, err);
  return okStatus();
}

Status addAddress(const std::string& linkName, Ipv4Prefix address) {
  auto sock = connect();
  if (!sock) return sock.error();
  auto link = fetchLink(sock->get(), linkName);
  if (!link) return link.error();
  std::unique_ptr<rtnl_addr, RtAddrDeleter> addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), rtnl_link_get_ifindex(link->get()));
  Addr local = makeAddr(address.address.value, address.length);
  rtnl_addr_set_local(addr.get(), local.get());
  if (int err = rtnl_addr_add(sock->get(), addr.get(), 0); err < 0 && err != -NLE_EXIST)
    return nlError("adding " + address.toString() + " to " + linkName, err);
  return okStatus();
}

Status addRoute(const std::string& linkName, Ipv4Prefix dst, std::optional<Ipv4Address> gateway,
                std::optional<Ipv4Address> source) {
  auto sock = connect();
  if (!sock) return sock.error();
  auto link = fetchLink(sock->get(), linkName);
  if (!link) return link.error();
  std::unique_ptr<rtnl_route, RouteDeleter> route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_scope(route.get(), gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  Addr dstAddr = makeAddr(dst.address.value, dst.length);
  rtnl_route_set_dst(route.get(), dstAddr.get());
  Addr sourceAddr = source ? makeAddr(source->value, 32) : Addr{};
  if (source && rtnl_route_set_pref_src(route.get(), sourceAddr.get()) < 0)
    return makeError(ErrorCode::kInternal, "adding route " + dst.toString() + ": source address");
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, rtnl_link_get_ifindex(link->get()));
  if (gateway) {
    Addr gw = makeAddr(gateway->value, 32);
    rtnl_route_nh_set_gateway(nh, gw.get());
  }
  rtnl_route_add_nexthop(route.get(), nh);  // the route owns nh now
  if (int err = rtnl_route_add(sock->get(), route.get(), NLM_F_CREATE | NLM_F_EXCL);
      err < 0 && err != -NLE_EXIST)
    return nlError("adding route " + dst.toString() + " on " + linkName, err);
  return okStatus();
}

bool hasAddress(const std::string& linkName, Ipv4Address address) {
  auto sock = connect();
  if (!sock) return false;
  auto link = fetchLink(sock->get(), linkName);
  if (!link) return false;
  nl_cache* raw = nullptr;
  if (rtnl_addr_alloc_cache(sock->get(), &raw) < 0) return false;
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  const int index = rtnl_link_get_ifindex(link->get());
  const uint32_t be = htonl(address.value);
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    nl_addr* local = rtnl_addr_get_local(a);
    if (rtnl_addr_get_ifindex(a) == index && rtnl_addr_get_family(a) == AF_INET && local &&
        nl_addr_get_len(local) == 4 && std::memcmp(nl_addr_get_binary_addr(local), &be, 4) == 0)
      return true;
  }
  return false;
}

bool hasRoute(const std::string& linkName, Ipv4Prefix dst, std::optional<Ipv4Address> gateway) {
  auto sock = connect();
  if (!sock) return false;
  auto link = fetchLink(sock->get(), linkName);
  if (!link) return false;
  nl_cache* raw = nullptr;
  if (rtnl_route_alloc_cache(sock->get(), AF_INET, 0, &raw) < 0) return false;
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  const int index = rtnl_link_get_ifindex(link->get());
  const uint32_t dstBe = htonl(dst.address.value);
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN) continue;
    nl_addr* d = rtnl_route_get_dst(r);
    const unsigned len = d ? nl_addr_get_prefixlen(d) : 0;
    if (len != dst.length) continue;
    if (len > 0 &&
        (nl_addr_get_len(d) != 4 || std::memcmp(nl_addr_get_binary_addr(d), &dstBe, 4) != 0))
      continue;
    if (rtnl_route_get_nnexthops(r) < 1) continue;
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
    if (rtnl_route_nh_get_ifindex(nh) != index) continue;
    nl_addr* gw = rtnl_route_nh_get_gateway(nh);
    if (!gateway) return gw == nullptr;
    const uint32_t gwBe = htonl(gateway->value);
    if (gw && nl_addr_get_len(gw) == 4 && std::memcmp(nl_addr_get_binary_addr(gw), &gwBe, 4) == 0)
      return true;
  }
  return false;
}

namespace {

// An SIOCETHTOOL request on `link` (data: the ethtool command struct).
int ethtoolIoctl(const std::string& link, void* data) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, link.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = static_cast<char*>(data);
  const int rc = ::ioctl(fd, SIOCETHTOOL, &ifr);
  const int saved = errno;
  ::close(fd);
  return rc == 0 ? 0 : saved;
}

}  // namespace

Status disableFeature(const std::string& link, const std::string& feature) {
  auto failed = [&](const char* step, int err) {
    return makeError(ErrorCode::kInternal,
                     "turning " + feature + " off on " + link + ": " + step + ": " + strerror(err));
  };
  // The feature's bit: its index among the device's feature names.
  alignas(ethtool_sset_info) uint8_t ssetBuffer[sizeof(ethtool_sset_info) + sizeof(uint32_t)] = {};
  auto* sset = reinterpret_cast<ethtool_sset_info*>(ssetBuffer);
  sset->cmd = ETHTOOL_GSSET_INFO;
  sset->sset_mask = 1ULL << ETH_SS_FEATURES;
  if (int err = ethtoolIoctl(link, sset)) return failed("ETHTOOL_GSSET_INFO", err);
  uint32_t count = 0;
  if (sset->sset_mask != 0)
    std::memcpy(&count, ssetBuffer + sizeof(ethtool_sset_info), sizeof(count));
  std::vector<uint8_t> strings(sizeof(ethtool_gstrings) + size_t{count} * ETH_GSTRING_LEN);
  auto* names = reinterpret_cast<ethtool_gstrings*>(strings.data());
  names->cmd = ETHTOOL_GSTRINGS;
  names->string_set = ETH_SS_FEATURES;
  names->len = count;
  if (int err = ethtoolIoctl(link, names)) return failed("ETHTOOL_GSTRINGS", err);
  uint32_t bit = count;
  for (uint32_t i = 0; i < count; ++i) {
    const char* name = reinterpret_cast<const char*>(names->data) + size_t{i} * ETH_GSTRING_LEN;
    if (feature == std::string(name, strnlen(name, ETH_GSTRING_LEN))) bit = i;
  }
  if (bit == count) return okStatus();  // the kernel does not know it: nothing to turn off
  const uint32_t blocks = (count + 31) / 32;
  std::vector<uint8_t> request(sizeof(ethtool_sfeatures) +
                               blocks * sizeof(ethtool_set_features_block));
  auto* set = reinterpret_cast<ethtool_sfeatures*>(request.data());
  set->cmd = ETHTOOL_SFEATURES;
  set->size = blocks;
  set->features[bit / 32].valid = 1U << (bit % 32);
  set->features[bit / 32].requested = 0;
  if (int err = ethtoolIoctl(link, set)) return failed("ETHTOOL_SFEATURES", err);
  return okStatus();
}

Status writeSysctl(const std::string& key, const std::string& value) {
  std::ofstream f("/proc/sys/" + key);
  if (!f) return okStatus();  // e.g. IPv6 disabled in this kernel
  f << value;
  if (!f) return makeError(ErrorCode::kInternal, "writing sysctl " + key);
  return okStatus();
}

}  // namespace nodeplane::cni
