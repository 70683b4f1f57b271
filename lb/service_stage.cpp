#include "lb/service_stage.h"

#include <netinet/in.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>

#include "dataplane/checksum.h"
#include "dataplane/icmp.h"
#include "dataplane/route_stage.h"
#include "lb/conntrack.h"
#include "lb/icmp_nat.h"
#include "lb/nat.h"
#include "policy/enforce.h"

namespace nodeplane::lb {

namespace dp = dataplane;
using dp::Action;
using dp::DropReason;
using dp::PacketMeta;

namespace {

constexpr uint8_t kProtoAffinity = 0xff;  // affinity records in the flow table
constexpr uint16_t kPortFirst = 32768;    // source ports for SNAT: Linux's ephemeral range
constexpr uint16_t kPortLast = 60999;
constexpr uint32_t kPortAttempts = 64;
constexpr uint8_t kIcmpUnreachable = 3, kIcmpPortUnreachable = 3;

// Packets a stage made (TCP resets to clients) that still need routing: appended to the burst.
struct Extras {
  unsigned count = 0;
  rte_mbuf* pkts[dp::kMaxBurst];
  PacketMeta meta[dp::kMaxBurst];
};

struct Stage {
  const dp::Snapshot& snap;
  const ServiceTable* services;
  const policy::PolicyTable* policy;  // null: no policy applied, pod flows not tracked
  dp::WorkerContext& ctx;
  ConnTracker& ct;
  ConnShard& own;
  Extras& extras;
};

inline uint32_t flowHash(const FlowKey& k) { return rte_hash_crc(&k, sizeof(k), 0x6e70u); }

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
      if (type == RTE_IP_ICMP_ECHO_REQUEST) k->sport = meta.srcPort, k->dport = 0;
      else if (type == RTE_IP_ICMP_ECHO_REPLY) k->sport = 0, k->dport = meta.srcPort;
      else return false;
      return true;
    }
    default:
      return false;
  }
}

bool alive(const Stage& st, const ConnEntry& e) {
  return e.backendSlot == 0 || (st.services != nullptr && st.services->alive(e.backendSlot, e.backendTag));
}

