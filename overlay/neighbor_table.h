// The underlay neighbour table: IPv4 -> MAC for the next hops the overlay needs (tunnel endpoints
// on the uplink's subnet, or the underlay gateway), resolved with ARP. Owned by the control thread
// only; workers see its result through the encap templates of the next snapshot.
//
// Only addresses someone needs are kept (wanted()): an ARP flood cannot grow the table.
// States, per address:
//   incomplete  no MAC; a broadcast request every retransmit interval; after maxProbes
//               unanswered, failed (held packets are dropped) but still probed, more slowly
//   reachable   confirmed by a reply within reachableTime
//   stale       not confirmed for reachableTime: still used; unicast probes refresh it; after
//               maxProbes unanswered it becomes incomplete (the MAC is withdrawn)
// Packets for an address without a MAC wait in a bounded per-address queue.
#pragma once

#include <rte_mbuf.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/ipv4.h"

namespace nodeplane::overlay {

class NeighborTable {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  struct Timers {
    std::chrono::milliseconds retransmit{1000};
    std::chrono::milliseconds failedRetransmit{5000};
    std::chrono::milliseconds reachableTime{30000};
    int maxProbes = 3;
    size_t heldPerAddress = 16;
  };

  enum class State { kIncomplete, kReachable, kStale, kFailed };

  struct Probe {
    Ipv4Address ip;
    std::optional<MacAddress> unicastTo;  // refresh a known MAC with a unicast request
  };

  struct View {
    Ipv4Address ip;
    std::optional<MacAddress> mac;
    State state;
    size_t held;
    uint64_t probesSent;
    std::chrono::milliseconds sinceConfirmed;
  };

  NeighborTable() = default;
  explicit NeighborTable(Timers timers) : timers_(timers) {}
  ~NeighborTable();
  NeighborTable(const NeighborTable&) = delete;
  NeighborTable& operator=(const NeighborTable&) = delete;

  // The addresses the overlay needs now. New ones start incomplete (probed at the next due());
  // ones no longer needed are forgotten and their held packets freed. Returns true when the set
  // of resolved addresses changed.
  bool setWanted(const std::set<Ipv4Address>& wanted, TimePoint now);
  // An ARP reply (or request) from `ip` at `mac`. Ignored unless `ip` is wanted. Returns true when
  // the MAC of a wanted address appeared or changed (the caller republishes templates).
  bool learn(Ipv4Address ip, const MacAddress& mac, TimePoint now);
  // ARP requests to send now; advances the state machine. `changed` is set when a MAC was
  // withdrawn; `dropped` gets packets that gave up waiting (the caller frees and counts them).
  std::vector<Probe> due(TimePoint now, bool* changed, std::vector<rte_mbuf*>* dropped);

  std::optional<MacAddress> mac(Ipv4Address ip) const;
  // Queues a packet for an unresolved address. False (the caller drops it) when the address is
  // not wanted, already resolved, failed, or its queue is full.
  bool hold(Ipv4Address ip, rte_mbuf* m);
  // Packets held for `ip`, now that it resolved.
  std::vector<rte_mbuf*> release(Ipv4Address ip);

  std::vector<View> list(TimePoint now) const;
  static const char* stateName(State s);

 private:
  struct Entry {
    std::optional<MacAddress> mac;
    State state = State::kIncomplete;
    TimePoint confirmed{};
    TimePoint nextProbe{};
    int probes = 0;
    uint64_t probesSent = 0;
    std::deque<rte_mbuf*> held;
  };
  Timers timers_;
  std::map<Ipv4Address, Entry> entries_;
};

}  // namespace nodeplane::overlay
