// The compiled classifier (rte_acl) against the reference evaluation of the same policies: each
// construct on its own, then thousands of generated flows over generated clusters and policies.
#include "policy/classifier.h"

#include <gtest/gtest.h>
#include <rte_byteorder.h>
#include <rte_memory.h>

#include <random>

#include "policy/compiler.h"
#include "policy/reference.h"

namespace nodeplane::policy {
namespace {

const Ipv4Prefix kLocal = *Ipv4Prefix::parse("10.244.1.0/24");

Ipv4Address addr(const char* text) {
  return *Ipv4Address::parse(text);
}
Ipv4Prefix prefix(const char* text) {
  return *Ipv4Prefix::parse(text);
}

struct Decision {
  bool denyEgress, denyIngress, auditDenyEgress, auditDenyIngress;
};

Decision classify(const Classifier& c, const FlowQuery& q) {
  AclKey key{q.protocol,
             {0, 0, 0},
             rte_cpu_to_be_32(q.src.value),
             rte_cpu_to_be_32(q.dst.value),
             rte_cpu_to_be_16(40000),
             rte_cpu_to_be_16(q.dport)};
  const AclKey* keys[1] = {&key};
  uint32_t r[kCategories];
  c.classify(keys, 1, r);
  auto deny = [](uint32_t v) { return v != 0 && !(v & kResultAllow); };
  return Decision{deny(r[0]), deny(r[1]), deny(r[2]), deny(r[3])};
}

// What the reference says the classifier must say, for this node's pods only.
Decision expected(const PolicyState& s, const FlowQuery& q) {
  const auto eff = referenceVerdict(s, q, false);
  const auto aud = referenceVerdict(s, q, true);
  const bool srcLocal = kLocal.contains(q.src), dstLocal = kLocal.contains(q.dst);
  auto isPod = [&](Ipv4Address a) {
    for (const auto& p : s.pods)
      if (p.ip == a) return true;
    return false;
  };
  const bool srcPod = srcLocal && isPod(q.src), dstPod = dstLocal && isPod(q.dst);
  return Decision{srcPod && !eff.egressAllowed, dstPod && !eff.ingressAllowed,
                  srcPod && !aud.egressAllowed, dstPod && !aud.ingressAllowed};
}

std::unique_ptr<Classifier> build(const PolicyState& s) {
  auto compiled = compilePolicies(s, kLocal);
  auto c = Classifier::build(compiled.rules, SOCKET_ID_ANY);
  EXPECT_TRUE(c.ok()) << c.error().message;
  return std::move(*c);
}

PolicyState baseCluster() {
  PolicyState s;
  for (const char* ns : {"x", "y", "z"})
    s.namespaces.push_back({ns, {{"kubernetes.io/metadata.name", ns}, {"ns", ns}}});
  int host = 2;
  for (const char* ns : {"x", "y", "z"})
    for (const char* pod : {"a", "b", "c"}) {
      PodIdentity p;
      p.namespaceName = ns;
      p.name = pod;
      // a and b on this node, c on another.
      p.ip = addr((std::string(pod[0] == 'c' ? "10.244.2." : "10.244.1.") + std::to_string(host++))
                      .c_str());
      p.labels = {{"pod", pod}};
      p.ports = {{"serve-80-tcp", 80, kProtoTcp},
                 {"serve-81-tcp", 81, kProtoTcp},
                 {"serve-80-udp", 80, kProtoUdp}};
      s.pods.push_back(p);
    }
  return s;
}

const PodIdentity& pod(const PolicyState& s, const char* ns, const char* name) {
  for (const auto& p : s.pods)
    if (p.namespaceName == ns && p.name == name) return p;
  throw std::runtime_error("no pod");
}

TEST(SubtractPrefixes, ExceptIsCarvedOut) {
  auto out = subtractPrefixes(prefix("10.0.0.0/16"), {prefix("10.0.1.0/24")});
  // /16 minus one /24: eight prefixes (/17 ... /24 siblings).
  EXPECT_EQ(out.size(), 8u);
  for (const auto& p : out) EXPECT_FALSE(p.overlaps(prefix("10.0.1.0/24"))) << p.toString();
  EXPECT_TRUE(subtractPrefixes(prefix("10.0.0.0/24"), {prefix("10.0.0.0/16")}).empty());
  EXPECT_EQ(subtractPrefixes(prefix("10.0.0.0/24"), {}).size(), 1u);
}

TEST(Compiler, NoPolicyNoRules) {
  auto s = baseCluster();
  auto c = compilePolicies(s, kLocal);
  EXPECT_TRUE(c.rules.empty());
  auto cls = build(s);
  EXPECT_TRUE(cls->empty());
  EXPECT_FALSE(
      classify(*cls, {pod(s, "x", "a").ip, pod(s, "y", "b").ip, kProtoTcp, 80}).denyIngress);
}

TEST(Compiler, DefaultDenyIngressIsolatesOnlyLocalSelectedPods) {
  auto s = baseCluster();
  NetworkPolicy p;
  p.namespaceName = "x";
  p.name = "deny";
  s.policies.push_back(p);
  auto c = compilePolicies(s, kLocal);
  EXPECT_EQ(c.isolatedIngress, 2u) << "x/a and x/b are local, x/c is not";
  EXPECT_EQ(c.policies[0].localPods, 2u);
  auto cls = build(s);
  EXPECT_TRUE(
      classify(*cls, {pod(s, "y", "a").ip, pod(s, "x", "a").ip, kProtoTcp, 80}).denyIngress);
  EXPECT_FALSE(
      classify(*cls, {pod(s, "x", "a").ip, pod(s, "y", "a").ip, kProtoTcp, 80}).denyEgress);
}

TEST(Compiler, NamedPortsResolvePerDestinationPod) {
  auto s = baseCluster();
  s.pods[0].ports = {{"web", 8080, kProtoTcp}};  // x/a serves "web" on 8080
  s.pods[1].ports = {{"web", 9090, kProtoTcp}};  // x/b on 9090
  NetworkPolicy p;
  p.namespaceName = "x";
  p.name = "web";
  p.ingressRules.push_back(PolicyRule{{}, {PortMatch{kProtoTcp, 0, 0, "web"}}});
  s.policies.push_back(p);
  auto cls = build(s);
  const auto client = pod(s, "y", "a").ip;
  EXPECT_FALSE(classify(*cls, {client, s.pods[0].ip, kProtoTcp, 8080}).denyIngress);
  EXPECT_TRUE(classify(*cls, {client, s.pods[0].ip, kProtoTcp, 9090}).denyIngress);
  EXPECT_FALSE(classify(*cls, {client, s.pods[1].ip, kProtoTcp, 9090}).denyIngress);
  EXPECT_TRUE(classify(*cls, {client, s.pods[1].ip, kProtoUdp, 9090}).denyIngress);
}

TEST(Compiler, EndPortRangesAndIpBlocks) {
  auto s = baseCluster();
  NetworkPolicy p;
  p.namespaceName = "x";
  p.name = "range";
  p.ingress = false;
  p.egress = true;
  p.egressRules.push_back(
      PolicyRule{{Peer{{}, {}, IpBlock{prefix("10.244.0.0/16"), {prefix("10.244.2.0/24")}}}},
                 {PortMatch{kProtoTcp, 80, 81, ""}}});
  s.policies.push_back(p);
  auto cls = build(s);
  const auto src = pod(s, "x", "a").ip;
  EXPECT_FALSE(classify(*cls, {src, pod(s, "y", "b").ip, kProtoTcp, 81}).denyEgress);
  EXPECT_TRUE(classify(*cls, {src, pod(s, "y", "b").ip, kProtoTcp, 82}).denyEgress);
  EXPECT_TRUE(classify(*cls, {src, pod(s, "y", "c").ip, kProtoTcp, 80}).denyEgress) << "except";
  EXPECT_TRUE(classify(*cls, {src, addr("8.8.8.8"), kProtoTcp, 80}).denyEgress);
}

TEST(Compiler, AuditPoliciesOnlyReport) {
  auto s = baseCluster();
  NetworkPolicy p;
  p.namespaceName = "x";
  p.name = "deny";
  p.audit = true;
  s.policies.push_back(p);
  auto cls = build(s);
  auto d = classify(*cls, {pod(s, "y", "a").ip, pod(s, "x", "a").ip, kProtoTcp, 80});
  EXPECT_FALSE(d.denyIngress);
  EXPECT_TRUE(d.auditDenyIngress);
}

// --- generated policies against the reference ---------------------------------------------

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  PolicyState cluster() {
    PolicyState s;
    const char* teams[] = {"a", "b"};
    for (const char* ns : {"x", "y", "z"}) {
      NamespaceIdentity n{ns, {{"kubernetes.io/metadata.name", ns}}};
      if (coin()) n.labels["team"] = teams[pick(2)];
      s.namespaces.push_back(n);
    }
    const unsigned pods = 6 + pick(8);
    for (unsigned i = 0; i < pods; ++i) {
      PodIdentity p;
      p.namespaceName = s.namespaces[pick(3)].name;
      p.name = "p" + std::to_string(i);
      p.ip = Ipv4Address{(coin() ? 0x0af40100u : 0x0af40200u) + 2 + i};  // local or remote
      for (const char* k : {"app", "tier", "env"})
        if (coin()) p.labels[k] = values_[pick(3)];
      if (coin()) p.ports.push_back({"web", static_cast<uint16_t>(coin() ? 80 : 8080), kProtoTcp});
      if (coin()) p.ports.push_back({"dns", 53, kProtoUdp});
      s.pods.push_back(p);
    }
    const unsigned policies = 1 + pick(5);
    for (unsigned i = 0; i < policies; ++i) s.policies.push_back(policy(s, i));
    return s;
  }