// The live entry for `key` in any shard (the rare path: after a dead hit, for affinity).
bool findLive(Stage& st, const FlowKey& key, ConnRef* out) {
  for (unsigned s = 0; s < st.ct.shardCount(); ++s) {
    ConnRef r;
    if (st.ct.shard(s).lookup(key, &r) && alive(st, st.ct.entry(r)) &&
        st.ct.entry(r).state() != ConnState::kFree) {
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
    if (meta.ipProto == IPPROTO_TCP && !(meta.flags & dp::kFlagLaterFragment))
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
  if (f & (kConnDnat | kConnSnat)) meta.flags |= dp::kFlagTranslated;
}

// A reply to a client that came in on the uplink goes straight back to where it came from.
void returnToClient(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, Stage& st) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  if (ip->time_to_live <= 1) return meta.setDrop(DropReason::kIpv4TtlExpired);
  dp::decrementTtl(ip);
  dp::rewriteEthernet(m, meta, e.returnMac, st.snap.ports[e.returnPort].mac);
  meta.setTransmit(e.returnPort);
}

// The verdict for a new flow (client `key`, reaching `server`:`serverPort` after DNAT), as the
// word its entry caches. Sets *bits.
uint32_t newFlowVerdict(Stage& st, const FlowKey& key, rte_be32_t server, rte_be16_t serverPort,
                        uint8_t* bits) {
  *bits = 0;
  if (st.policy == nullptr) return 0;
  if (!st.policy->permissive())
    *bits = policy::evaluate(*st.policy,
                             policy::FlowTuple{key.src, server, key.sport, serverPort, key.proto},
                             st.ctx.workerIndex, *st.ctx.counters, st.ctx.nowMs, !st.ctx.dryRun);
  return policy::verdictWord(st.policy->generation(), *bits);
}

inline DropReason denyReason(uint8_t bits) {
  return (bits & policy::kVerdictDenyEgress) ? DropReason::kPolicyDeniedEgress
                                             : DropReason::kPolicyDeniedIngress;
}

// The cached verdict of a tracked flow, evaluated again when the policy changed since.
uint8_t trackedVerdict(Stage& st, ConnEntry& e) {
  uint32_t word = e.policy();
  const uint32_t generation = st.policy->generation();
  if (policy::verdictGeneration(word) != generation) {
    const uint8_t bits = st.policy->permissive()
                             ? 0
                             : policy::evaluate(*st.policy, policy::flowTupleOf(e),
                                                st.ctx.workerIndex, *st.ctx.counters, st.ctx.nowMs,
                                                !st.ctx.dryRun);
    word = policy::verdictWord(generation, bits);
    if (st.ctx.dryRun) return bits;
    e.setPolicy(word);
    st.ctx.counters->policyReevaluated.add();
  }
  return policy::verdictBits(word);
}

void markReset(ConnEntry& e) {
  std::atomic_ref<uint16_t> word(e.stateWord);
  uint16_t old = word.load(std::memory_order_relaxed);
  uint16_t desired;
  do {
    desired = static_cast<uint16_t>(static_cast<uint16_t>(ConnState::kTcpClose) |
                                    ((old >> 8) | kConnReset) << 8);
  } while (!word.compare_exchange_weak(old, desired, std::memory_order_relaxed));
}

// Sends `m` (already turned into a RST to the client, in the client's view) back the way the
// client's traffic came: to its router for uplink clients, else through the route stage.
void resetToClient(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, Stage& st);

// A client segment of an L7-scanned flow, before translation. False: the packet's fate is
// decided (dropped); true: it goes on (possibly turned into a RST to the server).
bool inspectL7(rte_mbuf* m, PacketMeta& meta, ConnEntry& e, const ConnRef& ref, Stage& st) {
  if (st.ctx.dryRun) return true;  // a trace: L7 rules would scan this segment
  if (ref.shard != st.ctx.workerIndex) {
    meta.setDrop(DropReason::kL7WrongWorker);
    return false;
  }
  switch (policy::inspectClientSegment(*st.policy, st.ctx.workerIndex, st.own, ref.index, m, meta,
                                       e.reply.src, e.reply.sport, *st.ctx.counters,
                                       st.ctx.nowMs)) {
    case policy::L7Outcome::kPass:
      return true;
    case policy::L7Outcome::kOutOfOrder:
      meta.setDrop(DropReason::kL7OutOfOrder);
      return false;
    case policy::L7Outcome::kNoState:
      meta.setDrop(DropReason::kL7NoState);
      return false;
    case policy::L7Outcome::kDeny:
      break;
  }
  if (!st.ctx.dryRun) markReset(e);
  // Both ends learn at once: a RST to the client made from a copy, and the segment itself,
  // emptied, as a RST to the server.
  if (st.extras.count < dp::kMaxBurst) {
    rte_mbuf* copy = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
    PacketMeta copyMeta = meta;
    if (copy != nullptr && dp::buildTcpReset(copy, copyMeta)) {
      st.ctx.counters->resetsSent.add();
      resetToClient(copy, copyMeta, e, st);
      if (copyMeta.action == Action::kDrop) {
        rte_pktmbuf_free(copy);
      } else {
        st.extras.pkts[st.extras.count] = copy;
        st.extras.meta[st.extras.count++] = copyMeta;
      }
    } else if (copy != nullptr) {
      rte_pktmbuf_free(copy);
    }
  }
  if (!policy::rewriteAsReset(m, meta)) {
    meta.setDrop(DropReason::kL7Denied);
    return false;
  }
  return true;
}

// A packet of a flow an L7 rule reset: the client's segments get another RST back (it may have
// missed ours); everything else is dropped.
void refuseResetFlow(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, bool reply, Stage& st) {
  if (!reply && meta.ipProto == IPPROTO_TCP && !(meta.tcpFlags & RTE_TCP_RST_FLAG) &&
      !(meta.flags & dp::kFlagLaterFragment) && dp::buildTcpReset(m, meta)) {
    st.ctx.counters->resetsSent.add();
    return resetToClient(m, meta, e, st);
  }
  meta.setDrop(DropReason::kL7Denied);
}

void resetToClient(rte_mbuf* m, PacketMeta& meta, const ConnEntry& e, Stage& st) {
  if (e.flags() & kConnReturnMac) return returnToClient(m, meta, e, st);
  meta.action = Action::kContinue;  // routed to the client like any packet
}

// Inserts a new flow's entry into this worker's shard; in a trace, pretends to (index 0, never
// used: the callers skip what follows an insert in a trace).
int64_t track(Stage& st, const ConnEntry& e) {
  if (st.ctx.dryRun) return 0;
  return st.own.insert(e, st.ctx.nowMs);
}

// Finds a source port in this worker's share of the range for which the reply tuple is free.
// Workers own disjoint ports (port % workers == worker), so two never pick the same one.
bool allocatePort(Stage& st, FlowKey& reply, uint32_t hash) {
  const unsigned workers = std::max<unsigned>(1, st.ctx.workerCount);
  const uint32_t span = (kPortLast - kPortFirst + 1) / workers;
  for (uint32_t attempt = 0; attempt < kPortAttempts; ++attempt) {
    const uint32_t k = (hash + attempt * 40503u) % span;
    reply.dport = rte_cpu_to_be_16(static_cast<uint16_t>(kPortFirst + k * workers + st.ctx.workerIndex));
    ConnRef r;
    if (!st.own.lookup(reply, &r)) return true;
  }
  return false;
}

ConnState initialState(const PacketMeta& meta) {
  switch (meta.ipProto) {
    case IPPROTO_TCP: return initialTcpState(meta.tcpFlags);
    case IPPROTO_UDP: return ConnState::kUdpUnreplied;
    default: return ConnState::kIcmp;
  }
}

void reject(rte_mbuf* m, PacketMeta& meta, Stage& st) {
  if (meta.ipProto == IPPROTO_TCP) {
    if (dp::buildTcpReset(m, meta)) {
      st.ctx.counters->drop(DropReason::kServiceNoEndpoints);
      st.ctx.counters->resetsSent.add();
      return meta.setTransmit(m->port);
    }
    return meta.setDrop(DropReason::kServiceNoEndpoints);
  }
  dp::rejectWithIcmp(m, meta, DropReason::kServiceNoEndpoints, kIcmpUnreachable,
                     kIcmpPortUnreachable, 0, st.snap, st.ctx, meta.dstIp);
}

// Session affinity: the backend this client was last sent to on this service port, if alive.
int64_t affinityBackend(Stage& st, const ServicePortEntry& sp, rte_be32_t client,
                        FlowKey* recordKey) {
  recordKey->src = client;
  recordKey->dst = rte_cpu_to_be_32(sp.id);
  recordKey->proto = kProtoAffinity;
  ConnRef r;
  if (!findLive(st, *recordKey, &r)) return -1;
  ConnEntry& rec = st.ct.entry(r);
  for (uint32_t i = 0; i < sp.backendCount; ++i) {
    const ServiceBackend& b = st.services->backend(sp, i);
    // Only while that backend may still take new flows (as kube-proxy: affinity never
    // outlives readiness).
    if (b.slot == rec.backendSlot && b.tag == rec.backendTag && b.usable) {
      if (!st.ctx.dryRun) rec.touch(st.ctx.nowMs);
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
  c.external = access != ServiceAccess::kCluster || (meta.flags & dp::kFlagFromUplink);
  c.localOnly = c.external ? (sp.flags & kServiceExternalLocal) : (sp.flags & kServiceInternalLocal);
  c.table = c.localOnly ? sp.tableLocal : sp.tableAll;
  // Affinity services hash the client address alone, so workers racing on a client's first
  // flows still agree.
  c.hash = (sp.flags & kServiceAffinity) ? rte_hash_crc_4byte(meta.srcIp, 0x6e70u) : flowHash(key);
  return c;
}

void newServiceFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey& key, uint32_t portIndex,
                    ServiceAccess access, Stage& st) {
  const ServicePortEntry& sp = st.services->port(portIndex);
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return meta.setDrop(DropReason::kConntrackInvalid);
  const Choice c = choose(sp, access, meta, key);
  const bool external = c.external;
  const bool localOnly = c.localOnly;
  const int32_t table = c.table;
  if (table < 0) {
    if (localOnly && sp.tableAll >= 0) return meta.setDrop(DropReason::kServiceNoLocalEndpoint);
    return reject(m, meta, st);
  }

  // Backend: the affinity record's while it lasts, else Maglev.
  FlowKey recordKey;
  int64_t chosen = -1;
  const bool affinity = sp.flags & kServiceAffinity;
  if (affinity) chosen = affinityBackend(st, sp, meta.srcIp, &recordKey);
  if (chosen >= 0 && (localOnly && !st.services->backend(sp, static_cast<uint32_t>(chosen)).local))
    chosen = -1;
  if (chosen < 0) chosen = st.services->pick(table, c.hash);
  const ServiceBackend& b = st.services->backend(sp, static_cast<uint32_t>(chosen));

  // Policy judges the flow as it reaches the backend (egress of the client, ingress of the
  // backend), as Kubernetes requires.
  uint8_t verdict;
  const uint32_t policyWord = newFlowVerdict(st, key, b.ip, b.port, &verdict);
  if (verdict & policy::kVerdictDeny) return meta.setDrop(denyReason(verdict));

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
  if (hairpin || (external && !b.local)) {
    e.reply.dst = rte_cpu_to_be_32(st.snap.settings.podCidr);
    if (!allocatePort(st, e.reply, flowHash(key))) return meta.setDrop(DropReason::kMasqueradeNoPort);
    flags |= kConnSnat;
  }
  if (meta.flags & dp::kFlagFromUplink) {
    flags |= kConnReturnMac;
    e.returnPort = m->port;
    e.returnMac = rte_pktmbuf_mtod(m, const rte_ether_hdr*)->src_addr;
  }
  e.stateWord = static_cast<uint16_t>(static_cast<uint16_t>(initial) | flags << 8);
  e.servicePort = sp.id;
  e.backendSlot = b.slot;
  e.backendTag = b.tag;
  const int64_t index = track(st, e);
  if (index < 0) return meta.setDrop(DropReason::kConntrackFull);
  if (st.policy != nullptr && !st.ctx.dryRun) {
    policy::forgetL7(*st.policy, st.ctx.workerIndex, static_cast<uint32_t>(index));
    if ((verdict & policy::kVerdictL7) && meta.ipProto == IPPROTO_TCP &&
        !inspectL7(m, meta, st.own.entry(static_cast<uint32_t>(index)),
                   ConnRef{static_cast<uint32_t>(index), st.ctx.workerIndex, false}, st))
      return;
  }
  if (affinity) {
    ConnEntry rec{};
    rec.orig = rec.reply = recordKey;
    rec.stateWord = static_cast<uint16_t>(ConnState::kAffinity);
    rec.servicePort = sp.id;
    rec.backendSlot = b.slot;
    rec.backendTag = b.tag;
    rec.affinityTimeoutMs = sp.affinityTimeoutMs;
    ConnRef existing;
    if (!findLive(st, recordKey, &existing)) (void)track(st, rec);
  }
  st.ctx.counters->serviceFlows.add();
  natRewrite(m, meta, false, b.ip, b.port);
  if (flags & kConnSnat) natRewrite(m, meta, true, e.reply.dst, e.reply.dport);
  meta.flags |= dp::kFlagTranslated;
}

void newMasqueradeFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey& key, Stage& st) {
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return meta.setDrop(DropReason::kConntrackInvalid);
  uint8_t verdict;
  const uint32_t policyWord = newFlowVerdict(st, key, key.dst, key.dport, &verdict);
  if (verdict & policy::kVerdictDeny) return meta.setDrop(denyReason(verdict));
  ConnEntry e{};
  e.orig = key;
  e.policyWord = policyWord;
  e.reply = key.reversed();
  e.reply.dst = st.snap.settings.nodeIp;
  if (!allocatePort(st, e.reply, flowHash(key))) return meta.setDrop(DropReason::kMasqueradeNoPort);
  e.stateWord = static_cast<uint16_t>(static_cast<uint16_t>(initial) | kConnSnat << 8);
  if (track(st, e) < 0) return meta.setDrop(DropReason::kConntrackFull);
  st.ctx.counters->masqueradeFlows.add();
  natRewrite(m, meta, true, e.reply.dst, e.reply.dport);
  meta.flags |= dp::kFlagTranslated;
}

// A flow between pods, one of them on this node, once policy is in force: judged, then tracked
// so that its replies pass (and its verdict is kept). What cannot open a tracked flow (a stray
// RST, a protocol without ports) is judged on its own and passes untracked when allowed.
void newPodFlow(rte_mbuf* m, PacketMeta& meta, const FlowKey* key, Stage& st) {
  const dp::DataplaneSettings& s = st.snap.settings;
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
    (void)newFlowVerdict(st, bare, bare.dst, 0, &verdict);
    if (verdict & policy::kVerdictDeny) meta.setDrop(denyReason(verdict));
    return;
  }
  uint8_t verdict;
  const uint32_t policyWord = newFlowVerdict(st, *key, key->dst, key->dport, &verdict);
  if (verdict & policy::kVerdictDeny) return meta.setDrop(denyReason(verdict));
  const ConnState initial = initialState(meta);
  if (initial == ConnState::kFree) return;  // allowed, not a flow opener: passes untracked
  ConnEntry e{};
  e.orig = *key;
  e.reply = key->reversed();
  e.policyWord = policyWord;
  e.stateWord = static_cast<uint16_t>(initial);
  const int64_t index = track(st, e);
  if (index == -EEXIST) return;  // another worker's packet of the same flow won the race
  if (index < 0) return meta.setDrop(DropReason::kConntrackFull);
  st.ctx.counters->podFlows.add();
  if (st.ctx.dryRun) return;
  policy::forgetL7(*st.policy, st.ctx.workerIndex, static_cast<uint32_t>(index));
  if ((verdict & policy::kVerdictL7) && meta.ipProto == IPPROTO_TCP)
    (void)inspectL7(m, meta, st.own.entry(static_cast<uint32_t>(index)),
                    ConnRef{static_cast<uint32_t>(index), st.ctx.workerIndex, false}, st);
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
               Stage& st) {
  const dp::DataplaneSettings& s = st.snap.settings;
  const bool fromUplink = meta.flags & dp::kFlagFromUplink;
  if (meta.ipProto == IPPROTO_ICMP && !key) {
    if (translateIcmpError(m, meta, st.ct, st.ctx.workerIndex)) {
      st.ctx.counters->icmpTranslated.add();
      return;
    }
  } else if (service.found) {
    return newServiceFlow(m, meta, *key, service.portIndex, service.access, st);
  }
  if (inPrefix(meta.dstIp, s.serviceCidr, s.serviceCidrMask))
    return meta.setDrop(DropReason::kServiceUnknown);
  if (meta.dstIp == s.nodeIp) return meta.setDrop(DropReason::kHostPathUnavailable);
  if (fromUplink) return meta.setDrop(DropReason::kUplinkNotForNode);
  if (meta.dstIp == s.gatewayIp) return meta.setDrop(DropReason::kGatewayUnsupported);
  // Leaving the cluster from a pod: masquerade.
  if (s.masquerade && !(meta.flags & dp::kFlagFromOverlay) &&
      !inPrefix(meta.dstIp, s.clusterCidr, s.clusterCidrMask) &&
      !inPrefix(meta.dstIp, s.podCidr, s.podCidrMask)) {
    if (!key) return meta.setDrop(DropReason::kMasqueradeUnsupported);
    return newMasqueradeFlow(m, meta, *key, st);
  }
  if (st.policy != nullptr) return newPodFlow(m, meta, key, st);
}

}  // namespace

