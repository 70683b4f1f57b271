#include "dataplane/service_stage.h"

#include <netinet/in.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>

#include "core/checksum.h"
#include "core/icmp.h"
#include "dataplane/flow_context.h"
#include "dataplane/flow_log.h"
#include "dataplane/flow_policy.h"
#include "dataplane/route_stage.h"
#include "dataplane/route_table.h"
#include "lb/conntrack.h"
#include "lb/icmp_nat.h"
#include "lb/nat.h"

namespace nodeplane::dataplane {

// This stage is lb/'s client through and through: its vocabulary, unqualified.
using lb::ConnEntry;
using lb::ConnRef;
using lb::ConnState;
using lb::FlowKey;
using lb::initialTcpState;
using lb::kConnDnat;
using lb::kConnReset;
using lb::kConnReturnMac;
using lb::kConnSnat;
using lb::kServiceAffinity;
using lb::kServiceExternalLocal;
using lb::kServiceInternalLocal;
using lb::natRewrite;
using lb::nextTcpState;
using lb::ServiceAccess;
using lb::ServiceBackend;
using lb::ServicePortEntry;
using lb::ServiceTable;
using lb::translateIcmpError;

namespace {

constexpr uint8_t kProtoAffinity = 0xff;  // affinity records in the flow table

inline uint32_t flowHash(const FlowKey& k) {
  return rte_hash_crc(&k, sizeof(k), 0x6e70u);
}

inline bool inPrefix(rte_be32_t ip, uint32_t net, uint32_t mask) {
  return mask != 0 && (rte_be_to_cpu_32(ip) & mask) == net;
}

// The tuple as FlowKey spells it. False for what is not tracked (non-echo ICMP, other protocols).
inline bool keyOf(const PacketMeta& meta, FlowKey* k) {
  k->src = meta.srcIp;
  k->dst = meta.dstIp;
  k->proto = meta.ipProto;
  switch (meta.ipProto) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
      k->sport = meta.srcPort;
      k->dport = meta.dstPort;
      return true;
    case IPPROTO_ICMP: {
      const uint8_t type = static_cast<uint8_t>(rte_be_to_cpu_16(meta.dstPort) >> 8);
      if (type == RTE_IP_ICMP_ECHO_REQUEST)
        k->sport = meta.srcPort, k->dport = 0;
      else if (type == RTE_IP_ICMP_ECHO_REPLY)
        k->sport = 0, k->dport = meta.srcPort;
      else
        return false;
      return true;
    }
    default:
      return false;
  }
}

bool alive(const FlowContext& fc, const ConnEntry& e) {
  return e.backendSlot == 0 ||
         (fc.services != nullptr && fc.services->alive(e.backendSlot, e.backendTag));
}

// The live entry for `key` in any shard (the rare path: after a dead hit, for affinity).
bool findLive(FlowContext& fc, const FlowKey& key, ConnRef* out) {
  for (unsigned s = 0; s < fc.ct.shardCount(); ++s) {
    ConnRef r;
    if (fc.ct.shard(s).lookup(key, &r) && alive(fc, fc.ct.entry(r)) &&
        fc.ct.entry(r).state() != ConnState::kFree) {
      *out = r;
      return true;
    }
  }
  return false;
}

void updateState(ConnEntry& e, const PacketMeta& meta, bool reply, uint32_t now) {
  e.refresh(now);
  std::atomic_ref<uint16_t> word(e.stateWord);
  uint16_t old = word.load(std::memory_order_relaxed);
  while (true) {
    const auto s = static_cast<ConnState>(old & 0xff);
    uint8_t flags = static_cast<uint8_t>(old >> 8);
    ConnState next = s;
    if (meta.ipProto == IPPROTO_TCP && !(meta.flags & kFlagLaterFragment))
      next = nextTcpState(s, !reply, meta.tcpFlags, &flags);
    else if (s == ConnState::kUdpUnreplied && reply)
      next = ConnState::kUdpReplied;
    const uint16_t desired = static_cast<uint16_t>(static_cast<uint16_t>(next) | flags << 8);
    if (desired == old || word.compare_exchange_weak(old, desired, std::memory_order_relaxed))
      return;
  }
}

void applyNat(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, bool reply) {
  const uint8_t f = e.flags();
  if (!reply) {
    if (f & kConnDnat) natRewrite(m, meta, false, e.reply.src, e.reply.sport);
    if (f & kConnSnat) natRewrite(m, meta, true, e.reply.dst, e.reply.dport);
  } else {
    if (f & kConnDnat) natRewrite(m, meta, true, e.orig.dst, e.orig.dport);
    if (f & kConnSnat) natRewrite(m, meta, false, e.orig.src, e.orig.sport);
  }
  if (f & (kConnDnat | kConnSnat)) meta.flags |= kFlagTranslated;
}

}  // namespace

