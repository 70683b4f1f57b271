#include "control/cluster_health.h"

namespace nodeplane::control {

std::string ClusterHealth::peerKey(const std::string& clusterId, Ipv4Address gateway) {
  return "peer/" + clusterId + "/" + gateway.toString();
}

std::string ClusterHealth::nodeKey(const std::string& name) {
  return "node/" + name;
}

void ClusterHealth::watch(const PeerMap& peers, const std::vector<std::string>& localGateways,
                          TimePoint now) {
  std::map<std::string, Entry> next;
  auto keep = [&](const std::string& key) {
    auto it = entries_.find(key);
    next[key] = it != entries_.end() ? it->second : Entry{now, now};
  };
  for (const auto& [id, peer] : peers)
    for (const Ipv4Address& g : peer.spec.gateways) keep(peerKey(id, g));
  for (const std::string& n : localGateways) keep(nodeKey(n));
  entries_ = std::move(next);
}

void ClusterHealth::heard(const std::string& key, uint32_t sequence, TimePoint now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;  // not watched (a stray or a removed peer)
  it->second.last = now;
  it->second.heard = true;
  ++it->second.received;
  it->second.lastSequence = sequence;
}

void ClusterHealth::heardPeer(const std::string& clusterId, Ipv4Address gateway, uint32_t sequence,
                              TimePoint now) {
  heard(peerKey(clusterId, gateway), sequence, now);
}

void ClusterHealth::heardNode(const std::string& node, uint32_t sequence, TimePoint now) {
  heard(nodeKey(node), sequence, now);
}

ClusterHealth::State ClusterHealth::state(const std::string& key, TimePoint now) const {
  State s;
  auto it = entries_.find(key);
  if (it == entries_.end()) return s;
  const Entry& e = it->second;
  const TimePoint latest = e.heard ? std::max(e.since, e.last) : e.since;
  s.alive = now - latest <= timers_.deadAfter;
  s.heard = e.heard;
  s.received = e.received;
  s.lastSequence = e.lastSequence;
  if (e.heard)
    s.lastHeardMs = std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last).count();
  return s;
}

ClusterHealth::State ClusterHealth::peer(const std::string& clusterId, Ipv4Address gateway,
                                         TimePoint now) const {
  return state(peerKey(clusterId, gateway), now);
}

ClusterHealth::State ClusterHealth::node(const std::string& name, TimePoint now) const {
  return state(nodeKey(name), now);
}

GatewayChoice ClusterHealth::choose(const PeerMap& peers,
                                    const std::vector<std::string>& localGateways,
                                    const std::string& self, TimePoint now) const {
  GatewayChoice choice;
  for (const auto& [id, peer] : peers) {
    if (peer.spec.gateways.empty()) continue;
    choice.peers[id] = peer.spec.gateways.front();
    for (const Ipv4Address& g : peer.spec.gateways)
      if (state(peerKey(id, g), now).alive) {
        choice.peers[id] = g;
        break;
      }
  }
  if (!localGateways.empty()) {
    choice.local = localGateways.front();
    for (const std::string& n : localGateways)
      if (n == self || state(nodeKey(n), now).alive) {
        choice.local = n;
        break;
      }
  }
  return choice;
}

bool ClusterHealth::sendDue(TimePoint now) {
  if (now < nextSend_) return false;
  nextSend_ = now + timers_.interval;
  return true;
}

}  // namespace nodeplane::control
