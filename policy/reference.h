// The NetworkPolicy semantics written as directly as the Kubernetes documentation states them:
// policies, selectors and peers evaluated one by one for one flow. Slow, obviously right: the
// classifier the data plane uses is tested against it on generated flows, and npctl uses it to
// explain a verdict.
#pragma once

#include <cstdint>

#include "core/ipv4.h"
#include "policy/model.h"

namespace nodeplane::policy {

struct FlowQuery {
  Ipv4Address src;
  Ipv4Address dst;
  uint8_t protocol = kProtoTcp;  // any IP protocol; ports only count for TCP, UDP and SCTP
  uint16_t dport = 0;
};

struct ReferenceVerdict {
  bool egressAllowed = true;   // by the policies selecting the source pod (if it is one)
  bool ingressAllowed = true;  // by the policies selecting the destination pod (if it is one)
  bool allowed() const { return egressAllowed && ingressAllowed; }
};

// `withAudit`: audit-mode policies count as enforced (what they would do); otherwise they are
// left out, as the data plane's effective verdict leaves them out.
ReferenceVerdict referenceVerdict(const PolicyState& state, const FlowQuery& flow, bool withAudit);

// Does `peer` (of a policy in `policyNamespace`) match the address, with the pod at that address
// if there is one?
bool peerMatches(const PolicyState& state, const Peer& peer, const std::string& policyNamespace,
                 Ipv4Address address, const PodIdentity* pod);
const Labels& namespaceLabels(const PolicyState& state, const std::string& name);

}  // namespace nodeplane::policy
