// The ESP SA generations of the links to peer clusters' gateways (cluster_links.h says what a
// generation is): which one each gateway pair seals with, when the next one begins, and learning
// the peer gateways' from their first packets. Pure over a PeerMap the caller publishes; control
// thread only.
#pragma once

#include <rte_mbuf.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "control/cluster_links.h"
#include "core/drop_reason.h"
#include "core/result.h"

namespace nodeplane::control {

class ClusterKeys {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // `generationFile`: where the last generation begun is kept, so that a restarted daemon never
  // begins one it has used (empty: not kept; then the first is the second after this start).
  ClusterKeys(const NodeSettings& settings, std::string generationFile);

  // A new generation's name: this second or later, after every one begun before (persisted).
  uint64_t nextGeneration(uint64_t unixNow);

  // The peer `spec` as set: a gateway kept (the same address) keeps what it learned; its
  // outbound SAs too when the secret is the same, else it begins a new generation. `existing`:
  // the peer as it was, if it was.
  Result<ClusterPeer> peerFor(const ClusterPeerSpec& spec, const ClusterPeer* existing,
                              const std::shared_ptr<overlay::EspDevice>& device, unsigned workers,
                              uint64_t unixNow);

  // Rekeys what is due: a pending generation older than kRekeyOverlap becomes the one sealed with;
  // a generation older than the rekey interval, or worn (kRekeyAfterPackets), gets a pending
  // successor. True when `peers` changed (to be published).
  bool rekey(PeerMap& peers, const std::shared_ptr<overlay::EspDevice>& device, unsigned workers,
             SteadyTime now, uint64_t unixNow);
  // Whether rekey() would change anything now (a look without copying the peers).
  bool due(const PeerMap& peers, SteadyTime now) const;

  // ESP of an unknown SPI from the gateway of link `link` (punted, outer frame from Ethernet on):
  // when it names a generation newer than the one learned from that gateway and opens with its
  // SAs under the peer's secret (or the one before it), that generation is learned (`peers`
  // changed: true). Otherwise false and `*refused` says why.
  bool learn(PeerMap& peers, uint16_t link, const rte_mbuf* m, rte_mempool* pool,
             const std::shared_ptr<overlay::EspDevice>& device, unsigned workers, uint64_t unixNow,
             DropReason* refused);

  uint64_t started() const { return started_; }  // generations begun
  uint64_t learned() const { return learned_; }

 private:
  const NodeSettings& settings_;
  std::string generationFile_;
  uint64_t last_ = 0;  // the last generation begun
  uint64_t started_ = 0, learned_ = 0;
};

// Unix time in seconds (the generations' clock).
uint64_t unixSeconds();

}  // namespace nodeplane::control
