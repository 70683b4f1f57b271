// Checks of the node's own model objects (pod attachments, cluster nodes) against the daemon's
// settings and each other. Each problem is one error naming the object and the field.
#pragma once

#include <map>
#include <string>

#include "control/model.h"
#include "core/result.h"

namespace nodeplane::control {

using NodeMap = std::map<std::string, NodeSpec>;

// "pod ns/name (eth0)", as every message about an attachment names it.
std::string describePod(const PodAttachment& spec);

Status validatePod(const PodAttachment& spec, const NodeSettings& settings);

// A node among `among` (the candidate node table, which may contain it). `hasUplink`: whether
// this daemon can reach other nodes at all.
Status validateNode(const NodeSpec& node, const NodeMap& among, const NodeSettings& settings,
                    bool hasUplink);

}  // namespace nodeplane::control