void serviceStage(dp::Burst& burst, const dp::Snapshot& snapshot, dp::WorkerContext& ctx) {
  if (ctx.conntrack == nullptr) return;
  Extras extras;
  Stage st{snapshot, snapshot.services.get(), snapshot.policy.get(), ctx, *ctx.conntrack,
           ctx.conntrack->shard(ctx.workerIndex), extras};
  FlowKey keys[dp::kMaxBurst];
  const FlowKey* lookup[dp::kMaxBurst];
  uint16_t position[dp::kMaxBurst];
  bool keyed[dp::kMaxBurst];
  unsigned n = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    keyed[i] = false;
    if (meta.action != Action::kContinue || meta.l3 != dp::L3Kind::kIpv4) continue;
    if (meta.flags & dp::kFlagLaterFragment) continue;  // decided below, without a tuple
    if (!keyOf(meta, &keys[i])) continue;
    keyed[i] = true;
    lookup[n] = &keys[i];
    position[n++] = i;
  }
  ConnRef refs[dp::kMaxBurst];
  const uint64_t hits = n == 0 ? 0 : st.ct.lookupBulk(ctx.workerIndex, lookup, n, refs);
  // The entries are in a table far bigger than the caches: ask for all of them before using any.
  for (uint64_t m = hits; m; m &= m - 1)
    rte_prefetch0(&st.ct.entry(refs[__builtin_ctzll(m)]));

  // Pass 1 for the misses: which are services (one bulk lookup), and prefetch the Maglev entry
  // each will pick, so a burst of new connections waits for memory once, not once per flow.
  Found found[dp::kMaxBurst];
  const uint64_t allKeyed = n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
  if (st.services != nullptr && (allKeyed & ~hits) != 0) {
    ServiceTable::Query queries[dp::kMaxBurst];
    unsigned position2[dp::kMaxBurst];
    unsigned q = 0;
    for (uint64_t m = allKeyed & ~hits; m; m &= m - 1) {
      const unsigned k = static_cast<unsigned>(__builtin_ctzll(m));
      const PacketMeta& meta = burst.meta[position[k]];
      if (meta.ipProto == IPPROTO_ICMP) continue;
      queries[q] = ServiceTable::Query{meta.dstIp, meta.dstPort, meta.ipProto};
      position2[q++] = k;
    }
    uint32_t portIndex[dp::kMaxBurst];
    ServiceAccess access[dp::kMaxBurst];
    const uint64_t services = q == 0 ? 0 : st.services->findBulk(queries, q, portIndex, access);
    for (uint64_t m = services; m; m &= m - 1) {
      const unsigned i = static_cast<unsigned>(__builtin_ctzll(m));
      const unsigned k = position2[i];
      found[k] = Found{true, portIndex[i], access[i]};
      const ServicePortEntry& sp = st.services->port(portIndex[i]);
      const Choice c = choose(sp, access[i], burst.meta[position[k]], keys[position[k]]);
      if (c.table >= 0) rte_prefetch0(st.services->pickAddress(c.table, c.hash));
    }
  }

  // By now the entries have arrived: fetch their backends' liveness tags the same way.
  if (st.services != nullptr)
    for (uint64_t m = hits; m; m &= m - 1)
      st.services->prefetchTag(st.ct.entry(refs[__builtin_ctzll(m)]).backendSlot);

  unsigned j = 0;
  for (uint16_t i = 0; i < burst.count; ++i) {
    PacketMeta& meta = burst.meta[i];
    if (meta.action != Action::kContinue || meta.l3 != dp::L3Kind::kIpv4) continue;
    rte_mbuf* m = burst.pkts[i];
    if (!keyed[i]) {
      if (meta.flags & dp::kFlagLaterFragment) {
        const dp::DataplaneSettings& s = snapshot.settings;
        if ((meta.flags & dp::kFlagFromUplink) || meta.dstIp == s.nodeIp ||
            inPrefix(meta.dstIp, s.serviceCidr, s.serviceCidrMask))
          meta.setDrop(DropReason::kFragmentUntracked);
        continue;
      }
      untracked(m, meta, nullptr, Found{}, st);
      continue;
    }
    const unsigned k = j++;
    ConnRef ref = refs[k];
    bool hit = hits & (uint64_t{1} << k);
    Found service = found[k];
    if (hit && !alive(st, st.ct.entry(ref))) {
      // Its backend went away (or was flushed): forget it and treat the packet as new.
      if (ref.shard == ctx.workerIndex && !ctx.dryRun) st.own.remove(ref.index);
      hit = findLive(st, keys[i], &ref);
      if (!hit && st.services != nullptr)
        service.found = st.services->find(meta.dstIp, meta.dstPort, meta.ipProto,
                                          &service.portIndex, &service.access);
    }
    if (!hit) {
      untracked(m, meta, &keys[i], service, st);
      continue;
    }
    ConnEntry& e = st.ct.entry(ref);
    uint8_t verdict = 0;
    if (st.policy != nullptr) {
      if (e.flags() & kConnReset) {
        refuseResetFlow(m, meta, e, ref.reply, st);
        continue;
      }
      verdict = trackedVerdict(st, e);
      if (verdict & policy::kVerdictDeny) {
        meta.setDrop(denyReason(verdict));
        continue;
      }
    }
    if (!ctx.dryRun) updateState(e, meta, ref.reply, ctx.nowMs);
    if ((verdict & policy::kVerdictL7) && !ref.reply && meta.ipProto == IPPROTO_TCP &&
        !inspectL7(m, meta, e, ref, st))
      continue;
    applyNat(m, meta, e, ref.reply);
    if (ref.reply && (e.flags() & kConnReturnMac)) returnToClient(m, meta, e, st);
  }
  // Resets made for clients go on to the route stage with the rest.
  for (unsigned x = 0; x < extras.count; ++x) {
    if (burst.count < dp::kMaxBurst) {
      burst.pkts[burst.count] = extras.pkts[x];
      burst.meta[burst.count++] = extras.meta[x];
    } else {
      rte_pktmbuf_free(extras.pkts[x]);
    }
  }
}

}  // namespace nodeplane::lb
