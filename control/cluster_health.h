// Which gateways are alive (issue 13): a gateway that stops answering is replaced by the next of
// its list within a second. What is watched: each peer cluster's gateways (heartbeats through
// the ESP links) and this cluster's gateway nodes (heartbeats on the underlay). An entry is
// alive while it was heard, or was first watched, less than `deadAfter` ago; the gateway in use
// is the first alive of its list in order of preference (this node is always alive to itself),
// or the first when none is, so a lone gateway never drops for want of an answer. Heartbeats go
// out every `interval` (NodeController sends them). Control thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/cluster_links.h"
#include "control/snapshot_assembly.h"

namespace nodeplane::control {

struct HeartbeatTimers {
  std::chrono::milliseconds interval{100};
  std::chrono::milliseconds deadAfter{500};
};

class ClusterHealth {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Timers = HeartbeatTimers;
  struct State {
    bool alive = false;
    bool heard = false;         // ever
    int64_t lastHeardMs = -1;   // ago; -1: never
    uint64_t received = 0;      // heartbeats
    uint32_t lastSequence = 0;  // of the last one
  };

  explicit ClusterHealth(Timers timers = {}) : timers_(timers) {}

  // What to watch; entries no longer watched are forgotten, new ones start alive now.
  void watch(const PeerMap& peers, const std::vector<std::string>& localGateways, TimePoint now);
  void heardPeer(const std::string& clusterId, Ipv4Address gateway, uint32_t sequence,
                 TimePoint now);
  void heardNode(const std::string& node, uint32_t sequence, TimePoint now);

  // The gateways in use (see above); `self`: this node's name.
  GatewayChoice choose(const PeerMap& peers, const std::vector<std::string>& localGateways,
                       const std::string& self, TimePoint now) const;
  // True once per interval: time to send.
  bool sendDue(TimePoint now);

  State peer(const std::string& clusterId, Ipv4Address gateway, TimePoint now) const;
  State node(const std::string& name, TimePoint now) const;
  const Timers& timers() const { return timers_; }

 private:
  struct Entry {
    TimePoint since;
    TimePoint last;
    bool heard = false;
    uint64_t received = 0;
    uint32_t lastSequence = 0;
  };
  static std::string peerKey(const std::string& clusterId, Ipv4Address gateway);
  static std::string nodeKey(const std::string& name);
  void heard(const std::string& key, uint32_t sequence, TimePoint now);
  State state(const std::string& key, TimePoint now) const;

  Timers timers_;
  std::map<std::string, Entry> entries_;
  TimePoint nextSend_{};
};

}  // namespace nodeplane::control
