#include "control/node_controller.h"

#include <net/if.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "control/model_json.h"
#include "lb/conntrack.h"
#include "overlay/vxlan.h"

namespace nodeplane::control {

namespace dp = dataplane;

namespace {

bool isDnsLabel(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
      return false;
  return std::isalnum(static_cast<unsigned char>(s.front())) &&
         std::isalnum(static_cast<unsigned char>(s.back()));
}

bool isInterfaceName(const std::string& s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  for (char c : s)
    if (c == '/' || c == ',' || c == '=' || c == ':' || std::isspace(static_cast<unsigned char>(c)) ||
        !std::isprint(static_cast<unsigned char>(c)))
      return false;
  return true;
}

rte_ether_addr toEther(const MacAddress& mac) {
  rte_ether_addr e;
  std::memcpy(e.addr_bytes, mac.bytes.data(), 6);
  return e;
}

std::string describe(const PodAttachment& s) {
  return "pod " + s.namespaceName + "/" + s.name + " (" + s.interface + ")";
}

}  // namespace

NodeController::NodeController(NodeSettings settings, dp::DataplaneBackend& backend)
    : settings_(std::move(settings)),
      backend_(backend),
      interfaceExists_([](const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }),
      resolver_(backend) {}

MacAddress NodeController::vtepMac() const {
  if (settings_.vtepMac) return *settings_.vtepMac;
  const rte_ether_addr e = overlay::defaultVtepMac(settings_.nodeIp.value);
  MacAddress m;
  std::memcpy(m.bytes.data(), e.addr_bytes, 6);
  return m;
}

Ipv4Address NodeController::nextHopFor(Ipv4Address endpoint) const {
  const Ipv4Prefix subnet{Ipv4Address{settings_.nodeIp.value &
                                      Ipv4Prefix{{}, settings_.underlayPrefixLength}.mask()},
                          settings_.underlayPrefixLength};
  if (!settings_.underlayGateway || subnet.contains(endpoint)) return endpoint;
  return *settings_.underlayGateway;
}

Status NodeController::start() {
  if (auto st = publish(pods_, nodes_); !st) return st;
  if (!settings_.uplinkDevargs.empty()) {
    std::string devargs = settings_.uplinkDevargs;
    // An af_packet uplink needs a socket (queue pair) per worker; fill it in when not given.
    if (devargs.rfind("net_af_packet", 0) == 0 && devargs.find("qpairs=") == std::string::npos)
      devargs += ",qpairs=" + std::to_string(backend_.workerCount());
    auto port = backend_.openPort(devargs);
    if (!port) return makeError(port.error().code, "uplink: " + port.error().message);
    uplink_ = *port;
    if (auto st = publish(pods_, nodes_); !st) {
      backend_.closePort(port->id);
      uplink_.reset();
      return st;
    }
    resolver_.setUplink(UnderlayResolver::Uplink{port->id, port->mac, settings_.nodeIp});
    updateWantedNeighbors();  // the underlay gateway, when there is one
  }
  restoreState();
  return okStatus();
}

void NodeController::saveState() const {
  if (settings_.stateFile.empty()) return;
  Json pods = Json::array();
  for (const auto& [key, pod] : pods_) pods.push_back(podAttachmentToJson(pod.spec));
  const Json doc = {{"version", 1}, {"node", settings_.nodeName}, {"pods", pods}};
  const std::string tmp = settings_.stateFile + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump(1) << "\n";
    if (!out) {
      spdlog::warn("state file {}: cannot write; attachments will not survive a restart", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), settings_.stateFile.c_str()) != 0)
    spdlog::warn("state file {}: rename failed: {}", settings_.stateFile, std::strerror(errno));
}

