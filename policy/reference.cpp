#include "policy/reference.h"

#include <algorithm>

namespace nodeplane::policy {

namespace {

const PodIdentity* podAt(const PolicyState& state, Ipv4Address ip) {
  for (const PodIdentity& p : state.pods)
    if (p.ip == ip) return &p;
  return nullptr;
}

bool portMatches(const PortMatch& m, uint8_t protocol, uint16_t dport, const PodIdentity* target) {
  if (m.protocol != protocol) return false;
  if (!m.name.empty()) return target != nullptr && target->namedPort(m.name, protocol) == dport;
  if (m.port == 0) return true;
  const uint16_t last = m.endPort ? m.endPort : m.port;
  return dport >= m.port && dport <= last;
}

bool ruleMatches(const PolicyState& state, const PolicyRule& rule, const std::string& ns,
                 Ipv4Address peerAddress, const PodIdentity* peerPod, const FlowQuery& flow,
                 const PodIdentity* portTarget) {
  if (!rule.ports.empty() &&
      std::none_of(rule.ports.begin(), rule.ports.end(), [&](const PortMatch& m) {
        return portMatches(m, flow.protocol, flow.dport, portTarget);
      }))
    return false;
  if (rule.peers.empty()) return true;
  return std::any_of(rule.peers.begin(), rule.peers.end(), [&](const Peer& p) {
    return peerMatches(state, p, ns, peerAddress, peerPod);
  });
}

}  // namespace

const Labels& namespaceLabels(const PolicyState& state, const std::string& name) {
  static thread_local Labels fallback;
  for (const NamespaceIdentity& n : state.namespaces)
    if (n.name == name) return n.labels;
  fallback = {{"kubernetes.io/metadata.name", name}};
  return fallback;
}

bool peerMatches(const PolicyState& state, const Peer& peer, const std::string& policyNamespace,
                 Ipv4Address address, const PodIdentity* pod) {
  if (peer.ipBlock) {
    if (!peer.ipBlock->cidr.contains(address)) return false;
    return std::none_of(peer.ipBlock->except.begin(), peer.ipBlock->except.end(),
                        [&](const Ipv4Prefix& e) { return e.contains(address); });
  }
  if (pod == nullptr) return false;  // selectors select pods only
  if (peer.namespaceSelector) {
    if (!peer.namespaceSelector->matches(namespaceLabels(state, pod->namespaceName))) return false;
  } else if (pod->namespaceName != policyNamespace) {
    return false;
  }
  return !peer.podSelector || peer.podSelector->matches(pod->labels);
}

ReferenceVerdict referenceVerdict(const PolicyState& state, const FlowQuery& flow, bool withAudit) {
  ReferenceVerdict v;
  const PodIdentity* src = podAt(state, flow.src);
  const PodIdentity* dst = podAt(state, flow.dst);
  bool srcIsolated = false, srcAllowed = false, dstIsolated = false, dstAllowed = false;
  for (const NetworkPolicy& p : state.policies) {
    if (!withAudit && (state.audit || p.audit)) continue;
    if (src && p.egress && p.namespaceName == src->namespaceName &&
        p.podSelector.matches(src->labels)) {
      srcIsolated = true;
      for (const PolicyRule& r : p.egressRules)
        if (ruleMatches(state, r, p.namespaceName, flow.dst, dst, flow, dst)) srcAllowed = true;
    }
    if (dst && p.ingress && p.namespaceName == dst->namespaceName &&
        p.podSelector.matches(dst->labels)) {
      dstIsolated = true;
      for (const PolicyRule& r : p.ingressRules)
        if (ruleMatches(state, r, p.namespaceName, flow.src, src, flow, dst)) dstAllowed = true;
    }
  }
  v.egressAllowed = !srcIsolated || srcAllowed;
  v.ingressAllowed = !dstIsolated || dstAllowed;
  return v;
}

}  // namespace nodeplane::policy
