#include "policy/compiler.h"

#include <algorithm>
#include <map>

#include "policy/reference.h"

namespace nodeplane::policy {

namespace {

constexpr Ipv4Prefix kAnywhere{Ipv4Address{0}, 0};

Ipv4Prefix host(Ipv4Address a) {
  return Ipv4Prefix{a, 32};
}

// An address range a peer stands for, with the pod when it is one pod.
struct Target {
  Ipv4Prefix prefix;
  const PodIdentity* pod = nullptr;
};

struct PortRange {
  bool anyProtocol = false;
  uint8_t protocol = 0;
  uint16_t low = 0, high = 0xffff;
};

class Compiler {
 public:
  Compiler(const PolicyState& state, const Ipv4Prefix& local) : state_(state), local_(local) {}

  CompiledPolicies run() {
    out_.policies.resize(state_.policies.size());
    for (size_t i = 0; i < state_.policies.size(); ++i) compile(static_cast<uint32_t>(i));
    isolationRules();
    std::sort(out_.rules.begin(), out_.rules.end());
    out_.rules.erase(std::unique(out_.rules.begin(), out_.rules.end()), out_.rules.end());
    for (const AclRule& r : out_.rules) ++out_.policies[resultPolicy(r.result)].rules;
    return std::move(out_);
  }

 private:
  struct Isolation {
    int64_t firstEnforced = -1;
    int64_t firstAny = -1;
  };

  bool enforced(const NetworkPolicy& p) const { return !state_.audit && !p.audit; }

  std::vector<const PodIdentity*> selectedLocalPods(const NetworkPolicy& p) const {
    std::vector<const PodIdentity*> out;
    for (const PodIdentity& pod : state_.pods)
      if (pod.namespaceName == p.namespaceName && pod.ip.value != 0 && local_.contains(pod.ip) &&
          p.podSelector.matches(pod.labels))
        out.push_back(&pod);
    return out;
  }

  std::vector<Target> expand(const Peer& peer, const std::string& ns) const {
    std::vector<Target> out;
    if (peer.ipBlock) {
      for (const Ipv4Prefix& p : subtractPrefixes(peer.ipBlock->cidr, peer.ipBlock->except))
        out.push_back(Target{p, nullptr});
      return out;
    }
    for (const PodIdentity& pod : state_.pods)
      if (pod.ip.value != 0 && peerMatches(state_, peer, ns, pod.ip, &pod))
        out.push_back(Target{host(pod.ip), &pod});
    return out;
  }

  std::vector<Target> targets(const PolicyRule& rule, const std::string& ns) const {
    if (rule.peers.empty()) return {Target{kAnywhere, nullptr}};
    std::vector<Target> out;
    for (const Peer& peer : rule.peers) {
      auto t = expand(peer, ns);
      out.insert(out.end(), t.begin(), t.end());
    }
    return out;
  }

  // The numeric form of a port match; named ports need `pod` (0 results when it lacks the name).
  static std::vector<PortRange> ranges(const PolicyRule& rule, const PodIdentity* pod) {
    if (rule.ports.empty()) return {PortRange{true, 0, 0, 0xffff}};
    std::vector<PortRange> out;
    for (const PortMatch& m : rule.ports) {
      if (!m.name.empty()) {
        const uint16_t n = pod ? pod->namedPort(m.name, m.protocol) : 0;
        if (n != 0) out.push_back(PortRange{false, m.protocol, n, n});
      } else if (m.port == 0) {
        out.push_back(PortRange{false, m.protocol, 0, 0xffff});
      } else {
        out.push_back(PortRange{false, m.protocol, m.port, m.endPort ? m.endPort : m.port});
      }
    }
    return out;
  }

  static bool hasNamedPorts(const PolicyRule& rule) {
    return std::any_of(rule.ports.begin(), rule.ports.end(),
                       [](const PortMatch& m) { return !m.name.empty(); });
  }

  void emit(uint32_t categories, uint32_t policy, const Ipv4Prefix& src, const Ipv4Prefix& dst,
            const PortRange& ports) {
    AclRule r;
    r.categories = categories;
    r.priority = kPriorityAllow;
    r.result = (policy + 1) | kResultAllow;
    r.anyProtocol = ports.anyProtocol;
    r.protocol = ports.protocol;
    r.src = src;
    r.dst = dst;
    r.dportLow = ports.low;
    r.dportHigh = ports.high;
    out_.rules.push_back(r);
  }