void NodeController::restoreState() {
  if (settings_.stateFile.empty()) return;
  std::ifstream in(settings_.stateFile);
  if (!in) return;  // first start
  Json doc = Json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("pods") || !doc["pods"].is_array()) {
    spdlog::warn("state file {}: unreadable, starting without pods", settings_.stateFile);
    return;
  }
  if (doc.value("node", "") != settings_.nodeName) {
    spdlog::warn("state file {} belongs to node '{}', not '{}': ignored", settings_.stateFile,
                 doc.value("node", ""), settings_.nodeName);
    return;
  }
  size_t restored = 0;
  for (const Json& args : doc["pods"]) {
    auto spec = podAttachmentFromJson("state file", args);
    if (!spec) {
      spdlog::warn("state file {}: {}", settings_.stateFile, spec.error().message);
      continue;
    }
    if (!spec->hostInterface.empty() && !interfaceExists_(spec->hostInterface)) {
      spdlog::info("{}: interface {} is gone, not re-attached", describe(*spec),
                   spec->hostInterface);
      continue;
    }
    if (auto r = attachPod(*spec); !r)
      spdlog::warn("re-attaching from the state file: {}", r.error().message);
    else
      ++restored;
  }
  saveState();  // drop what was not restored
  spdlog::info("state file {}: {} pod(s) re-attached", settings_.stateFile, restored);
}

size_t NodeController::detachVanishedPods() {
  std::vector<PodKey> gone;
  for (const auto& [key, pod] : pods_)
    if (!pod.spec.hostInterface.empty() && !interfaceExists_(pod.spec.hostInterface))
      gone.push_back(key);
  for (const PodKey& key : gone) {
    spdlog::warn("{}: host interface {} disappeared without a CNI DEL: detaching",
                 describe(pods_.at(key).spec), pods_.at(key).spec.hostInterface);
    (void)detachPod(key);
  }
  return gone.size();
}

void NodeController::shutdown() {
  std::vector<uint16_t> ports;
  for (const auto& [key, pod] : pods_) ports.push_back(pod.port.id);
  if (uplink_) ports.push_back(uplink_->id);
  pods_.clear();
  nodes_.clear();
  uplink_.reset();
  if (ports.empty()) return;
  (void)publish(pods_, nodes_);
  backend_.synchronize();
  for (uint16_t p : ports) backend_.closePort(p);
}

Status NodeController::validate(const PodAttachment& s, const NodeSettings& settings) {
  const std::string what = describe(s);
  if (!isDnsLabel(s.namespaceName, 63))
    return invalidArgument(what + ": field 'namespace': '" + s.namespaceName +
                           "' is not a valid namespace name");
  if (!isDnsLabel(s.name, 253))
    return invalidArgument(what + ": field 'name': '" + s.name + "' is not a valid pod name");
  if (s.containerId.empty() || s.containerId.size() > 256)
    return invalidArgument(what + ": field 'containerId': empty or longer than 256");
  if (!isInterfaceName(s.interface))
    return invalidArgument(what + ": field 'interface': '" + s.interface +
                           "' is not an interface name");
  if (s.hostInterface.empty() == s.devargs.empty())
    return invalidArgument(what + ": exactly one of 'hostInterface' and 'devargs' is required");
  if (!s.hostInterface.empty() && !isInterfaceName(s.hostInterface))
    return invalidArgument(what + ": field 'hostInterface': '" + s.hostInterface +
                           "' is not an interface name");
  if (!settings.podCidr.contains(s.ip))
    return invalidArgument(what + ": field 'ip': " + s.ip.toString() +
                           " is outside this node's pod CIDR " + settings.podCidr.toString());
  if (s.ip == settings.podCidr.address ||
      s.ip.value == (settings.podCidr.address.value | ~settings.podCidr.mask()))
    return invalidArgument(what + ": field 'ip': " + s.ip.toString() +
                           " is the network or broadcast address of " +
                           settings.podCidr.toString());
  if (s.mac.isZero() || s.mac.isMulticast())
    return invalidArgument(what + ": field 'mac': " + s.mac.toString() +
                           " is not a unicast MAC address");
  return okStatus();
}

