#include "dataplane/flow_policy.h"

#include <netinet/in.h>
#include <rte_tcp.h>

#include <atomic>

#include "core/icmp.h"
#include "dataplane/flow_log.h"
#include "policy/enforce.h"

namespace nodeplane::dataplane {

namespace {

// The tuple of a tracked flow as policy judges it: its client, and its destination after
// translation.
policy::FlowTuple flowTupleOf(const lb::ConnEntry& e) {
  return policy::FlowTuple{e.orig.src, e.reply.src, e.orig.sport, e.reply.sport, e.orig.proto};
}

// Whether entry `index` of a shard has ended (its L7 stream state can be taken back).
bool entryEnded(const void* shard, uint32_t index) {
  return static_cast<const lb::ConnShard*>(shard)->entry(index).state() == lb::ConnState::kFree;
}

// NetworkPolicy does not stand between a node and its own pods (kubelet probes, hostNetwork
// clients): flows the node's kernel opens through the host port are allowed.
bool fromOwnNode(const FlowContext& fc, rte_be32_t client) {
  return fc.snap.settings.hostPath && client == fc.snap.settings.nodeIp;
}

void markReset(lb::ConnEntry& e) {
  std::atomic_ref<uint16_t> word(e.stateWord);
  uint16_t old = word.load(std::memory_order_relaxed);
  uint16_t desired;
  do {
    desired = static_cast<uint16_t>(static_cast<uint16_t>(lb::ConnState::kTcpClose) |
                                    ((old >> 8) | lb::kConnReset) << 8);
  } while (!word.compare_exchange_weak(old, desired, std::memory_order_relaxed));
}

// Sends `m` (already turned into a RST to the client, in the client's view) back the way the
// client's traffic came: to its router for uplink clients, else through the route stage.
void resetToClient(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, const lb::ConnEntry& e) {
  if (e.flags() & lb::kConnReturnMac) return returnToClient(m, meta, e, fc);
  meta.action = Action::kContinue;  // routed to the client like any packet
}

}  // namespace

uint32_t newFlowVerdict(FlowContext& fc, const lb::FlowKey& key, rte_be32_t server,
                        rte_be16_t serverPort, uint8_t* bits, uint32_t* decidingSlot) {
  *bits = 0;
  *decidingSlot = 0;
  if (fc.policy == nullptr) return 0;
  if (!fc.policy->permissive() && !fromOwnNode(fc, key.src))
    *bits = policy::evaluate(
        *fc.policy, policy::FlowTuple{key.src, server, key.sport, serverPort, key.proto},
        fc.ctx.workerIndex, *fc.ctx.counters, fc.ctx.nowMs, !fc.ctx.dryRun, decidingSlot);
  return policy::verdictWord(fc.policy->generation(), *bits);
}

uint8_t reevaluatedVerdict(FlowContext& fc, lb::ConnEntry& e) {
  const uint8_t bits = fc.policy->permissive() || fromOwnNode(fc, e.orig.src)
                           ? 0
                           : policy::evaluate(*fc.policy, flowTupleOf(e), fc.ctx.workerIndex,
                                              *fc.ctx.counters, fc.ctx.nowMs, !fc.ctx.dryRun);
  if (fc.ctx.dryRun) return bits;
  e.setPolicy(policy::verdictWord(fc.policy->generation(), bits));
  fc.ctx.counters->policyReevaluated.add();
  return bits;
}

bool startFlow(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, uint8_t verdict, uint32_t index) {
  if (fc.policy == nullptr || fc.ctx.dryRun) return true;
  policy::forgetL7(*fc.policy, fc.ctx.workerIndex, index);
  if (!(verdict & policy::kVerdictL7) || meta.ipProto != IPPROTO_TCP) return true;
  return inspectL7(fc, m, meta, fc.own.entry(index), lb::ConnRef{index, fc.ctx.workerIndex, false});
}

bool inspectL7(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, lb::ConnEntry& e,
               const lb::ConnRef& ref) {
  if (fc.ctx.dryRun) return true;  // a trace: L7 rules would scan this segment
  if (ref.shard != fc.ctx.workerIndex) {
    meta.setDrop(DropReason::kL7WrongWorker);
    return false;
  }
  uint32_t denyMatch = 0;
  switch (policy::inspectClientSegment(
      *fc.policy, fc.ctx.workerIndex, ref.index, policy::EntryLiveness{&fc.own, &entryEnded}, m,
      meta, e.reply.src, e.reply.sport, *fc.ctx.counters, fc.ctx.nowMs, &denyMatch)) {
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
  markReset(e);
  if (fc.ctx.flowLog != nullptr) {
    FlowRecord r = flowRecordOf(meta, m->port, fc.ctx.workerIndex, FlowEvent::kL7Denied);
    r.xdst = e.reply.src;
    r.xdport = e.reply.sport;
    r.policy = denyMatch;
    r.l7Serial = fc.policy->l7() != nullptr ? fc.policy->l7()->serial() : 0;
    fc.ctx.flowLog->record(fc.ctx.workerIndex, r);
    meta.aux = kAuxFlowLogged;
  }
  // Both ends learn at once: a RST to the client made from a copy, and the segment itself,
  // emptied, as a RST to the server.
  MadePackets& made = fc.made;
  if (made.count < kMaxBurst) {
    rte_mbuf* copy = rte_pktmbuf_copy(m, m->pool, 0, m->data_len);  // the headers suffice
    PacketMeta copyMeta = meta;
    if (copy != nullptr && buildTcpReset(copy, copyMeta)) {
      fc.ctx.counters->resetsSent.add();
      resetToClient(fc, copy, copyMeta, e);
      if (copyMeta.action == Action::kDrop) {
        rte_pktmbuf_free(copy);
      } else {
        made.pkts[made.count] = copy;
        made.meta[made.count++] = copyMeta;
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

void refuseResetFlow(FlowContext& fc, rte_mbuf* m, PacketMeta& meta, const lb::ConnEntry& e,
                     bool reply) {
  if (!reply && meta.ipProto == IPPROTO_TCP && !(meta.tcpFlags & RTE_TCP_RST_FLAG) &&
      !(meta.flags & kFlagLaterFragment) && buildTcpReset(m, meta)) {
    fc.ctx.counters->resetsSent.add();
    return resetToClient(fc, m, meta, e);
  }
  meta.setDrop(DropReason::kL7Denied);
}

}  // namespace nodeplane::dataplane