void returnToClient(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, FlowContext& fc) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1) return meta.setDrop(DropReason::kIpv4TtlExpired);
  decrementTtl(ip);
  rewriteEthernet(m, meta, e.returnMac, fc.snap.ports[e.returnPort].mac);
  meta.setTransmit(e.returnPort);
}

namespace {

// The flow log's record of a new flow this stage decided (flow_log.h): `orig` as the flow
// arrived, `reply` its reply key (the translated flow reversed: the backend, the SNAT address).
// The packet is marked so that dispatch does not record it again.
void logFlow(FlowContext& fc, const rte_mbuf* m, PacketMeta& meta, FlowEvent event,
             const FlowKey& orig, const FlowKey& reply, uint32_t servicePort, uint32_t policySlot) {
  if (fc.ctx.flowLog == nullptr || fc.ctx.dryRun) return;
  FlowRecord r = flowRecordOf(meta, m->port, fc.ctx.workerIndex, event);
  r.src = orig.src;
  r.dst = orig.dst;
  r.sport = orig.sport;
  r.dport = orig.dport;
  r.protocol = orig.proto;
  r.xsrc = reply.dst;
  r.xsport = reply.dport;
  r.xdst = reply.src;
  r.xdport = reply.sport;
  r.translation = static_cast<uint8_t>((r.xdst != r.dst || r.xdport != r.dport ? kFlowDnat : 0) |
                                       (r.xsrc != r.src || r.xsport != r.sport ? kFlowSnat : 0));
  r.servicePort = servicePort;
  r.policy = policySlot;
  if (event == FlowEvent::kPolicyDenied) r.reason = meta.drop;
  fc.ctx.flowLog->record(fc.ctx.workerIndex, r);
  meta.aux = kAuxFlowLogged;
}

// A new flow a policy denied: dropped, and recorded with the denying policy.
void denyFlow(FlowContext& fc, const rte_mbuf* m, PacketMeta& meta, uint8_t verdict,
              uint32_t policySlot, const FlowKey& orig, const FlowKey& reply,
              uint32_t servicePort = 0) {
  meta.setDrop(denyReason(verdict));
  logFlow(fc, m, meta, FlowEvent::kPolicyDenied, orig, reply, servicePort, policySlot);
}

// Inserts a new flow's entry into this worker's shard; in a trace, pretends to (index 0, never
// used: the callers skip what follows an insert in a trace).
int64_t track(FlowContext& fc, const ConnEntry& e) {
  if (fc.ctx.dryRun) return 0;
  const int64_t index = fc.own.insert(e, fc.ctx.nowMs);
  if (index >= 0) ++fc.inserted;
  return index;
}

// A free SNAT source port for `reply` from this worker's share (lb/snat_ports.h).
bool allocatePort(FlowContext& fc, FlowKey& reply, uint32_t hash) {
  return fc.ctx.snatPorts.allocate(fc.own, &reply, hash, fc.ctx.workerIndex, fc.ctx.workerCount,
                                   fc.ctx.nowMs, fc.snap.settings.snatPortFirst,
                                   fc.snap.settings.snatPortLast);
}

ConnState initialState(const PacketMeta& meta) {
  switch (meta.ipProto) {
    case IPPROTO_TCP:
      return initialTcpState(meta.tcpFlags);
    case IPPROTO_UDP:
      return ConnState::kUdpUnreplied;
    default:
      return ConnState::kIcmp;
  }
}

void reject(rte_mbuf* m, PacketMeta& meta, FlowContext& fc) {
  if (meta.ipProto == IPPROTO_TCP) {
    if (buildTcpReset(m, meta)) {
      fc.ctx.counters->drop(DropReason::kServiceNoEndpoints);
      fc.ctx.counters->resetsSent.add();
      return meta.setTransmit(m->port);
    }
    return meta.setDrop(DropReason::kServiceNoEndpoints);
  }
  rejectWithIcmp(m, meta, DropReason::kServiceNoEndpoints, kIcmpDestinationUnreachable,
                 kIcmpCodePortUnreachable, 0, fc.snap, fc.ctx, meta.dstIp);
}

// Session affinity: the backend this client was last sent to on this service port, if alive.
int64_t affinityBackend(FlowContext& fc, const ServicePortEntry& sp, rte_be32_t client,
                        FlowKey* recordKey) {
  recordKey->src = client;
  recordKey->dst = rte_cpu_to_be_32(sp.id);
  recordKey->proto = kProtoAffinity;
  ConnRef r;
  if (!findLive(fc, *recordKey, &r)) return -1;
  ConnEntry& rec = fc.ct.entry(r);
  for (uint32_t i = 0; i < sp.backendCount; ++i) {
    const ServiceBackend& b = fc.services->backend(sp, i);
    // Only while that backend may still take new flows (as kube-proxy: affinity never
    // outlives readiness).
    if (b.slot == rec.backendSlot && b.tag == rec.backendTag && b.usable) {
      if (!fc.ctx.dryRun) rec.touch(fc.ctx.nowMs);
      return i;
    }
  }
  return -1;
}

// Which Maglev table a new flow picks from, and with which hash (pass 1 prefetches the entry).
struct Choice {
  bool external;
  bool localOnly;
  int32_t table;
  uint32_t hash;
};

inline Choice choose(const ServicePortEntry& sp, ServiceAccess access, const PacketMeta& meta,
                     const FlowKey& key) {
  Choice c;
  c.external = access != ServiceAccess::kCluster || (meta.flags & kFlagFromUplink);
  c.localOnly =
      c.external ? (sp.flags & kServiceExternalLocal) : (sp.flags & kServiceInternalLocal);
  c.table = c.localOnly ? sp.tableLocal : sp.tableAll;
  // Affinity services hash the client address alone, so workers racing on a client's first
  // flows still agree.
  c.hash = (sp.flags & kServiceAffinity) ? rte_hash_crc_4byte(meta.srcIp, 0x6e70u) : flowHash(key);
  return c;
}

// Where a new flow leaving the cluster goes, found with one route lookup (for new flows leaving
// the cluster only, and only when the answer matters): another node's own address, reached
// through the overlay and its host path (routed so only when this node has a host path), keeps
// its source, so that node's kernel sees the pod; another cluster's prefixes, reached through its
// gateway, keep it too (their pods see ours), except with Globalnet, where it becomes this
// cluster's global egress address; anything else is masqueraded (when asked) to the node's.
enum class Leaving : uint8_t { kMasquerade, kKeepSource, kGlobalEgress };

Leaving leavingBy(rte_be32_t dst, const Snapshot& snap) {
  if (!snap.settings.hostPath && !snap.settings.clusterPeers) return Leaving::kMasquerade;
  const uint32_t ip = rte_be_to_cpu_32(dst);
  uint64_t index;
  snap.routes->lookup(&ip, &index, 1);
  const NextHop& nh = snap.routes->nextHop(index);
  if (nh.kind == NextHopKind::kRemoteCluster)
    return snap.clusterLinks != nullptr && snap.clusterLinks->globalnet() ? Leaving::kGlobalEgress
                                                                          : Leaving::kKeepSource;
  if (nh.kind == NextHopKind::kRemoteNode && (nh.viaClusterGateway || snap.settings.hostPath))
    return Leaving::kKeepSource;
  return Leaving::kMasquerade;
}

void newServiceFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey& key, uint32_t portIndex,
                    ServiceAccess access, FlowContext& fc) {
  const ServicePortEntry& sp = fc.services->port(portIndex);
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return meta.setDrop(DropReason::kConntrackInvalid);
  const Choice c = choose(sp, access, meta, key);
  const bool external = c.external;
  const bool localOnly = c.localOnly;
  const int32_t table = c.table;
  if (table < 0) {
    if (localOnly && sp.tableAll >= 0) return meta.setDrop(DropReason::kServiceNoLocalEndpoint);
    return reject(m, meta, fc);
  }

  // Backend: the affinity record's while it lasts, else Maglev.
  FlowKey recordKey;
  int64_t chosen = -1;
  const bool affinity = sp.flags & kServiceAffinity;
  if (affinity) chosen = affinityBackend(fc, sp, meta.srcIp, &recordKey);
  if (chosen >= 0 && (localOnly && !fc.services->backend(sp, static_cast<uint32_t>(chosen)).local))
    chosen = -1;
  if (chosen < 0) chosen = fc.services->pick(table, c.hash);
  const ServiceBackend& b = fc.services->backend(sp, static_cast<uint32_t>(chosen));

  // Policy judges the flow as it reaches the backend (egress of the client, ingress of the
  // backend), as Kubernetes requires.
  uint8_t verdict;
  uint32_t policySlot;
  const uint32_t policyWord = newFlowVerdict(fc, key, b.ip, b.port, &verdict, &policySlot);
  if (verdict & policy::kVerdictDeny) {
    FlowKey toBackend = key.reversed();
    toBackend.src = b.ip;
    toBackend.sport = b.port;
    return denyFlow(fc, m, meta, verdict, policySlot, key, toBackend, sp.id);
  }

  ConnEntry e{};
  e.orig = key;
  e.policyWord = policyWord;
  e.reply.src = b.ip;
  e.reply.sport = b.port;
  e.reply.dst = key.src;
  e.reply.dport = key.sport;
  e.reply.proto = key.proto;
  uint8_t flags = kConnDnat;
  // Replies must come back through this node: SNAT when they would not (a pod reaching itself
  // through its service; external traffic sent on to another node's backend). The address is
  // this node's overlay address (the network address of its pod CIDR), routed to it by every
  // pod and every node.
  const bool hairpin = b.ip == meta.srcIp;
  // A backend in another cluster (a clusterset service's) behind a Globalnet link: from this
  // cluster's global egress address, as any flow to a peer (see untracked()).
  const bool toGlobalPeer = !b.local && fc.snap.clusterLinks != nullptr &&
                            fc.snap.clusterLinks->globalnet() &&
                            leavingBy(b.ip, fc.snap) == Leaving::kGlobalEgress;
  if (hairpin || (external && !b.local) || toGlobalPeer) {
    e.reply.dst = toGlobalPeer ? fc.snap.clusterLinks->globalEgressIp
                               : rte_cpu_to_be_32(fc.snap.settings.podCidr);
    if (!allocatePort(fc, e.reply, flowHash(key))) {
      if (!fc.ctx.dryRun) fc.services->countSnatExhausted(fc.ctx.workerIndex, b.slot);
      return meta.setDrop(DropReason::kMasqueradeNoPort);
    }
    flags |= kConnSnat;
  }
  if (meta.flags & kFlagFromUplink) {
    flags |= kConnReturnMac;
    e.returnPort = m->port;
    e.returnMac = rte_pktmbuf_mtod(m, const rte_ether_hdr*)->src_addr;
  }
  e.stateWord = static_cast<uint16_t>(static_cast<uint16_t>(initial) | flags << 8);
  e.servicePort = sp.id;
  e.backendSlot = b.slot;
  e.backendTag = b.tag;
  const int64_t index = track(fc, e);
  if (index < 0) return meta.setDrop(DropReason::kConntrackFull);
  if (!startFlow(fc, m, meta, verdict, static_cast<uint32_t>(index))) return;
  if (affinity) {
    ConnEntry rec{};
    rec.orig = rec.reply = recordKey;
    rec.stateWord = static_cast<uint16_t>(ConnState::kAffinity);
    rec.servicePort = sp.id;
    rec.backendSlot = b.slot;
    rec.backendTag = b.tag;
    rec.affinityTimeoutMs = sp.affinityTimeoutMs;
    ConnRef existing;
    if (!findLive(fc, recordKey, &existing)) (void)track(fc, rec);
  }
  fc.ctx.counters->serviceFlows.add();
  logFlow(fc, m, meta, FlowEvent::kForwarded, key, e.reply, sp.id, policySlot);
  natRewrite(m, meta, false, b.ip, b.port);
  if (flags & kConnSnat) natRewrite(m, meta, true, e.reply.dst, e.reply.dport);
  meta.flags |= kFlagTranslated;
}