Result<AttachedPod> NodeController::attachPod(const PodAttachment& spec) {
  if (auto st = validate(spec, settings_); !st) return st.error();
  const PodKey key{spec.containerId, spec.interface};
  if (auto it = pods_.find(key); it != pods_.end()) {
    if (it->second.spec == spec) return it->second;  // a retried ADD: nothing to do
    return makeError(ErrorCode::kAlreadyExists,
                     describe(spec) + ": container " + spec.containerId + " interface " +
                         spec.interface + " is already attached with different settings");
  }
  for (const auto& [k, pod] : pods_) {
    if (pod.spec.ip == spec.ip)
      return makeError(ErrorCode::kAlreadyExists, describe(spec) + ": field 'ip': " +
                                                      spec.ip.toString() + " already used by " +
                                                      describe(pod.spec));
    if (!spec.hostInterface.empty() && pod.spec.hostInterface == spec.hostInterface)
      return makeError(ErrorCode::kAlreadyExists,
                       describe(spec) + ": field 'hostInterface': " + spec.hostInterface +
                           " already attached for " + describe(pod.spec));
  }

  const std::string devargs =
      !spec.devargs.empty()
          ? spec.devargs
          : "net_af_packet_np" + std::to_string(++portSequence_) + ",iface=" + spec.hostInterface +
                ",qpairs=" + std::to_string(backend_.workerCount());
  auto port = backend_.openPort(devargs);
  if (!port) return makeError(port.error().code, describe(spec) + ": " + port.error().message);

  auto next = pods_;
  next[key] = AttachedPod{spec, *port};
  if (auto st = publish(next, nodes_); !st) {
    backend_.closePort(port->id);  // never published: no worker can be polling it
    return makeError(st.error().code, describe(spec) + ": " + st.error().message);
  }
  pods_ = std::move(next);
  saveState();
  spdlog::info("{} attached: {} on port {} ({}), generation {}", describe(spec),
               spec.ip.toString(), port->id, port->name, generation_);
  return pods_[key];
}

Status NodeController::detachPod(const PodKey& key) {
  auto it = pods_.find(key);
  if (it == pods_.end())
    return makeError(ErrorCode::kNotFound, "no pod attached for container " + key.containerId +
                                               " interface " + key.interface);
  auto next = pods_;
  next.erase(key);
  if (auto st = publish(next, nodes_); !st) return st;
  AttachedPod gone = std::move(it->second);
  pods_ = std::move(next);
  saveState();
  // No worker polls or sends to the port once every worker has passed a quiescent point.
  backend_.synchronize();
  backend_.closePort(gone.port.id);
  spdlog::info("{} detached, generation {}", describe(gone.spec), generation_);
  return okStatus();
}

std::optional<PodKey> NodeController::findPod(const std::string& namespaceName,
                                              const std::string& name) const {
  for (const auto& [key, pod] : pods_)
    if (pod.spec.namespaceName == namespaceName && pod.spec.name == name) return key;
  return std::nullopt;
}

std::vector<AttachedPod> NodeController::pods() const {
  std::vector<AttachedPod> out;
  for (const auto& [key, pod] : pods_) out.push_back(pod);
  return out;
}

Status NodeController::validateNode(const NodeSpec& n, const Nodes& among) const {
  const std::string what = "node " + n.name;
  if (!isDnsLabel(n.name, 253))
    return invalidArgument(what + ": field 'name': not a valid Kubernetes node name");
  if (n.ip.value == 0 || (n.ip.value >> 28) >= 0xe)
    return invalidArgument(what + ": field 'ip': " + n.ip.toString() + " is not a unicast address");
  if (n.vtepMac && (n.vtepMac->isZero() || n.vtepMac->isMulticast()))
    return invalidArgument(what + ": field 'vtepMac': " + n.vtepMac->toString() +
                           " is not a unicast MAC address");
  if (n.name == settings_.nodeName) {  // our own entry, as the cluster sees us
    if (n.ip != settings_.nodeIp)
      return invalidArgument(what + ": field 'ip': " + n.ip.toString() +
                             " but this daemon runs with --node-ip " + settings_.nodeIp.toString());
    if (std::find(n.podCidrs.begin(), n.podCidrs.end(), settings_.podCidr) == n.podCidrs.end())
      return invalidArgument(what + ": field 'podCidrs': does not list this daemon's --pod-cidr " +
                             settings_.podCidr.toString());
    return okStatus();
  }
  if (!uplink_)
    return invalidArgument(what + ": this daemon has no --uplink: other nodes cannot be reached");
  if (n.ip == settings_.nodeIp)
    return invalidArgument(what + ": field 'ip': " + n.ip.toString() + " is this node's address");
  if (n.podCidrs.empty()) return invalidArgument(what + ": field 'podCidrs': empty");
  for (const Ipv4Prefix& c : n.podCidrs) {
    const std::string field = what + ": field 'podCidrs': " + c.toString();
    if (c.overlaps(settings_.podCidr))
      return invalidArgument(field + " overlaps this node's pod CIDR " + settings_.podCidr.toString());
    if (settings_.clusterCidr && !settings_.clusterCidr->contains(c.address))
      return invalidArgument(field + " is outside the cluster CIDR " +
                             settings_.clusterCidr->toString());
    if (settings_.serviceCidr && c.overlaps(*settings_.serviceCidr))
      return invalidArgument(field + " overlaps the service CIDR " +
                             settings_.serviceCidr->toString());
    if (c.contains(settings_.gatewayIp))
      return invalidArgument(field + " contains the pods' gateway " +
                             settings_.gatewayIp.toString());
  }
  for (const auto& [name, other] : among) {
    if (name == n.name || name == settings_.nodeName) continue;
    if (other.ip == n.ip)
      return makeError(ErrorCode::kAlreadyExists, what + ": field 'ip': " + n.ip.toString() +
                                                      " already belongs to node " + name);
    for (const Ipv4Prefix& a : n.podCidrs)
      for (const Ipv4Prefix& b : other.podCidrs)
        if (a.overlaps(b))
          return makeError(ErrorCode::kAlreadyExists,
                           what + ": field 'podCidrs': " + a.toString() + " overlaps " +
                               b.toString() + " of node " + name);
  }
  return okStatus();
}

