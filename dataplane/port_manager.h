// Brings DPDK ports up and down on the control thread: probe/hot-plug by devargs, one RX queue
// and one TX queue per worker (RSS with a symmetric key when a port has several RX queues),
// start; and the reverse. Workers never call into it.
#pragma once

#include <rte_mempool.h>

#include <string>

#include "core/result.h"
#include "dataplane/dataplane_backend.h"

namespace nodeplane::dataplane {

struct PortSettings {
  uint16_t rxDescriptors = 1024;
  uint16_t txDescriptors = 1024;
};

class PortManager {
 public:
  PortManager(rte_mempool* pool, uint16_t workers, PortSettings settings)
      : pool_(pool), workers_(workers), settings_(settings) {}

  Result<PortInfo> open(const std::string& devargs);
  void close(uint16_t port);

  // The ethdev name a devargs string creates ("net_af_packet0,iface=x" -> "net_af_packet0").
  static std::string deviceName(const std::string& devargs);

 private:
  Result<PortInfo> configure(uint16_t port);

  rte_mempool* pool_;
  uint16_t workers_;
  PortSettings settings_;
};

}  // namespace nodeplane::dataplane