  FlowQuery flow(const PolicyState& s) {
    auto address = [&]() {
      const unsigned r = pick(10);
      if (r == 0) return Ipv4Address{0x08080808};                   // outside the cluster
      if (r == 1) return Ipv4Address{0x0af40100u + 200 + pick(4)};  // local, no pod
      return s.pods[pick(static_cast<unsigned>(s.pods.size()))].ip;
    };
    const uint8_t protos[] = {kProtoTcp, kProtoTcp, kProtoUdp, kProtoSctp, 1};
    const uint16_t ports[] = {53, 80, 81, 443, 8080, 9000, 9001, 1};
    return FlowQuery{address(), address(), protos[pick(5)], ports[pick(8)]};
  }

 private:
  bool coin() { return pick(2) == 0; }
  unsigned pick(unsigned n) { return std::uniform_int_distribution<unsigned>(0, n - 1)(rng_); }

  LabelSelector selector() {
    LabelSelector sel;
    const unsigned n = pick(3);
    for (unsigned i = 0; i < n; ++i) {
      const char* key = keys_[pick(3)];
      switch (pick(5)) {
        case 0:
          sel.matchLabels[key] = values_[pick(3)];
          break;
        case 1:
          sel.matchExpressions.push_back(
              {key, SelectorRequirement::Operator::kIn, {values_[pick(3)], values_[pick(3)]}});
          break;
        case 2:
          sel.matchExpressions.push_back(
              {key, SelectorRequirement::Operator::kNotIn, {values_[pick(3)]}});
          break;
        case 3:
          sel.matchExpressions.push_back({key, SelectorRequirement::Operator::kExists, {}});
          break;
        default:
          sel.matchExpressions.push_back({key, SelectorRequirement::Operator::kDoesNotExist, {}});
          break;
      }
    }
    return sel;
  }