Status NodeController::setNode(const NodeSpec& spec) {
  if (auto st = validateNode(spec, nodes_); !st) return st;
  if (auto it = nodes_.find(spec.name); it != nodes_.end() && it->second == spec) return okStatus();
  Nodes next = nodes_;
  next[spec.name] = spec;
  if (auto st = publish(pods_, next); !st) return st;
  nodes_ = std::move(next);
  updateWantedNeighbors();
  spdlog::info("node {} set: {} behind {}, generation {}", spec.name,
               spec.podCidrs.empty() ? "-" : spec.podCidrs.front().toString(), spec.ip.toString(),
               generation_);
  return okStatus();
}

Status NodeController::deleteNode(const std::string& name) {
  if (!nodes_.count(name)) return makeError(ErrorCode::kNotFound, "no node named " + name);
  Nodes next = nodes_;
  next.erase(name);
  if (auto st = publish(pods_, next); !st) return st;
  nodes_ = std::move(next);
  updateWantedNeighbors();
  spdlog::info("node {} deleted, generation {}", name, generation_);
  return okStatus();
}

std::vector<NodeSpec> NodeController::nodes() const {
  std::vector<NodeSpec> out;
  for (const auto& [name, n] : nodes_) out.push_back(n);
  return out;
}

Status NodeController::applyServices(ServiceRegistry::Changes changes,
                                     const std::set<uint32_t>& flushSlots) {
  auto prepared =
      services_.prepareChanges(std::move(changes), settings_, backend_.socketId(), flushSlots);
  if (!prepared) return prepared.error();
  if (auto st = publish(pods_, nodes_, /*routesChanged=*/false, prepared->table); !st) return st;
  services_.commit(std::move(*prepared));
  return okStatus();
}

namespace {

// Only the endpoints differ: no address, port or protocol changes, so no conflict is possible.
bool sameFrontend(const ServiceSpec& a, const ServiceSpec& b) {
  return a.type == b.type && a.clusterIps == b.clusterIps && a.externalIps == b.externalIps &&
         a.loadBalancerIps == b.loadBalancerIps && a.ports == b.ports;
}

}  // namespace

Status NodeController::setService(const ServiceSpec& spec) {
  auto it = services_.services().find(spec.key());
  if (it != services_.services().end() && it->second == spec) return okStatus();
  const bool frontendKept = it != services_.services().end() && sameFrontend(it->second, spec);
  if (auto st = ServiceRegistry::validate(
          spec, settings_, frontendKept ? ServiceRegistry::Services{} : services_.services());
      !st)
    return st;
  if (auto st = applyServices({{spec.key(), spec}}); !st) return st;
  spdlog::debug("service {} set: {} port(s), {} endpoint(s), generation {}", spec.key(),
                spec.ports.size(), spec.endpoints.size(), generation_);
  return okStatus();
}

