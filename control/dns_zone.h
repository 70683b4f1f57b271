// The cluster DNS zone of a set of services (dns/zone.h), and the addresses queries to it come
// to: the kube-system/kube-dns Service's ClusterIPs (the conventional name kubelet's
// --cluster-dns points at) and the daemon's --cluster-dns addresses. Control thread only.
#pragma once

#include <memory>

#include "control/model.h"
#include "control/protocol.h"
#include "control/service_registry.h"
#include "core/json.h"
#include "dataplane/snapshot.h"

namespace nodeplane::control {

// Null when the responder is off (--no-dns-responder). `ready`: a desired state with services
// has been applied (before it, names in the cluster domain get SERVFAIL).
std::shared_ptr<const dataplane::DnsTable> buildDnsTable(const ServiceRegistry::Services& services,
                                                         const NodeSettings& settings, bool ready,
                                                         uint32_t serial);

// Op "dns": a name looked up in the zone the workers answer from (the responder itself, on a
// query built here), as dig would print the answer. args: name, type (default A).
Result<Json> lookUpName(const dataplane::Snapshot* snapshot, const Json& args);

// The answer in a packet the DNS stage built, as one line (npctl trace); empty if none.
std::string describeDnsAnswer(const uint8_t* message, size_t length);
}  // namespace nodeplane::control
