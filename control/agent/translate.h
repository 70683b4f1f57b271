// From cluster state to one node's desired state (the `apply` op's arguments): every node's
// tunnel endpoint and pod CIDRs, every Service with its endpoints (EndpointSlices; v1 Endpoints
// when a Service has no slice; the pods its selector picks when it has neither, as the
// EndpointSlice controller would), and the policy state (namespaces, pods as identities,
// NetworkPolicies, L7 rules), and the exported services (ServiceExport, multicluster.x-k8s.io).
//
// An object that cannot be used is reported as "<kind> <namespace>/<name>: field '<path>': <why>"
// and left out; the rest is translated.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "control/agent/cluster_state.h"

namespace nodeplane::agent {

struct Translation {
  Json args = Json::object();  // nodes, services, policy (generation is the caller's)
  std::vector<std::string> problems;
  // Running pods left out because their status has no IPv4 address yet (status.podIP/podIPs):
  // "namespace/name". Pod manifests need it, as the API server reports it once the pod runs.
  std::set<std::string> podsWithoutAddress;
  size_t nodes = 0, services = 0, endpoints = 0, pods = 0, policies = 0, l7Rules = 0, exports = 0;
};

// `excluded`: objects the daemon refused ("service ns/name", "node name", ...), left out.
Translation translate(const ClusterState& state, const std::set<std::string>& excluded = {});

// The objects an `apply` error names ("service ns/name", "networkpolicy ns/name", ...), so that
// the agent can leave them out and apply the rest.
std::set<std::string> objectsNamedIn(const std::string& errorMessage);

}  // namespace nodeplane::agent