Status NodeController::replaceServices(const std::vector<ServiceSpec>& services) {
  ServiceRegistry::Services next;
  for (const auto& s : services) {
    if (auto st = ServiceRegistry::validate(s, settings_, {}); !st) return st;
    if (!next.emplace(s.key(), s).second)
      return makeError(ErrorCode::kAlreadyExists, "service " + s.key() + " given twice");
  }
  if (auto st = ServiceRegistry::checkConflicts(next, settings_); !st) return st;
  auto prepared = services_.prepare(std::move(next), settings_, backend_.socketId());
  if (!prepared) return prepared.error();
  if (auto st = publish(pods_, nodes_, /*routesChanged=*/false, prepared->table); !st) return st;
  services_.commit(std::move(*prepared));
  spdlog::info("{} services applied, generation {}", services.size(), generation_);
  return okStatus();
}

Status NodeController::setEndpoints(const std::string& ns, const std::string& name,
                                    const std::vector<EndpointSpec>& endpoints) {
  auto it = services_.services().find(ns + "/" + name);
  if (it == services_.services().end())
    return makeError(ErrorCode::kNotFound, "no service " + ns + "/" + name);
  ServiceSpec spec = it->second;
  spec.endpoints = endpoints;
  return setService(spec);
}

Status NodeController::deleteService(const std::string& ns, const std::string& name) {
  if (!services_.services().count(ns + "/" + name))
    return makeError(ErrorCode::kNotFound, "no service " + ns + "/" + name);
  if (auto st = applyServices({{ns + "/" + name, std::nullopt}}); !st) return st;
  spdlog::info("service {}/{} deleted, generation {}", ns, name, generation_);
  return okStatus();
}

Result<std::shared_ptr<const policy::PolicyTable>> NodeController::buildPolicyTable(
    policy::PolicyState state) {
  if (!policyRuntime_) {
    const lb::ConnTracker* ct = backend_.conntrack();
    auto runtime = policy::PolicyRuntime::create(backend_.workerCount(), settings_.maxPolicies,
                                                 ct ? ct->shard(0).slots() : 0,
                                                 backend_.socketId());
    if (!runtime) return runtime.error();
    policyRuntime_ = std::move(*runtime);
  }
  state.audit = state.audit || settings_.policyAudit;
  auto shared = std::make_shared<const policy::PolicyState>(std::move(state));
  policy::PolicyTableOptions options{backend_.workerCount(), settings_.l7FlowsPerWorker,
                                     backend_.socketId()};
  auto table = policy::PolicyTable::build(shared, settings_.podCidr, policyGeneration_ + 1,
                                          policyRuntime_, options);
  if (!table) {
    policyRuntime_->retain(currentPolicyKeys());  // slots the failed build assigned
    return table.error();
  }
  return std::shared_ptr<const policy::PolicyTable>(std::move(*table));
}

void NodeController::commitPolicyTable() {
  policyGeneration_ = policyTable_->generation();
  policyRuntime_->retain(currentPolicyKeys());
  const auto& c = policyTable_->compiled();
  spdlog::info("policy applied: {} NetworkPolicies, {} L7 rule objects; {} classifier rules, "
               "{} pods isolated for ingress, {} for egress; policy generation {}",
               policyTable_->state().policies.size(), policyTable_->state().l7Rules.size(),
               c.rules.size(), c.isolatedIngress, c.isolatedEgress, policyGeneration_);
}

Status NodeController::applyPolicy(policy::PolicyState state) {
  auto table = buildPolicyTable(std::move(state));
  if (!table) return table.error();
  auto previous = policyTable_;
  policyTable_ = *table;
  if (auto st = publish(pods_, nodes_, /*routesChanged=*/false); !st) {
    policyTable_ = previous;
    policyRuntime_->retain(currentPolicyKeys());
    return st;
  }
  commitPolicyTable();
  return okStatus();
}