// A new flow SNATed to `address` (the node's, or with Globalnet this cluster's global egress
// address) with a port from this worker's share.
void newMasqueradeFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey& key, FlowContext& fc,
                       rte_be32_t address, Counter& flows) {
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return meta.setDrop(DropReason::kConntrackInvalid);
  uint8_t verdict;
  uint32_t policySlot;
  const uint32_t policyWord = newFlowVerdict(fc, key, key.dst, key.dport, &verdict, &policySlot);
  if (verdict & policy::kVerdictDeny)
    return denyFlow(fc, m, meta, verdict, policySlot, key, key.reversed());
  ConnEntry e{};
  e.orig = key;
  e.policyWord = policyWord;
  e.reply = key.reversed();
  e.reply.dst = address;
  if (!allocatePort(fc, e.reply, flowHash(key))) return meta.setDrop(DropReason::kMasqueradeNoPort);
  e.stateWord = static_cast<uint16_t>(static_cast<uint16_t>(initial) | kConnSnat << 8);
  if (track(fc, e) < 0) return meta.setDrop(DropReason::kConntrackFull);
  flows.add();
  logFlow(fc, m, meta, FlowEvent::kForwarded, key, e.reply, 0, policySlot);
  natRewrite(m, meta, true, e.reply.dst, e.reply.dport);
  meta.flags |= kFlagTranslated;
}

