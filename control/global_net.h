// Globalnet (issue 13): linked clusters whose pod and service CIDRs overlap (most keep the
// defaults) reach each other through global addresses, as Submariner's Globalnet does. Each
// cluster has a global CIDR of its own (--cluster-global-cidr); its peers route only that.
// - Egress: a pod's new flow to a peer's global CIDR is source-NATed by the service stage to
//   this cluster's global egress address (the first address of its global CIDR), with a port
//   from the SNAT allocator, and tracked; its replies are translated back by conntrack.
// - Ingress: an exported service (cluster.export.set) gets a global address of its own; what a
//   peer sends to it is translated, statelessly as it leaves the ESP link, to the service's
//   ClusterIP and so goes through the service's normal Maglev path; what leaves for a peer from
//   that ClusterIP (the replies, un-DNATed by conntrack) is translated back as it enters the link.
//   An exported headless service has no ClusterIP: each of its ready endpoints gets a global
//   address instead (from the top of the global CIDR down, kept while the endpoint stays),
//   translated to and from the pod's address the same way, so peers reach the pods themselves
//   (`<svc>.<ns>.svc.clusterset.local` answers their global addresses).
// Anything else to or from a global address is dropped with a named reason, never leaked with
// a cluster-local address. Control thread only; the data plane's side is in
// dataplane/cluster_link.h.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/model.h"
#include "core/result.h"

namespace nodeplane::control {

// Exported services by namespace/name, and the global address each was given (0.0.0.0 without
// Globalnet: exported at its ClusterIP).
using ExportMap = std::map<std::string, Ipv4Address>;

// One exported service, or one endpoint of an exported headless service, as the data plane
// translates it.
struct GlobalIngress {
  Ipv4Address globalIp;
  Ipv4Address localIp;    // the service's first ClusterIP, or the endpoint's pod address
  std::string service;    // namespace/name
  bool endpoint = false;  // an endpoint of a headless service
  std::string hostname;   // its hostname (EndpointSlice), for the peers' DNS
  bool operator==(const GlobalIngress&) const = default;
};
using GlobalIngressList = std::vector<GlobalIngress>;

// The address this cluster's pods reach peers from: the first of its global CIDR.
Ipv4Address globalEgressIp(const Ipv4Prefix& globalCidr);

// The global address for exporting `service` (0.0.0.0 when this cluster has no global CIDR and
// none is asked for): `wanted` checked (inside the global CIDR, neither
// its network, broadcast nor egress address, not another export's), or else the one it already
// has, or else the lowest free one. An error names the field.
// `inUse`: the endpoints' global addresses, also not given.
Result<Ipv4Address> exportAddress(const std::string& service, std::optional<Ipv4Address> wanted,
                                  const NodeSettings& settings, const ExportMap& exports,
                                  const GlobalIngressList& inUse = {});

// What the data plane translates: every export whose service exists and has a ClusterIP; with a
// global CIDR also every ready endpoint of an exported headless service, at the address it had
// in `before` (the list in force) or the highest free one. ExternalName and missing services are
// left out (exportState says why).
GlobalIngressList resolveGlobalIngress(const ExportMap& exports,
                                       const std::map<std::string, ServiceSpec>& services,
                                       const NodeSettings& settings,
                                       const GlobalIngressList& before = {});

// "active", "no such service", "headless (its endpoints get global addresses)" or "headless (no
// ClusterIP)" (without a global CIDR), "ExternalName (not exported)".
std::string exportState(const std::string& service,
                        const std::map<std::string, ServiceSpec>& services,
                        const NodeSettings& settings);

}  // namespace nodeplane::control