Result<ApplyResult> NodeController::applyDesired(DesiredState state) {
  std::vector<std::string> problems;
  auto note = [&](const Error& e) { problems.push_back(e.message); };

  // Nodes: the list replaces the table.
  Nodes nextNodes = nodes_;
  if (state.nodes) {
    nextNodes.clear();
    for (const NodeSpec& n : *state.nodes)
      if (!nextNodes.emplace(n.name, n).second) note(invalidArgument("node " + n.name + ": listed twice"));
    for (const auto& [name, n] : nextNodes)
      if (auto st = validateNode(n, nextNodes); !st) note(st.error());
  }
  const bool nodesChanged = state.nodes && nextNodes != nodes_;

  // Services: every one validated, then conflicts between them.
  ServiceRegistry::Services nextServices;
  if (state.services) {
    for (const ServiceSpec& sv : *state.services) {
      if (auto st = ServiceRegistry::validate(sv, settings_, {}); !st) note(st.error());
      else if (!nextServices.emplace(sv.key(), sv).second)
        note(invalidArgument("service " + sv.key() + ": listed twice"));
    }
    if (problems.empty())
      if (auto st = ServiceRegistry::checkConflicts(nextServices, settings_); !st) note(st.error());
  }
  const bool servicesChanged = state.services && nextServices != services_.services();

  // Policy: rebuilt only when it changed (a rebuild makes every flow be judged again and restarts
  // L7 scanning).
  const bool policyChanged =
      state.policy && (!policyTable_ || !(policyTable_->state() == [&] {
        policy::PolicyState p = *state.policy;
        p.audit = p.audit || settings_.policyAudit;
        return p;
      }()));
  std::shared_ptr<const policy::PolicyTable> nextPolicy = policyTable_;
  if (policyChanged && problems.empty()) {
    auto table = buildPolicyTable(std::move(*state.policy));
    if (!table) note(table.error());
    else nextPolicy = *table;
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
    return invalidArgument("apply: " + message);
  }

  ApplyResult result;
  result.nodesChanged = nodesChanged;
  result.servicesChanged = servicesChanged;
  result.policyChanged = policyChanged;
  if (nodesChanged || servicesChanged || policyChanged) {
    std::optional<ServiceRegistry::Prepared> prepared;
    if (servicesChanged) {
      auto p = services_.prepare(std::move(nextServices), settings_, backend_.socketId());
      if (!p) return p.error();
      prepared = std::move(*p);
    }
    auto previousPolicy = policyTable_;
    policyTable_ = nextPolicy;
    if (auto st = publish(pods_, nextNodes, nodesChanged, prepared ? prepared->table : nullptr);
        !st) {
      policyTable_ = previousPolicy;
      if (policyRuntime_) policyRuntime_->retain(currentPolicyKeys());
      return st.error();
    }
    if (prepared) services_.commit(std::move(*prepared));
    if (nodesChanged) {
      nodes_ = std::move(nextNodes);
      updateWantedNeighbors();
    }
    if (policyChanged) commitPolicyTable();
  }
  if (state.generation != 0) appliedGeneration_ = state.generation;
  result.generation = appliedGeneration_;
  result.snapshot = generation_;
  spdlog::info("apply {}: nodes {}, services {}, policy {}; snapshot {}", appliedGeneration_,
               nodesChanged ? "changed" : "unchanged", servicesChanged ? "changed" : "unchanged",
               policyChanged ? "changed" : "unchanged", generation_);
  return result;
}

std::set<std::string> NodeController::currentPolicyKeys() const {
  std::set<std::string> keys;
  if (policyTable_)
    for (const auto& p : policyTable_->state().policies) keys.insert(p.key());
  return keys;
}

size_t NodeController::drainPolicyLog() {
  if (!policyRuntime_) return 0;
  const size_t n = policyRuntime_->drain();
  const auto& recent = policyRuntime_->recent();
  for (size_t i = recent.size() - std::min(n, recent.size()); i < recent.size(); ++i) {
    const auto& e = recent[i];
    const auto& r = e.record;
    spdlog::info("policy {}: {} {}:{} -> {}:{}{}", policy::policyEventName(r.event),
                 policy::protocolName(r.protocol),
                 Ipv4Address{rte_be_to_cpu_32(r.src)}.toString(), rte_be_to_cpu_16(r.sport),
                 Ipv4Address{rte_be_to_cpu_32(r.dst)}.toString(), rte_be_to_cpu_16(r.dport),
                 e.policy.empty() ? "" : " (networkpolicy " + e.policy + ")");
  }
  return n;
}

