#include "policy/enforce.h"

#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_tcp.h>

namespace nodeplane::policy {

namespace {

void logEvent(const PolicyTable& table, const FlowTuple& f, PolicyEvent event, uint32_t slot,
              unsigned worker, uint32_t nowMs, uint32_t l7Serial = 0) {
  PolicyLogRecord r{};
  r.src = f.src;
  r.dst = f.dst;
  r.sport = f.sport;
  r.dport = f.dport;
  r.protocol = f.protocol;
  r.event = event;
  r.worker = static_cast<uint16_t>(worker);
  r.slot = slot;
  r.l7Serial = l7Serial;
  r.timeMs = nowMs;
  table.runtime().log(worker, r);
}

}  // namespace

uint8_t evaluate(const PolicyTable& table, const FlowTuple& f, unsigned worker,
                 WorkerCounters& counters, uint32_t nowMs, bool record, uint32_t* decidingSlot) {
  uint8_t bits = 0;
  if (decidingSlot != nullptr) *decidingSlot = 0;
  // A pod reaching itself (through its own Service, hairpinned) is never isolated from itself,
  // as it is not over loopback.
  if (f.src == f.dst) return 0;
  if (!table.classifier().empty()) {
    const AclKey key{f.protocol, {0, 0, 0}, f.src, f.dst, f.sport, f.dport};
    const AclKey* keys[1] = {&key};
    uint32_t results[kCategories];
    table.classifier().classify(keys, 1, results);
    if (decidingSlot != nullptr) {
      // Ingress first, so that a denial or allow at the backend names its policy.
      for (int dir = 1; dir >= 0 && *decidingSlot == 0; --dir)
        if (results[dir] != 0 && !(results[dir] & kResultAllow))
          *decidingSlot = table.counterSlot(resultPolicy(results[dir])) + 1;
      for (int dir = 1; dir >= 0 && *decidingSlot == 0; --dir)
        if (results[dir] & kResultAllow)
          *decidingSlot = table.counterSlot(resultPolicy(results[dir])) + 1;
    }
    if (!record) {
      for (unsigned dir = 0; dir < 2; ++dir)
        if (results[dir] != 0 && !(results[dir] & kResultAllow))
          bits |= dir == 0 ? kVerdictDenyEgress : kVerdictDenyIngress;
      if (!(bits & kVerdictDeny) && table.l7() != nullptr && f.protocol == IPPROTO_TCP &&
          table.l7()->rulesetFor(f.dst, f.dport) >= 0)
        bits |= kVerdictL7;
      return bits;
    }
    PolicyRuntime& rt = table.runtime();
    // Effective categories decide; the audit ones (every policy) count allows and report what
    // audit-mode policies would deny.
    for (unsigned dir = 0; dir < 2; ++dir) {
      const uint32_t effective = results[dir];
      const uint32_t audit = results[2 + dir];
      const bool denied = effective != 0 && !(effective & kResultAllow);
      if (denied) {
        bits |= dir == 0 ? kVerdictDenyEgress : kVerdictDenyIngress;
        const uint32_t slot = table.counterSlot(resultPolicy(effective));
        rt.counters(worker, slot).denied.add();
        logEvent(table, f, dir == 0 ? PolicyEvent::kDenyEgress : PolicyEvent::kDenyIngress, slot,
                 worker, nowMs);
      } else if (audit != 0) {
        const uint32_t slot = table.counterSlot(resultPolicy(audit));
        if (audit & kResultAllow) {
          rt.counters(worker, slot).allowed.add();
        } else {
          rt.counters(worker, slot).auditDenied.add();
          counters.policyAuditDenied.add();
          logEvent(table, f,
                   dir == 0 ? PolicyEvent::kAuditDenyEgress : PolicyEvent::kAuditDenyIngress, slot,
                   worker, nowMs);
        }
      }
    }
    if (bits & kVerdictDeny)
      counters.policyDenied.add();
    else if ((results[2] | results[3]) & kResultAllow)
      counters.policyAllowed.add();
  }
  if (!(bits & kVerdictDeny) && table.l7() != nullptr && f.protocol == IPPROTO_TCP &&
      table.l7()->rulesetFor(f.dst, f.dport) >= 0)
    bits |= kVerdictL7;
  return bits;
}

L7Outcome inspectClientSegment(const PolicyTable& table, unsigned worker, uint32_t entryIndex,
                               EntryLiveness entries, const rte_mbuf* m, const PacketMeta& meta,
                               rte_be32_t server, rte_be16_t serverPort, WorkerCounters& counters,
                               uint32_t nowMs, uint32_t* denyMatch) {
  L7Database* db = table.l7();
  if (db == nullptr) return L7Outcome::kPass;
  if (meta.flags & kFlagLaterFragment) return L7Outcome::kOutOfOrder;
  L7Ref& ref = table.runtime().l7Refs(worker)[entryIndex];
  L7Flow* flow = nullptr;
  if (ref.flow != 0 && ref.serial == db->serial()) flow = &db->flows(worker)[ref.flow - 1];
  if (flow == nullptr || !flow->inUse || flow->entry != entryIndex) {
    const int32_t ruleset = db->rulesetFor(server, serverPort);
    if (ruleset < 0) return L7Outcome::kPass;  // the rules changed; the next evaluation agrees
    flow = db->allocate(worker);
    if (flow == nullptr) {
      // Take back the states of flows that ended (their entries were freed or reused).
      L7Ref* refs = table.runtime().l7Refs(worker);
      L7Flow* pool = db->flows(worker);
      for (uint32_t i = 0; i < db->flowsPerWorker(); ++i) {
        L7Flow& f = pool[i];
        if (!f.inUse) continue;
        const L7Ref& r = refs[f.entry];
        if (r.serial != db->serial() || r.flow != i + 1 || entries.ended(entries.shard, f.entry))
          db->release(worker, &f);
      }
      flow = db->allocate(worker);
      if (flow == nullptr) return L7Outcome::kNoState;
    }
    flow->ruleset = static_cast<uint32_t>(ruleset);
    flow->entry = entryIndex;
    ref = L7Ref{static_cast<uint32_t>(flow - db->flows(worker)) + 1, db->serial()};
  }

  const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, meta.l4Offset);
  const uint32_t headerLength = (tcp->data_off >> 4) * 4u;
  const uint32_t payloadOffset = meta.l4Offset + headerLength;
  const uint32_t ipEnd = meta.l3Offset + meta.ipTotalLength;
  uint32_t length = ipEnd > payloadOffset ? ipEnd - payloadOffset : 0;
  const uint32_t payloadLength = length;
  const bool syn = tcp->tcp_flags & RTE_TCP_SYN_FLAG;
  uint32_t seq = rte_be_to_cpu_32(tcp->sent_seq);
  L7Report report;
  L7Verdict verdict = L7Verdict::kPass;
  if (length == 0 || m->nb_segs == 1) {
    verdict = db->inspect(worker, *flow, rte_pktmbuf_mtod_offset(m, const uint8_t*, payloadOffset),
                          length, seq, syn, &report);
  } else {
    // Multi-segment: feed each segment's share in order.
    uint32_t offset = payloadOffset;
    bool first = true;
    for (const rte_mbuf* s = m; s != nullptr && length > 0 && verdict == L7Verdict::kPass;
         s = s->next) {
      if (offset >= s->data_len) {
        offset -= s->data_len;
        continue;
      }
      const uint32_t chunk = std::min<uint32_t>(length, s->data_len - offset);
      verdict = db->inspect(worker, *flow, rte_pktmbuf_mtod_offset(s, const uint8_t*, offset),
                            chunk, seq, syn && first, &report);
      seq += chunk + ((syn && first) ? 1 : 0);
      length -= chunk;
      offset = 0;
      first = false;
    }
  }
  counters.l7Bytes.add(payloadLength);
  const FlowTuple tuple{meta.srcIp, server, meta.srcPort, serverPort, IPPROTO_TCP};
  if (report.logs) {
    counters.l7Logged.add(report.logs);
    logEvent(table, tuple, PolicyEvent::kL7Log, static_cast<uint32_t>(report.logMatch + 1), worker,
             nowMs, db->serial());
  }
  switch (verdict) {
    case L7Verdict::kPass:
      return L7Outcome::kPass;
    case L7Verdict::kOutOfOrder:
      return L7Outcome::kOutOfOrder;
    case L7Verdict::kDeny:
      counters.l7Resets.add();
      if (denyMatch != nullptr) *denyMatch = static_cast<uint32_t>(report.denyMatch + 1);
      logEvent(table, tuple, PolicyEvent::kL7Deny, static_cast<uint32_t>(report.denyMatch + 1),
               worker, nowMs, db->serial());
      db->release(worker, flow);
      ref = L7Ref{};
      return L7Outcome::kDeny;
  }
  return L7Outcome::kPass;
}

