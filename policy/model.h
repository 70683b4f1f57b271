// What the policy module enforces, as plain values: the cluster's namespaces and pods (the
// identities selectors pick from), Kubernetes NetworkPolicies (networking.k8s.io/v1, upstream
// semantics) and nodeplane's own L7 rules. Read from JSON by model_json.h; compiled into the
// data plane's classifier by compiler.h. Control thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/ipv4.h"
#include "policy/labels.h"

namespace nodeplane::policy {

inline constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17, kProtoSctp = 132;
const char* protocolName(uint8_t protocol);  // "TCP", "UDP", "SCTP"

struct NamespaceIdentity {
  std::string name;
  Labels labels;  // kubernetes.io/metadata.name is added when missing, as the API server does
  bool operator==(const NamespaceIdentity&) const = default;
};

struct ContainerPort {
  std::string name;  // may be empty
  uint16_t port = 0;
  uint8_t protocol = kProtoTcp;
  bool operator==(const ContainerPort&) const = default;
};

struct PodIdentity {
  std::string namespaceName;
  std::string name;
  Ipv4Address ip;
  Labels labels;
  std::vector<ContainerPort> ports;  // named ports resolve against these
  std::string key() const { return namespaceName + "/" + name; }
  // The port number a named port has on this pod for `protocol`, or 0.
  uint16_t namedPort(const std::string& portName, uint8_t protocol) const;
  bool operator==(const PodIdentity&) const = default;
};

// NetworkPolicyPort: all ports of `protocol` (port 0, no name), one port or a range
// (port..endPort), or a named port resolved against the pod on the far side.
struct PortMatch {
  uint8_t protocol = kProtoTcp;
  uint16_t port = 0;
  uint16_t endPort = 0;  // 0: just `port`
  std::string name;
  bool operator==(const PortMatch&) const = default;
};

struct IpBlock {
  Ipv4Prefix cidr;
  std::vector<Ipv4Prefix> except;
  bool operator==(const IpBlock&) const = default;
};

// NetworkPolicyPeer: pods by selector (in the policy's namespace, or in the namespaces the
// namespace selector picks, or both together), or an address block.
struct Peer {
  std::optional<LabelSelector> podSelector;
  std::optional<LabelSelector> namespaceSelector;
  std::optional<IpBlock> ipBlock;
  bool operator==(const Peer&) const = default;
};

// An ingress or egress rule: traffic from/to any peer (none: everyone) on any port (none: all).
struct PolicyRule {
  std::vector<Peer> peers;
  std::vector<PortMatch> ports;
  bool operator==(const PolicyRule&) const = default;
};

struct NetworkPolicy {
  std::string namespaceName;
  std::string name;
  LabelSelector podSelector;
  bool ingress = true;  // policyTypes, defaulted as the API server does
  bool egress = false;
  std::vector<PolicyRule> ingressRules;
  std::vector<PolicyRule> egressRules;
  bool audit = false;  // annotation nodeplane.io/audit: "true": logged and counted, not enforced
  std::string key() const { return namespaceName + "/" + name; }
  bool operator==(const NetworkPolicy&) const = default;
};

// nodeplane.io/v1 L7Rule: request rules for the TCP ports of the pods it selects (server side).
enum class L7Action : uint8_t { kAllow, kDeny, kLog };
const char* l7ActionName(L7Action a);

struct L7Match {
  L7Action action = L7Action::kDeny;
  // http: any of the three may be empty (any). method: exact token; path: a regex the whole
  // request path must match (query string excluded); host: a regex the whole Host value must match.
  bool http = false;
  std::string method, path, host;
  // or a Hyperscan regex matched anywhere in the client's byte stream.
  std::string pattern;
  bool operator==(const L7Match&) const = default;
};

struct L7Rule {
  std::string namespaceName;
  std::string name;
  LabelSelector podSelector;
  std::vector<PortMatch> ports;  // TCP only; empty: every TCP port of the selected pods
  std::vector<L7Match> rules;
  std::string key() const { return namespaceName + "/" + name; }
  bool operator==(const L7Rule&) const = default;
};

// The whole policy input of a node (policy.apply replaces it at once).
struct PolicyState {
  std::vector<NamespaceIdentity> namespaces;
  std::vector<PodIdentity> pods;
  std::vector<NetworkPolicy> policies;
  std::vector<L7Rule> l7Rules;
  bool audit = false;  // every policy in audit mode
  bool operator==(const PolicyState&) const = default;
};

}  // namespace nodeplane::policy