Result<size_t> NodeController::flushFlows(
    const std::optional<std::string>& service,
    const std::optional<std::pair<Ipv4Address, uint16_t>>& backend) {
  std::set<uint32_t> slots;
  if (service) {
    if (!services_.services().count(*service))
      return makeError(ErrorCode::kNotFound, "no service " + *service);
    slots = services_.slotsOf(*service);
  }
  if (backend) {
    auto more = services_.slotsOf(backend->first, backend->second);
    if (more.empty())
      return makeError(ErrorCode::kNotFound, "no backend " + backend->first.toString() + ":" +
                                                 std::to_string(backend->second));
    slots.insert(more.begin(), more.end());
  }
  if (slots.empty()) return size_t{0};
  if (auto st = applyServices({}, slots); !st) return st.error();
  return slots.size();
}

void NodeController::updateWantedNeighbors() {
  std::set<Ipv4Address> wanted;
  for (const auto& [name, n] : nodes_)
    if (name != settings_.nodeName) wanted.insert(nextHopFor(n.ip));
  if (uplink_ && settings_.underlayGateway) wanted.insert(*settings_.underlayGateway);
  if (resolver_.setWanted(wanted, UnderlayResolver::TimePoint::clock::now()))
    (void)publish(pods_, nodes_, /*routesChanged=*/false);
}

void NodeController::serviceSlowPath(UnderlayResolver::TimePoint now) {
  if (resolver_.service(now, current_)) {
    if (auto st = publish(pods_, nodes_, /*routesChanged=*/false); !st)
      spdlog::error("republishing encap templates: {}", st.error().message);
  }
}

Result<std::shared_ptr<const overlay::OverlayTable>> NodeController::buildOverlay(
    const Nodes& nodes) const {
  overlay::OverlaySettings o;
  o.localIp = settings_.nodeIp;
  o.udpPort = settings_.vxlanPort;
  o.vni = settings_.vni;
  o.vtepMac = vtepMac();
  o.uplinkPort = uplink_->id;
  o.uplinkMac = uplink_->mac;
  o.mtu = settings_.mtu;
  o.txIpChecksumOffload = uplink_->txIpv4ChecksumOffload;
  std::vector<overlay::RemoteNodeSpec> remotes;
  for (const auto& [name, n] : nodes) {
    if (name == settings_.nodeName) continue;
    overlay::RemoteNodeSpec r;
    r.ip = n.ip;
    if (n.vtepMac) {
      r.vtepMac = *n.vtepMac;
    } else {
      const rte_ether_addr e = overlay::defaultVtepMac(n.ip.value);
      std::memcpy(r.vtepMac.bytes.data(), e.addr_bytes, 6);
    }
    r.nextHop = nextHopFor(n.ip);
    r.nextHopMac = resolver_.mac(r.nextHop);
    remotes.push_back(r);
  }
  std::optional<overlay::GatewaySpec> gateway;
  if (settings_.underlayGateway)
    gateway = overlay::GatewaySpec{*settings_.underlayGateway,
                                   resolver_.mac(*settings_.underlayGateway)};
  return overlay::OverlayTable::build(o, remotes, gateway, backend_.socketId());
}