  LabelSelector namespaceSelector() {
    LabelSelector sel;
    switch (pick(3)) {
      case 0:
        break;  // every namespace
      case 1:
        sel.matchLabels["team"] = coin() ? "a" : "b";
        break;
      default:
        sel.matchLabels["kubernetes.io/metadata.name"] = coin() ? "x" : "y";
        break;
    }
    return sel;
  }

  Peer peer() {
    Peer p;
    switch (pick(4)) {
      case 0:
        p.podSelector = selector();
        break;
      case 1:
        p.namespaceSelector = namespaceSelector();
        break;
      case 2:
        p.podSelector = selector();
        p.namespaceSelector = namespaceSelector();
        break;
      default: {
        const uint8_t len = static_cast<uint8_t>(16 + pick(9));
        Ipv4Prefix cidr{Ipv4Address{0x0af40000u & (~0u << (32 - len))}, len};
        if (pick(4) == 0) cidr = Ipv4Prefix{Ipv4Address{0}, 0};
        IpBlock b{cidr, {}};
        if (coin()) b.except.push_back(Ipv4Prefix{Ipv4Address{0x0af40100u + 8 * pick(4)}, 29});
        if (coin() && cidr.length <= 23)
          b.except.push_back(Ipv4Prefix{Ipv4Address{0x0af40200u}, 24});
        // except must lie inside cidr
        std::erase_if(b.except, [&](const Ipv4Prefix& e) {
          return !(cidr.contains(e.address) && e.length > cidr.length);
        });
        p.ipBlock = b;
      }
    }
    return p;
  }