  void compile(uint32_t index) {
    const NetworkPolicy& p = state_.policies[index];
    PolicySummary& summary = out_.policies[index];
    summary.key = p.key();
    summary.ingress = p.ingress;
    summary.egress = p.egress;
    summary.audit = !enforced(p);
    const auto selected = selectedLocalPods(p);
    summary.localPods = static_cast<uint32_t>(selected.size());
    if (selected.empty()) return;
    const uint32_t ingressCats = kCatIngressAudit | (enforced(p) ? kCatIngress : 0);
    const uint32_t egressCats = kCatEgressAudit | (enforced(p) ? kCatEgress : 0);

    for (const PodIdentity* pod : selected) {
      if (p.ingress) isolate(ingress_[pod->ip.value], p, index);
      if (p.egress) isolate(egress_[pod->ip.value], p, index);
    }
    if (p.ingress) {
      for (const PolicyRule& rule : p.ingressRules) {
        const auto from = targets(rule, p.namespaceName);
        for (const PodIdentity* pod : selected)
          for (const PortRange& ports : ranges(rule, pod))  // named ports: the selected pod's
            for (const Target& t : from) emit(ingressCats, index, t.prefix, host(pod->ip), ports);
      }
    }
    if (p.egress) {
      for (const PolicyRule& rule : p.egressRules) {
        const auto to = targets(rule, p.namespaceName);
        for (const PodIdentity* pod : selected) {
          for (const Target& t : to) {
            if (!hasNamedPorts(rule)) {
              for (const PortRange& ports : ranges(rule, nullptr))
                emit(egressCats, index, host(pod->ip), t.prefix, ports);
              continue;
            }
            // Named ports resolve against the destination pod: every pod in the target range.
            for (const PodIdentity& dst : state_.pods) {
              if (dst.ip.value == 0 || !t.prefix.contains(dst.ip) || (t.pod && t.pod != &dst))
                continue;
              for (const PortRange& ports : ranges(rule, &dst))
                emit(egressCats, index, host(pod->ip), host(dst.ip), ports);
            }
            // Numeric ports of the same rule still apply to the whole range.
            PolicyRule numeric;
            for (const PortMatch& m : rule.ports)
              if (m.name.empty()) numeric.ports.push_back(m);
            if (!numeric.ports.empty())
              for (const PortRange& ports : ranges(numeric, nullptr))
                emit(egressCats, index, host(pod->ip), t.prefix, ports);
          }
        }
      }
    }
  }

  void isolate(Isolation& iso, const NetworkPolicy& p, uint32_t index) {
    if (iso.firstAny < 0) iso.firstAny = index;
    if (enforced(p) && iso.firstEnforced < 0) iso.firstEnforced = index;
  }

  void isolationRules() {
    auto add = [&](uint32_t cat, int64_t policy, const Ipv4Prefix& src, const Ipv4Prefix& dst) {
      AclRule r;
      r.categories = cat;
      r.priority = kPriorityIsolate;
      r.result = static_cast<uint32_t>(policy + 1);
      r.src = src;
      r.dst = dst;
      out_.rules.push_back(r);
    };
    for (const auto& [ip, iso] : ingress_) {
      if (iso.firstEnforced >= 0) {
        add(kCatIngress, iso.firstEnforced, kAnywhere, host(Ipv4Address{ip}));
        ++out_.isolatedIngress;
      }
      add(kCatIngressAudit, iso.firstAny, kAnywhere, host(Ipv4Address{ip}));
    }
    for (const auto& [ip, iso] : egress_) {
      if (iso.firstEnforced >= 0) {
        add(kCatEgress, iso.firstEnforced, host(Ipv4Address{ip}), kAnywhere);
        ++out_.isolatedEgress;
      }
      add(kCatEgressAudit, iso.firstAny, host(Ipv4Address{ip}), kAnywhere);
    }
  }

  const PolicyState& state_;
  const Ipv4Prefix local_;
  CompiledPolicies out_;
  std::map<uint32_t, Isolation> ingress_, egress_;
};

void subtract(const Ipv4Prefix& p, const std::vector<Ipv4Prefix>& except,
              std::vector<Ipv4Prefix>& out) {
  bool overlap = false;
  for (const Ipv4Prefix& e : except) {
    if (e.length <= p.length && e.contains(p.address)) return;  // all of p is excepted
    if (e.length > p.length && p.contains(e.address)) overlap = true;
  }
  if (!overlap) {
    out.push_back(p);
    return;
  }
  const uint8_t len = static_cast<uint8_t>(p.length + 1);
  subtract(Ipv4Prefix{p.address, len}, except, out);
  subtract(Ipv4Prefix{Ipv4Address{p.address.value | (1u << (32 - len))}, len}, except, out);
}

}  // namespace

std::vector<Ipv4Prefix> subtractPrefixes(const Ipv4Prefix& cidr,
                                         const std::vector<Ipv4Prefix>& except) {
  std::vector<Ipv4Prefix> out;
  subtract(cidr, except, out);
  return out;
}

CompiledPolicies compilePolicies(const PolicyState& state, const Ipv4Prefix& localPods) {
  return Compiler(state, localPods).run();
}

}  // namespace nodeplane::policy
