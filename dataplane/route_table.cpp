#include "dataplane/route_table.h"

#include <rte_errno.h>
#include <rte_fib.h>

#include <atomic>

namespace nodeplane::dataplane {

namespace {
std::atomic<uint64_t> fibSequence{0};
// DIR-24-8 keeps an 8-bit-indexed group per prefix longer than /24 that needs one; pods are /32.
constexpr uint32_t kTbl8Groups = 8192;
}  // namespace

RouteTable::~RouteTable() {
  rte_fib_free(fib_);
}

void RouteTable::lookup(const uint32_t* ips, uint64_t* nextHopIndex, unsigned n) const {
  rte_fib_lookup_bulk(fib_, const_cast<uint32_t*>(ips), nextHopIndex, static_cast<int>(n));
}

RouteTableBuilder::RouteTableBuilder() {
  nextHops_.push_back(NextHop{});
}

uint32_t RouteTableBuilder::addNextHop(const NextHop& nh) {
  nextHops_.push_back(nh);
  return static_cast<uint32_t>(nextHops_.size() - 1);
}

void RouteTableBuilder::addRoute(Ipv4Prefix prefix, uint32_t nextHopIndex) {
  routes_.push_back(Route{prefix, nextHopIndex});
}

Result<std::shared_ptr<const RouteTable>> RouteTableBuilder::build(int socketId) && {
  if (nextHops_.size() > RouteTable::kMaxNextHops)
    return makeError(ErrorCode::kResourceExhausted,
                     "route table: " + std::to_string(nextHops_.size()) +
                         " next hops exceed the limit of " +
                         std::to_string(RouteTable::kMaxNextHops));
  rte_fib_conf conf{};
  conf.type = RTE_FIB_DIR24_8;
  conf.default_nh = RouteTable::kNoRouteIndex;
  conf.max_routes = static_cast<int>(routes_.size() + 16);
  conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
  conf.dir24_8.num_tbl8 = kTbl8Groups;
  std::string name = "np_fib_" + std::to_string(fibSequence.fetch_add(1));
  rte_fib* fib = rte_fib_create(name.c_str(), socketId, &conf);
  if (fib == nullptr)
    return makeError(ErrorCode::kResourceExhausted,
                     std::string("route table: rte_fib_create failed: ") + rte_strerror(rte_errno));
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->fib_ = fib;
  for (const Route& r : routes_) {
    int rc = rte_fib_add(fib, r.prefix.address.value, r.prefix.length, r.nextHop);
    if (rc < 0)
      return makeError(ErrorCode::kResourceExhausted, "route table: adding " + r.prefix.toString() +
                                                          " failed: " + rte_strerror(-rc));
  }
  table->nextHops_ = std::move(nextHops_);
  table->routeCount_ = routes_.size();
  return std::shared_ptr<const RouteTable>(std::move(table));
}

}  // namespace nodeplane::dataplane
