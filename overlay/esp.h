// ESP tunnel mode (RFC 4303) with AES-GCM (RFC 4106), for the links between clusters' gateways.
// DPDK's rte_ipsec builds and checks the packets (sequence numbers, the anti-replay window,
// padding, the ICV); a cryptodev does AES-GCM synchronously on the calling core through
// cryptodev's CPU-crypto API (no crypto-op pools, no queues): Intel's multi-buffer library
// (crypto_aesni_gcm; without AES-NI it falls back to its own AES emulation, slower: Debian's
// crypto_openssl, the other software device, has no CPU-crypto API).
//
// Keys: deriveEspKey() expands a secret the two clusters share (HKDF-SHA256, RFC 5869) into the
// key and salt of one SA, named by a context string (clusters, direction, SA index): both ends
// derive the same keys with no key exchange. The IV is the sequence number (rte_ipsec's choice,
// which RFC 4106 allows: unique per key), so an SA must be replaced before 2^32 packets.
//
// Threading: an SA is used by one worker at a time (per-worker SAs: the sequence number and
// replay window need no atomics). The device is shared: CPU crypto keeps no per-call state.
// Memory: SAs and sessions are allocated on the control thread (rte_zmalloc, the device's session
// pool); processing allocates nothing and works in place in the mbuf (headroom and tailroom).
#pragma once

#include <rte_ipsec.h>
#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/ipv4.h"
#include "core/result.h"
#include "overlay/replay_window.h"

struct rte_mempool;

namespace nodeplane::overlay {

struct EspKey {
  std::array<uint8_t, 32> bytes{};
  uint8_t length = 16;  // AES-128 (16) or AES-256 (32)
  std::array<uint8_t, 4> salt{};
};

// The key and salt of one SA from the shared secret and a context naming the SA. `keyBits`: 128
// or 256. An error names an empty secret or a bad key size.
Result<EspKey> deriveEspKey(std::string_view secret, std::string_view context,
                            unsigned keyBits = 128);

class EspDevice {
 public:
  // A crypto_aesni_gcm device (Intel's multi-buffer library, which picks AVX-512/AVX2/AVX/SSE
  // code at start, and emulates AES where the CPU has no AES-NI).
  static Result<std::unique_ptr<EspDevice>> open(int socketId);
  ~EspDevice();
  EspDevice(const EspDevice&) = delete;
  EspDevice& operator=(const EspDevice&) = delete;

  uint8_t id() const { return id_; }
  const std::string& driver() const { return driver_; }
  rte_mempool* sessionPool() const { return sessionPool_; }

 private:
  EspDevice() = default;
  uint8_t id_ = 0;
  std::string name_;
  std::string driver_;
  rte_mempool* sessionPool_ = nullptr;
  bool probed_ = false;
  bool started_ = false;
};

struct EspSaSpec {
  uint32_t spi = 0;
  EspKey key;
  bool outbound = true;
  // Outbound: the outer headers every packet gets (Ethernet, then IPv4 with DF, TTL 64).
  Ipv4Address localAddress, remoteAddress;
  MacAddress localMac, remoteMac;
  // Inbound: the anti-replay window in packets (0: no replay check).
  uint32_t replayWindow = 1024;
};

class EspSa {
 public:
  static constexpr uint32_t kOverhead = 20 + 8 + 8 + 2 + 16 + 3;  // IPv4, ESP, IV, tail, ICV, pad

  static Result<std::unique_ptr<EspSa>> create(EspDevice& device, const EspSaSpec& spec);
  ~EspSa();
  EspSa(const EspSa&) = delete;
  EspSa& operator=(const EspSa&) = delete;

  // Outbound: Ethernet frames of inner IPv4 packets become Ethernet + outer IPv4 + ESP frames.
  // Inbound: Ethernet frames of ESP packets become the inner IPv4 packets behind an Ethernet
  // header of zeros (type IPv4) for the stages to fill in.
  // The packets that succeed come first in `pkts` (their count is returned), then the others:
  // `*replayed` counts those refused as replays (behind the window, seen before) or malformed,
  // the rest failed their ICV. At most 64 packets.
  uint16_t process(rte_mbuf** pkts, uint16_t count, uint16_t* replayed = nullptr);

  uint32_t spi() const { return spec_.spi; }
  bool outbound() const { return spec_.outbound; }
  // Outbound: packets sealed so far (the sequence number's wear). Written by the one thread that
  // seals with the SA, read by any (the control thread's rekey check).
  uint64_t sealed() const { return sealed_.load(std::memory_order_relaxed); }

 private:
  EspSa() = default;
  EspSaSpec spec_;
  EspDevice* device_ = nullptr;
  rte_ipsec_sa* sa_ = nullptr;
  void* cryptoSession_ = nullptr;
  rte_ipsec_session session_{};
  std::unique_ptr<ReplayWindow> window_;  // inbound, with a window (replay_window.h: why)
  std::atomic<uint64_t> sealed_{0};
  std::array<uint8_t, 34> outerTemplate_{};  // Ethernet + IPv4, outbound
};

}  // namespace nodeplane::overlay