  PortMatch port() {
    switch (pick(5)) {
      case 0:
        return PortMatch{kProtoTcp, 80, 0, ""};
      case 1:
        return PortMatch{kProtoUdp, 53, 0, ""};
      case 2:
        return PortMatch{kProtoTcp, 9000, static_cast<uint16_t>(9000 + pick(3)), ""};
      case 3:
        return PortMatch{coin() ? kProtoTcp : kProtoUdp, 0, 0, coin() ? "web" : "dns"};
      default:
        return PortMatch{coin() ? kProtoSctp : kProtoTcp, 0, 0, ""};
    }
  }

  PolicyRule rule() {
    PolicyRule r;
    const unsigned peers = pick(3), ports = pick(3);
    for (unsigned i = 0; i < peers; ++i) r.peers.push_back(peer());
    for (unsigned i = 0; i < ports; ++i) r.ports.push_back(port());
    return r;
  }

  NetworkPolicy policy(const PolicyState& s, unsigned i) {
    NetworkPolicy p;
    p.namespaceName = s.namespaces[pick(3)].name;
    p.name = "np" + std::to_string(i);
    p.podSelector = selector();
    p.ingress = pick(4) != 0;
    p.egress = pick(2) == 0;
    if (!p.ingress && !p.egress) p.ingress = true;
    p.audit = pick(5) == 0;
    const unsigned ing = pick(3), eg = pick(3);
    for (unsigned k = 0; k < ing; ++k) p.ingressRules.push_back(rule());
    for (unsigned k = 0; k < eg; ++k) p.egressRules.push_back(rule());
    return p;
  }

  std::mt19937 rng_;
  const char* keys_[3] = {"app", "tier", "env"};
  const char* values_[3] = {"web", "db", "dev"};
};

TEST(ClassifierVsReference, ThousandsOfGeneratedFlowsAgree) {
  unsigned cases = 0, denials = 0;
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    Generator gen(seed);
    PolicyState s = gen.cluster();
    s.audit = seed % 25 == 0;
    auto cls = build(s);
    for (int i = 0; i < 80; ++i) {
      const FlowQuery q = gen.flow(s);
      const Decision want = expected(s, q);
      const Decision got = classify(*cls, q);
      ++cases;
      denials += want.denyEgress || want.denyIngress;
      ASSERT_EQ(got.denyEgress, want.denyEgress)
          << "seed " << seed << " flow " << q.src.toString() << " -> " << q.dst.toString()
          << " proto " << int(q.protocol) << " port " << q.dport;
      ASSERT_EQ(got.denyIngress, want.denyIngress)
          << "seed " << seed << " flow " << q.src.toString() << " -> " << q.dst.toString()
          << " proto " << int(q.protocol) << " port " << q.dport;
      ASSERT_EQ(got.auditDenyEgress, want.auditDenyEgress) << "seed " << seed;
      ASSERT_EQ(got.auditDenyIngress, want.auditDenyIngress) << "seed " << seed;
    }
  }
  EXPECT_EQ(cases, 12000u);
  // The generator must exercise both outcomes, or the agreement means little.
  EXPECT_GT(denials, cases / 10);
  EXPECT_LT(denials, cases * 9 / 10);
}

}  // namespace
}  // namespace nodeplane::policy