bool rewriteAsReset(rte_mbuf* m, PacketMeta& meta) {
  if (meta.l4Offset + sizeof(rte_tcp_hdr) > m->data_len) return false;
  // A super-packet's headers are in its first segment: the rest is let go, and so are its
  // offloads (the reset carries complete checksums).
  if (m->next != nullptr) {
    rte_pktmbuf_free(m->next);
    m->next = nullptr;
    m->nb_segs = 1;
  }
  m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
  m->tso_segsz = 0;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta.l3Offset);
  auto* tcp = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, meta.l4Offset);
  const uint32_t ipHeader = meta.l4Offset - meta.l3Offset;
  tcp->tcp_flags = RTE_TCP_RST_FLAG;
  tcp->recv_ack = 0;
  tcp->data_off = 5 << 4;
  tcp->rx_win = 0;
  tcp->tcp_urp = 0;
  const uint32_t total = ipHeader + sizeof(rte_tcp_hdr);
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(total));
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  tcp->cksum = 0;
  tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
  m->data_len = static_cast<uint16_t>(meta.l3Offset + total);
  m->pkt_len = m->data_len;
  meta.ipTotalLength = static_cast<uint16_t>(total);
  meta.tcpFlags = RTE_TCP_RST_FLAG;
  return true;
}

}  // namespace nodeplane::policy
