// The cluster DNS zone of a set of services (dns/zone.h), and the addresses queries to it come
// to: the kube-system/kube-dns Service's ClusterIPs (the conventional name kubelet's
// --cluster-dns points at) and the daemon's --cluster-dns addresses. Control thread only.
#pragma once

#include <memory>

#include "control/model.h"
#include "control/service_registry.h"
#include "dataplane/snapshot.h"

namespace nodeplane::control {

// Null when the responder is off (--no-dns-responder). `ready`: a desired state with services
// has been applied (before it, names in the cluster domain get SERVFAIL).
std::shared_ptr<const dataplane::DnsTable> buildDnsTable(const ServiceRegistry::Services& services,
                                                         const NodeSettings& settings, bool ready,
                                                         uint32_t serial);

}  // namespace nodeplane::control
