// The model's JSON forms, shared by the control protocol (pod.attach args) and the daemon's state
// file, so that both read and write one format.
#pragma once

#include "control/model.h"
#include "control/protocol.h"
#include "core/result.h"

namespace nodeplane::control {

// The pod.attach argument object for an attachment.
Json podAttachmentToJson(const PodAttachment& spec);
// Reads pod.attach arguments; errors name `op` and the field. Does not validate semantics
// (NodeController::validate does).
Result<PodAttachment> podAttachmentFromJson(const std::string& op, const Json& args);

Json serviceSpecToJson(const ServiceSpec& service);
// service.set arguments, in Kubernetes' own field names (see control/README.md).
Result<ServiceSpec> serviceSpecFromJson(const std::string& op, const Json& args);
Result<std::vector<EndpointSpec>> endpointsFromJson(const std::string& op, const Json& list,
                                                    const std::string& field);
Json endpointToJson(const EndpointSpec& e);

Json nodeSpecToJson(const NodeSpec& node);
// node.set arguments: name, ip, podCidrs (array of CIDRs) or podCidr, optional vtepMac.
Result<NodeSpec> nodeSpecFromJson(const std::string& op, const Json& args);

// apply arguments: {"generation", "nodes": [node.set args], "services": [service.set args],
// "policy": {policy.apply args}}. Every problem of every object is reported, joined by "; ".
Result<DesiredState> desiredStateFromJson(const Json& args);

}  // namespace nodeplane::control
