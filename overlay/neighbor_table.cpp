#include "overlay/neighbor_table.h"

namespace nodeplane::overlay {

NeighborTable::~NeighborTable() {
  for (auto& [ip, e] : entries_)
    for (rte_mbuf* m : e.held) rte_pktmbuf_free(m);
}

bool NeighborTable::setWanted(const std::set<Ipv4Address>& wanted, TimePoint now) {
  bool changed = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    changed |= it->second.mac.has_value();
    for (rte_mbuf* m : it->second.held) rte_pktmbuf_free(m);
    it = entries_.erase(it);
  }
  for (const Ipv4Address& ip : wanted) {
    if (entries_.count(ip)) continue;
    Entry e;
    e.nextProbe = now;
    entries_.emplace(ip, std::move(e));
  }
  return changed;
}

bool NeighborTable::learn(Ipv4Address ip, const MacAddress& mac, TimePoint now) {
  auto it = entries_.find(ip);
  if (it == entries_.end() || mac.isZero() || mac.isMulticast()) return false;
  Entry& e = it->second;
  const bool changed = !e.mac || *e.mac != mac;
  e.mac = mac;
  e.state = State::kReachable;
  e.confirmed = now;
  e.probes = 0;
  e.nextProbe = now + timers_.reachableTime;
  return changed;
}

std::vector<NeighborTable::Probe> NeighborTable::due(TimePoint now, bool* changed,
                                                     std::vector<rte_mbuf*>* dropped) {
  std::vector<Probe> probes;
  for (auto& [ip, e] : entries_) {
    if (now < e.nextProbe) continue;
    switch (e.state) {
      case State::kReachable:
        e.state = State::kStale;
        e.probes = 0;
        [[fallthrough]];
      case State::kStale:
        if (e.probes >= timers_.maxProbes) {  // the neighbour went away: withdraw its MAC
          e.mac.reset();
          e.state = State::kIncomplete;
          e.probes = 0;
          *changed = true;
          probes.push_back(Probe{ip, std::nullopt});
        } else {
          probes.push_back(Probe{ip, e.mac});
        }
        break;
      case State::kIncomplete:
        if (e.probes >= timers_.maxProbes) {
          e.state = State::kFailed;
          for (rte_mbuf* m : e.held) dropped->push_back(m);
          e.held.clear();
        }
        probes.push_back(Probe{ip, std::nullopt});
        break;
      case State::kFailed:
        probes.push_back(Probe{ip, std::nullopt});
        break;
    }
    ++e.probes;
    ++e.probesSent;
    e.nextProbe = now + (e.state == State::kFailed ? timers_.failedRetransmit : timers_.retransmit);
  }
  return probes;
}

std::optional<MacAddress> NeighborTable::mac(Ipv4Address ip) const {
  auto it = entries_.find(ip);
  return it == entries_.end() ? std::nullopt : it->second.mac;
}

bool NeighborTable::hold(Ipv4Address ip, rte_mbuf* m) {
  auto it = entries_.find(ip);
  if (it == entries_.end() || it->second.mac || it->second.state == State::kFailed ||
      it->second.held.size() >= timers_.heldPerAddress)
    return false;
  it->second.held.push_back(m);
  return true;
}

std::vector<rte_mbuf*> NeighborTable::release(Ipv4Address ip) {
  std::vector<rte_mbuf*> out;
  auto it = entries_.find(ip);
  if (it == entries_.end()) return out;
  out.assign(it->second.held.begin(), it->second.held.end());
  it->second.held.clear();
  return out;
}

std::vector<NeighborTable::View> NeighborTable::list(TimePoint now) const {
  std::vector<View> out;
  for (const auto& [ip, e] : entries_)
    out.push_back(
        View{ip, e.mac, e.state, e.held.size(), e.probesSent,
             e.mac ? std::chrono::duration_cast<std::chrono::milliseconds>(now - e.confirmed)
                   : std::chrono::milliseconds(0)});
  return out;
}

const char* NeighborTable::stateName(State s) {
  switch (s) {
    case State::kIncomplete:
      return "incomplete";
    case State::kReachable:
      return "reachable";
    case State::kStale:
      return "stale";
    case State::kFailed:
      return "failed";
  }
  return "?";
}

}  // namespace nodeplane::overlay
