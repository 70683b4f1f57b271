// MacAddress (core/ipv4.h, no DPDK) and DPDK's rte_ether_addr, converted both ways.
#pragma once

#include <rte_ether.h>

#include <cstring>

#include "core/ipv4.h"

namespace nodeplane {

inline rte_ether_addr toEther(const MacAddress& m) {
  rte_ether_addr e;
  std::memcpy(e.addr_bytes, m.bytes.data(), 6);
  return e;
}

inline MacAddress fromEther(const rte_ether_addr& e) {
  MacAddress m;
  std::memcpy(m.bytes.data(), e.addr_bytes, 6);
  return m;
}

}  // namespace nodeplane