// A flow between pods, one of them on this node, once policy is in force: judged, then tracked
// so that its replies pass (and its verdict is kept). What cannot open a tracked flow (a stray
// RST, a protocol without ports) is judged on its own and passes untracked when allowed.
void newPodFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey* key, FlowContext& fc) {
  const DataplaneSettings& s = fc.snap.settings;
  if (!inPrefix(meta.srcIp, s.podCidr, s.podCidrMask) &&
      !inPrefix(meta.dstIp, s.podCidr, s.podCidrMask))
    return;
  if (key == nullptr) {
    if (meta.ipProto == IPPROTO_ICMP) return;  // ICMP errors: related to a flow, passed
    FlowKey bare;
    bare.src = meta.srcIp;
    bare.dst = meta.dstIp;
    bare.proto = meta.ipProto;
    uint8_t verdict;
    uint32_t policySlot;
    (void)newFlowVerdict(fc, bare, bare.dst, 0, &verdict, &policySlot);
    if (verdict & policy::kVerdictDeny)
      denyFlow(fc, m, meta, verdict, policySlot, bare, bare.reversed());
    return;
  }
  uint8_t verdict;
  uint32_t policySlot;
  const uint32_t policyWord = newFlowVerdict(fc, *key, key->dst, key->dport, &verdict, &policySlot);
  if (verdict & policy::kVerdictDeny)
    return denyFlow(fc, m, meta, verdict, policySlot, *key, key->reversed());
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return;  // allowed, not a flow opener: passes untracked
  ConnEntry e{};
  e.orig = *key;
  e.reply = key->reversed();
  e.policyWord = policyWord;
  e.stateWord = static_cast<uint16_t>(initial);
  const int64_t index = track(fc, e);
  if (index < 0) return meta.setDrop(DropReason::kConntrackFull);
  fc.ctx.counters->podFlows.add();
  logFlow(fc, m, meta, FlowEvent::kForwarded, *key, e.reply, 0, policySlot);
  (void)startFlow(fc, m, meta, verdict, static_cast<uint32_t>(index));
}