Result<std::shared_ptr<const dp::RouteTable>> NodeController::buildRoutes(
    const std::map<PodKey, AttachedPod>& pods, const Nodes& nodes) const {
  dp::RouteTableBuilder routes;
  // This node's pod CIDR without a pod behind an address: dropped as an unknown pod.
  dp::NextHop unknownPod;
  unknownPod.drop = dp::DropReason::kPodUnknown;
  routes.addRoute(settings_.podCidr, routes.addNextHop(unknownPod));
  dp::NextHop gateway;
  gateway.kind = dp::NextHopKind::kGateway;
  routes.addRoute(Ipv4Prefix{settings_.gatewayIp, 32}, routes.addNextHop(gateway));
  if (settings_.serviceCidr) {  // a service address no service answers on
    dp::NextHop unknown;
    unknown.drop = dp::DropReason::kServiceUnknown;
    routes.addRoute(*settings_.serviceCidr, routes.addNextHop(unknown));
  }
  if (uplink_ && settings_.underlayGateway) {  // out of the cluster (masqueraded)
    dp::NextHop out;
    out.kind = dp::NextHopKind::kUplink;
    out.drop = dp::DropReason::kNone;
    routes.addRoute(Ipv4Prefix{Ipv4Address{0}, 0}, routes.addNextHop(out));
  }
  for (const auto& [key, pod] : pods) {
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kLocalPod;
    nh.drop = dp::DropReason::kNone;
    nh.port = pod.port.id;
    nh.dstMac = toEther(pod.spec.mac);
    nh.srcMac = toEther(pod.port.mac);
    routes.addRoute(Ipv4Prefix{pod.spec.ip, 32}, routes.addNextHop(nh));
  }
  // Remote nodes, indexed as buildOverlay() lays them out (map order, ourselves skipped).
  uint32_t index = 0;
  for (const auto& [name, n] : nodes) {
    if (name == settings_.nodeName) continue;
    dp::NextHop nh;
    nh.kind = dp::NextHopKind::kRemoteNode;
    nh.drop = dp::DropReason::kNone;
    nh.remoteNode = index++;
    const uint32_t nhIndex = routes.addNextHop(nh);
    for (const Ipv4Prefix& c : n.podCidrs) routes.addRoute(c, nhIndex);
  }
  return std::move(routes).build(backend_.socketId());
}

Status NodeController::publish(const std::map<PodKey, AttachedPod>& pods, const Nodes& nodes,
                               bool routesChanged,
                               std::shared_ptr<const lb::ServiceTable> services) {
  auto snap = std::make_unique<dp::Snapshot>();
  snap->generation = generation_ + 1;
  snap->settings.podCidr = settings_.podCidr.address.value;
  snap->settings.podCidrMask = settings_.podCidr.mask();
  snap->settings.gatewayIp = rte_cpu_to_be_32(settings_.gatewayIp.value);
  snap->settings.nodeIp = rte_cpu_to_be_32(settings_.nodeIp.value);
  snap->settings.icmpErrorsPerSecond = settings_.icmpErrorsPerSecond;
  if (settings_.clusterCidr) {
    snap->settings.clusterCidr = settings_.clusterCidr->address.value;
    snap->settings.clusterCidrMask = settings_.clusterCidr->mask();
  }
  if (settings_.serviceCidr) {
    snap->settings.serviceCidr = settings_.serviceCidr->address.value;
    snap->settings.serviceCidrMask = settings_.serviceCidr->mask();
  }
  snap->settings.masquerade = uplink_.has_value() && settings_.underlayGateway.has_value();
  snap->services = services ? services : serviceTable_;
  snap->policy = policyTable_;
  snap->workers.resize(backend_.workerCount());

  auto addPort = [&](const dp::PortInfo& port, dp::PortConfig config) {
    config.mac = toEther(port.mac);
    snap->ports[port.id] = config;
    // Queue q of every port is polled by worker q (modulo: a port may have more RX queues).
    for (uint16_t q = 0; q < port.rxQueues; ++q)
      snap->workers[q % snap->workers.size()].rxQueues.push_back(dp::RxQueueRef{port.id, q});
  };
  for (const auto& [key, pod] : pods)
    addPort(pod.port, dp::PortConfig{dp::PortRole::kPod, {}, rte_cpu_to_be_32(pod.spec.ip.value)});
  if (uplink_) {
    addPort(*uplink_, dp::PortConfig{dp::PortRole::kUplink, {}, 0});
    auto overlay = buildOverlay(nodes);
    if (!overlay) return overlay.error();
    snap->overlay = std::move(*overlay);
  }
  if (routesChanged || !routes_) {
    auto routes = buildRoutes(pods, nodes);
    if (!routes) return routes.error();
    snap->routes = std::move(*routes);
  } else {
    snap->routes = routes_;
  }
  routes_ = snap->routes;
  serviceTable_ = snap->services;
  current_ = snap.get();
  backend_.publish(std::move(snap));
  ++generation_;
  return okStatus();
}

}  // namespace nodeplane::control
