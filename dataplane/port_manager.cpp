#include "dataplane/port_manager.h"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace nodeplane::dataplane {

namespace {

// A symmetric Toeplitz key (0x6d5a repeated): both directions of a flow hash to the same queue.
constexpr uint8_t kSymmetricRssKey[52] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d,
    0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
};

Error portError(const std::string& what, const std::string& name, int rc) {
  return makeError(ErrorCode::kInternal,
                   "port " + name + ": " + what + " failed: " + rte_strerror(rc < 0 ? -rc : rc));
}

// A virtual device whose driver is not loaded (EAL's driver directory lacks it, as in an image
// without librte-net-af-packet23) fails with EFAULT from DPDK 22.11's vdev bus ("Bad address");
// name the driver.
std::string driverHint(const std::string& name, int rc) {
  if ((rc != -EFAULT && rc != -ENOENT) || name.find(':') != std::string::npos) return "";
  const std::string driver = name.substr(0, name.find_last_not_of("0123456789") + 1);
  return " (no DPDK driver " + driver + " is loaded: is librte_" + driver +
         " in EAL's driver directory?)";
}

}  // namespace

std::string PortManager::deviceName(const std::string& devargs) {
  return devargs.substr(0, devargs.find(','));
}

Result<PortInfo> PortManager::open(const std::string& devargs) {
  const std::string name = deviceName(devargs);
  if (name.empty()) return invalidArgument("port devargs '" + devargs + "': no device name");
  uint16_t port = 0;
  bool probedHere = false;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0) {
    if (rte_eth_dev_count_avail() >= RTE_MAX_ETHPORTS)
      return makeError(ErrorCode::kResourceExhausted,
                       "port " + name + ": all " + std::to_string(RTE_MAX_ETHPORTS) +
                           " DPDK ports are in use (RTE_MAX_ETHPORTS of this DPDK build)");
    int rc = rte_dev_probe(devargs.c_str());
    if (rc != 0)
      return makeError(rc == -EEXIST ? ErrorCode::kAlreadyExists : ErrorCode::kInvalidArgument,
                       "port " + name + ": probing '" + devargs + "' failed: " + rte_strerror(-rc) +
                           driverHint(name, rc));
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0) {
      rte_eal_hotplug_remove("vdev", name.c_str());
      return makeError(ErrorCode::kInvalidArgument,
                       "port " + name + ": device '" + devargs + "' is not an ethdev");
    }
    probedHere = true;
  }
  auto info = configure(port);
  if (!info && probedHere) close(port);
  if (info) info->name = name;
  return info;
}

Result<PortInfo> PortManager::configure(uint16_t port) {
  char nameBuf[RTE_ETH_NAME_MAX_LEN] = {};
  rte_eth_dev_get_name_by_port(port, nameBuf);
  const std::string name = nameBuf;
  rte_eth_dev_info devInfo{};
  if (int rc = rte_eth_dev_info_get(port, &devInfo); rc != 0)
    return portError("rte_eth_dev_info_get", name, rc);
  if (devInfo.max_tx_queues < workers_)
    return makeError(ErrorCode::kInvalidArgument,
                     "port " + name + ": " + std::to_string(devInfo.max_tx_queues) +
                         " TX queues available, " + std::to_string(workers_) +
                         " needed (one per worker)");
  const uint16_t rxQueues = std::min<uint16_t>(workers_, devInfo.max_rx_queues);
  if (rxQueues == 0)
    return makeError(ErrorCode::kInvalidArgument, "port " + name + ": no RX queue");

  rte_eth_conf conf{};
  if (rxQueues > 1 && devInfo.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        devInfo.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (devInfo.hash_key_size <= sizeof(kSymmetricRssKey)) {
      conf.rx_adv_conf.rss_conf.rss_key = const_cast<uint8_t*>(kSymmetricRssKey);
      conf.rx_adv_conf.rss_conf.rss_key_len = devInfo.hash_key_size;
    }
  }
  // Encapsulated packets get their outer IPv4 checksum from the NIC where it can.
  const bool ipv4ChecksumOffload = devInfo.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
  if (ipv4ChecksumOffload) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
  if (int rc = rte_eth_dev_configure(port, rxQueues, workers_, &conf); rc != 0)
    return portError("rte_eth_dev_configure", name, rc);
  uint16_t rxDesc = settings_.rxDescriptors, txDesc = settings_.txDescriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rxDesc, &txDesc); rc != 0)
    return portError("rte_eth_dev_adjust_nb_rx_tx_desc", name, rc);
  const int socket = rte_eth_dev_socket_id(port);
  for (uint16_t q = 0; q < rxQueues; ++q)
    if (int rc = rte_eth_rx_queue_setup(port, q, rxDesc, socket, nullptr, pool_); rc != 0)
      return portError("rte_eth_rx_queue_setup", name, rc);
  for (uint16_t q = 0; q < workers_; ++q)
    if (int rc = rte_eth_tx_queue_setup(port, q, txDesc, socket, nullptr); rc != 0)
      return portError("rte_eth_tx_queue_setup", name, rc);
  if (int rc = rte_eth_dev_start(port); rc != 0) return portError("rte_eth_dev_start", name, rc);

  rte_ether_addr mac{};
  rte_eth_macaddr_get(port, &mac);
  PortInfo info;
  info.id = port;
  info.driver = devInfo.driver_name ? devInfo.driver_name : "";
  std::memcpy(info.mac.bytes.data(), mac.addr_bytes, 6);
  info.rxQueues = rxQueues;
  info.txQueues = workers_;
  info.txIpv4ChecksumOffload = ipv4ChecksumOffload;
  spdlog::info("port {} ({}, {}): started, mac {}, {} rx / {} tx queues", port, name, info.driver,
               info.mac.toString(), rxQueues, workers_);
  return info;
}

void PortManager::close(uint16_t port) {
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  rte_eth_dev_get_name_by_port(port, name);
  rte_eth_dev_info devInfo{};
  rte_device* device = rte_eth_dev_info_get(port, &devInfo) == 0 ? devInfo.device : nullptr;
  if (int rc = rte_eth_dev_stop(port); rc != 0)
    spdlog::warn("port {} ({}): stop failed: {}", port, name, rte_strerror(-rc));
  if (int rc = rte_eth_dev_close(port); rc != 0)
    spdlog::warn("port {} ({}): close failed: {}", port, name, rte_strerror(-rc));
  if (device != nullptr)
    if (int rc = rte_dev_remove(device); rc != 0)
      spdlog::warn("port {} ({}): device removal failed: {}", port, name, rte_strerror(-rc));
  spdlog::info("port {} ({}): closed", port, name);
}

}  // namespace nodeplane::dataplane