// Not a tracked flow: a service, a masquerade, an ICMP error about a tracked flow, or traffic that
// needs none of this (pod to pod) — or traffic this node cannot take.
// `service` is the service port pass 1 found for this packet, if any.
struct Found {
  bool found = false;
  uint32_t portIndex = 0;
  ServiceAccess access = ServiceAccess::kCluster;
};

void untracked(rte_mbuf* m, PacketMeta& meta, const FlowKey* key, const Found& service,
               FlowContext& fc) {
  const DataplaneSettings& s = fc.snap.settings;
  const bool fromUplink = meta.flags & kFlagFromUplink;
  if (meta.ipProto == IPPROTO_ICMP && !key) {
    if (translateIcmpError(m, meta, fc.ct, fc.ctx.workerIndex)) {
      fc.ctx.counters->icmpTranslated.add();
      return;
    }
  } else if (service.found) {
    return newServiceFlow(m, meta, *key, service.portIndex, service.access, fc);
  }
  if (inPrefix(meta.dstIp, s.serviceCidr, s.serviceCidrMask))
    return meta.setDrop(DropReason::kServiceUnknown);
  if (meta.dstIp == s.nodeIp) {
    // The node's kernel: through the host port when there is one, except what arrives on a
    // shared uplink, of which the kernel has its own copy (unless the host path is its only way).
    if (!s.hostPath) return meta.setDrop(DropReason::kHostPathUnavailable);
    if (fromUplink && !s.hostDefaultRoute) return meta.setDrop(DropReason::kUplinkForHostKernel);
    if (fc.policy != nullptr) newPodFlow(m, meta, key, fc);
    return;
  }
  if (fromUplink) return meta.setDrop(DropReason::kUplinkNotForNode);
  if (meta.dstIp == s.gatewayIp) return meta.setDrop(DropReason::kGatewayUnsupported);
  // Leaving the cluster from a pod: masquerade, or to a Globalnet peer, its egress address (also
  // for the pods of other nodes, whose traffic to peers this gateway relays).
  const bool fromPod = !(meta.flags & (kFlagFromOverlay | kFlagFromHost));
  const bool fromNode = (meta.flags & (kFlagFromOverlay | kFlagFromCluster)) == kFlagFromOverlay;
  if (((s.masquerade && fromPod) || (fc.snap.clusterLinks != nullptr && (fromPod || fromNode))) &&
      !inPrefix(meta.dstIp, s.clusterCidr, s.clusterCidrMask) &&
      !inPrefix(meta.dstIp, s.podCidr, s.podCidrMask)) {
    Leaving how = leavingBy(meta.dstIp, fc.snap);
    // A pod with a global address of its own (an endpoint of an exported headless service):
    // its traffic keeps its source, translated statelessly at the link (replies to what peers
    // send it included).
    if (how == Leaving::kGlobalEgress && fc.snap.clusterLinks->toGlobal(meta.srcIp) != nullptr)
      how = Leaving::kKeepSource;
    if (how == Leaving::kGlobalEgress || (how == Leaving::kMasquerade && s.masquerade && fromPod)) {
      if (!key) return meta.setDrop(DropReason::kMasqueradeUnsupported);
      if (how == Leaving::kGlobalEgress)
        return newMasqueradeFlow(m, meta, *key, fc, fc.snap.clusterLinks->globalEgressIp,
                                 fc.ctx.counters->globalEgressFlows);
      return newMasqueradeFlow(m, meta, *key, fc, s.nodeIp, fc.ctx.counters->masqueradeFlows);
    }
  }
  if (fc.policy != nullptr) return newPodFlow(m, meta, key, fc);
  // Passed untracked (no policy applied): the flow log still sees a TCP flow open.
  if (key != nullptr && meta.ipProto == IPPROTO_TCP &&
      (meta.tcpFlags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG | RTE_TCP_RST_FLAG)) ==
          RTE_TCP_SYN_FLAG)
    logFlow(fc, m, meta, FlowEvent::kForwarded, *key, key->reversed(), 0, 0);
}

}  // namespace

void serviceStage(Burst& burst, const Snapshot& snapshot, WorkerContext& ctx) {
  if (ctx.conntrack == nullptr) return;
  MadePackets made;
  FlowContext fc{snapshot, snapshot.services.get(), snapshot.policy.get(),
                 ctx,      *ctx.conntrack,          ctx.conntrack->shard(ctx.workerIndex),
                 made};
  FlowKey keys[kMaxBurst];
  const FlowKey* lookup[kMaxBurst];
  uint16_t position[kMaxBurst];
  bool keyed[kMaxBurst];
  unsigned n = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    keyed[i] = false;
    if (meta.action != Action::kContinue || meta.l3 != L3Kind::kIpv4) continue;
    if (meta.flags & kFlagLaterFragment) continue;  // decided below, without a tuple
    if (!keyOf(meta, &keys[i])) continue;
    keyed[i] = true;
    lookup[n] = &keys[i];
    position[n++] = i;
  }
  ConnRef refs[kMaxBurst];
  const uint64_t hits = n == 0 ? 0 : fc.ct.lookupBulk(ctx.workerIndex, lookup, n, refs);
  // The entries are in a table far bigger than the caches: ask for all of them before using any.
  for (uint64_t m = hits; m; m &= m - 1) rte_prefetch0(&fc.ct.entry(refs[__builtin_ctzll(m)]));

  // Pass 1 for the misses: which are services (one bulk lookup), and prefetch the Maglev entry
  // each will pick, so a burst of new connections waits for memory once, not once per flow.
  Found found[kMaxBurst];
  const uint64_t allKeyed = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
  if (fc.services != nullptr && (allKeyed & ~hits) != 0) {
    ServiceTable::Query queries[kMaxBurst];
    unsigned position2[kMaxBurst];
    unsigned q = 0;
    for (uint64_t m = allKeyed & ~hits; m; m &= m - 1) {
      const unsigned k = static_cast<unsigned>(__builtin_ctzll(m));
      const PacketMeta& meta = burst.meta[position[k]];
      if (meta.ipProto == IPPROTO_ICMP) continue;
      queries[q] = ServiceTable::Query{meta.dstIp, meta.dstPort, meta.ipProto};
      position2[q++] = k;
    }
    uint32_t portIndex[kMaxBurst];
    ServiceAccess access[kMaxBurst];
    const uint64_t services = q == 0 ? 0 : fc.services->findBulk(queries, q, portIndex, access);
    for (uint64_t m = services; m; m &= m - 1) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(m));
      const unsigned k = position2[i];
      found[k] = Found{true, portIndex[i], access[i]};
      const ServicePortEntry& sp = fc.services->port(portIndex[i]);
      const Choice c = choose(sp, access[i], burst.meta[position[k]], keys[position[k]]);
      if (c.table >= 0) rte_prefetch0(fc.services->pickAddress(c.table, c.hash));
    }
  }

  // By now the entries have arrived: fetch their backends' liveness tags the same way.
  if (fc.services != nullptr)
    for (uint64_t m = hits; m; m &= m - 1)
      fc.services->prefetchTag(fc.ct.entry(refs[__builtin_ctzll(m)]).backendSlot);

  unsigned j = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.l3 != L3Kind::kIpv4) continue;
    rte_mbuf* m = burst.pkts[i];
    if (!keyed[i]) {
      if (meta.flags & kFlagLaterFragment) {
        const DataplaneSettings& s = snapshot.settings;
        if ((meta.flags & kFlagFromUplink) || meta.dstIp == s.nodeIp ||
            inPrefix(meta.dstIp, s.serviceCidr, s.serviceCidrMask))
          meta.setDrop(DropReason::kFragmentUntracked);
        continue;
      }
      untracked(m, meta, nullptr, Found{}, fc);
      continue;
    }
    const unsigned k = j++;
    ConnRef ref = refs[k];
    bool hit = hits & (uint64_t{1} << k);
    Found service = found[k];
    // A flow an earlier packet of this burst opened: one entry (and one SNAT port) per flow,
    // however many of its packets arrive together.
    if (!hit && fc.inserted != 0) hit = fc.own.lookup(keys[i], &ref);
    if (hit && !alive(fc, fc.ct.entry(ref))) {
      // Its backend went away (or was flushed): forget it and treat the packet as new.
      if (ref.shard == ctx.workerIndex && !ctx.dryRun) fc.own.remove(ref.index);
      hit = findLive(fc, keys[i], &ref);
      if (!hit && fc.services != nullptr)
        service.found = fc.services->find(meta.dstIp, meta.dstPort, meta.ipProto,
                                          &service.portIndex, &service.access);
    }
    if (!hit) {
      untracked(m, meta, &keys[i], service, fc);
      continue;
    }
    ConnEntry& e = fc.ct.entry(ref);
    uint8_t verdict = 0;
    if (fc.policy != nullptr) {
      if (e.flags() & kConnReset) {
        refuseResetFlow(fc, m, meta, e, ref.reply);
        continue;
      }
      verdict = trackedVerdict(fc, e);
      if (verdict & policy::kVerdictDeny) {
        meta.setDrop(denyReason(verdict));
        continue;
      }
    }
    if (!ctx.dryRun) updateState(e, meta, ref.reply, ctx.nowMs);
    if ((verdict & policy::kVerdictL7) && !ref.reply && meta.ipProto == IPPROTO_TCP &&
        !inspectL7(fc, m, meta, e, ref))
      continue;
    applyNat(m, meta, e, ref.reply);
    if (ref.reply && (e.flags() & kConnReturnMac)) returnToClient(m, meta, e, fc);
  }
  // Resets made for clients go on to the route stage with the rest.
  for (unsigned x = 0; x < made.count; ++x) {
    if (burst.count < kMaxBurst) {
      burst.pkts[burst.count] = made.pkts[x];
      burst.meta[burst.count++] = made.meta[x];
    } else {
      rte_pktmbuf_free(made.pkts[x]);
    }
  }
}

}  // namespace nodeplane::dataplane
