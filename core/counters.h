// Per-worker counters. Each worker writes only its own block (plain load + store, no atomic
// read-modify-write, no sharing of cache lines); the control thread sums blocks on read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "core/drop_reason.h"

namespace nodeplane {

// A counter with one writer. add() compiles to a plain increment; read() may run on any thread.
class Counter {
 public:
  void add(uint64_t n = 1) {
    std::atomic_ref<uint64_t> v(value_);
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t read() const {
    return std::atomic_ref<const uint64_t>(value_).load(std::memory_order_relaxed);
  }

 private:
  alignas(8) uint64_t value_ = 0;
};

// X(member, name, help)
#define NP_FOREACH_WORKER_COUNTER(X)                                                               \
  X(rxPackets, "rx_packets", "packets received")                                                   \
  X(rxBytes, "rx_bytes", "bytes received")                                                         \
  X(txPackets, "tx_packets", "packets handed to a transmit queue")                                 \
  X(dropPackets, "drop_packets", "packets dropped, any reason")                                    \
  X(rxBursts, "rx_bursts", "non-empty receive bursts")                                             \
  X(loops, "loops", "iterations of the worker loop")                                               \
  X(busyCycles, "busy_cycles", "TSC cycles spent in loop iterations that received packets")        \
  X(idleCycles, "idle_cycles", "TSC cycles spent in loop iterations that received nothing")        \
  X(idleSleeps, "idle_sleeps", "times the worker slept after an idle stretch")                     \
  X(arpReplies, "arp_replies", "ARP replies sent for the gateway / proxied addresses")             \
  X(punted, "punted", "packets handed to the control thread (ARP, awaiting ARP, fragmenting)")     \
  X(injected, "injected", "packets the control thread gave this worker to send")                   \
  X(arpRequests, "arp_requests", "underlay ARP requests sent (control thread)")                    \
  X(fragmentsSent, "fragments_sent", "fragments made of oversized packets without DF")             \
  X(espSealed, "esp_sealed", "packets sealed with ESP for another cluster's gateway")              \
  X(espOpened, "esp_opened", "ESP packets from another cluster's gateway opened")                  \
  X(announcementsSent, "export_announcements_sent",                                                \
    "exported services announced to peers' gateways (control thread)")                             \
  X(espGenerationsStarted, "esp_generations_started",                                              \
    "SA generations begun towards peers' gateways: peers set, secrets changed, rekeys (control)")  \
  X(espGenerationsLearned, "esp_generations_learned",                                              \
    "SA generations of peers' gateways learned from their first packet (control thread)")          \
  X(heartbeatsSent, "heartbeats_sent",                                                             \
    "gateway heartbeats sent to peers' gateways and this cluster's nodes (control thread)")        \
  X(globalEgressFlows, "global_egress_flows",                                                      \
    "new flows to a Globalnet peer, source-NATed to this cluster's global egress address")         \
  X(globalIngressTranslated, "global_ingress_translated",                                          \
    "packets from a peer to an exported service's global address, translated to its ClusterIP")    \
  X(globalEgressTranslated, "global_egress_translated",                                            \
    "packets to a peer from an exported service's ClusterIP, translated to its global address")    \
  X(serviceFlows, "service_flows", "new flows to a service, translated to a backend")              \
  X(masqueradeFlows, "masquerade_flows", "new flows leaving the cluster, masqueraded")             \
  X(resetsSent, "resets_sent",                                                                     \
    "TCP resets sent: services without endpoints, flows L7 rules reset")                           \
  X(podFlows, "pod_flows", "new pod flows tracked for NetworkPolicy (no translation)")             \
  X(policyAllowed, "policy_flows_allowed", "flows a NetworkPolicy rule allowed (isolated pods)")   \
  X(policyDenied, "policy_flows_denied", "flows NetworkPolicy denied")                             \
  X(policyAuditDenied, "policy_flows_audit_denied", "flows audit mode would deny, passed")         \
  X(policyReevaluated, "policy_reevaluated",                                                       \
    "tracked flows evaluated again after a policy change")                                         \
  X(l7Bytes, "l7_bytes_scanned", "client bytes scanned by L7 rules")                               \
  X(l7Resets, "l7_resets", "flows an L7 rule reset")                                               \
  X(l7Logged, "l7_logged", "L7 log rule matches")                                                  \
  X(icmpTranslated, "icmp_translated", "ICMP errors about translated flows, translated back")      \
  X(icmpEchoReplies, "icmp_echo_replies", "echo replies sent for the gateway address")             \
  X(icmpErrorsSent, "icmp_errors_sent", "ICMP errors generated (time exceeded, ...)")              \
  X(icmpRateLimited, "icmp_rate_limited", "ICMP errors suppressed by the rate limit")              \
  X(icmpErrorUnbuildable, "icmp_error_unbuildable",                                                \
    "ICMP errors not built: no headroom or a multi-segment packet")                                \
  X(gsoSuperPackets, "gso_super_packets", "TCP super-packets segmented for a wire")                \
  X(gsoSegments, "gso_segments", "segments made of them")                                          \
  X(checksumsCompleted, "checksums_completed", "partial L4 checksums completed in software")       \
  X(groSegments, "gro_segments", "TCP segments from a wire coalesced into super-packets")          \
  X(groSuperPackets, "gro_super_packets", "super-packets made of them, sent to pods")              \
  X(groChecksumBad, "gro_checksum_bad", "TCP segments not coalesced: checksum did not verify")     \
  X(dnsAnswersA, "dns_answers_a", "cluster DNS: A queries answered with records")                  \
  X(dnsAnswersSrv, "dns_answers_srv", "cluster DNS: SRV queries answered with records")            \
  X(dnsAnswersPtr, "dns_answers_ptr", "cluster DNS: PTR queries answered with records")            \
  X(dnsAnswersCname, "dns_answers_cname", "cluster DNS: queries answered with a CNAME")            \
  X(dnsAnswersOther, "dns_answers_other", "cluster DNS: TXT, SOA, NS, ANY answered with records")  \
  X(dnsNxDomain, "dns_nxdomain", "cluster DNS: NXDOMAIN (no such name in the cluster domain)")     \
  X(dnsNoData, "dns_nodata", "cluster DNS: NOERROR without records (name exists, not the type)")   \
  X(dnsServFail, "dns_servfail", "cluster DNS: SERVFAIL (no desired state applied yet)")           \
  X(dnsBadVersion, "dns_badvers", "cluster DNS: BADVERS (EDNS version other than 0)")              \
  X(dnsTruncated, "dns_truncated", "cluster DNS: answers that did not fit, sent with TC")          \
  X(dnsPassedOn, "dns_passed_on", "cluster DNS: queries passed on to the DNS Service's backends")  \
  X(dnsMalformed, "dns_malformed", "cluster DNS: queries that do not parse (passed on)")           \
  X(dnsNoRoom, "dns_no_room", "cluster DNS: answers not built: the mbuf had no room (passed on)")  \
  X(dnsRefused, "dns_refused", "cluster DNS: REFUSED (not ours, and no upstream to pass it to)")   \
  X(dnsTcpQueries, "dns_tcp_queries", "cluster DNS: queries answered over TCP (no upstream)")      \
  X(dnsPolicyPassed, "dns_policy_passed_on",                                                       \
    "cluster DNS: queries NetworkPolicy does not let the pod send to the DNS (judged further on)") \
  X(dnsTcpResets, "dns_tcp_resets",                                                                \
    "cluster DNS over TCP: resets sent (not our connection, or a query split over segments)")

struct alignas(64) WorkerCounters {
#define NP_COUNTER_MEMBER(member, name, help) Counter member;
  NP_FOREACH_WORKER_COUNTER(NP_COUNTER_MEMBER)
#undef NP_COUNTER_MEMBER
  std::array<Counter, kDropReasonCount> drops;

  void drop(DropReason r, uint64_t n = 1) {
    drops[static_cast<size_t>(r)].add(n);
    dropPackets.add(n);
  }
};

// A plain-value copy of one worker's (or the sum of all workers') counters.
struct CounterTotals {
#define NP_TOTAL_MEMBER(member, name, help) uint64_t member = 0;
  NP_FOREACH_WORKER_COUNTER(NP_TOTAL_MEMBER)
#undef NP_TOTAL_MEMBER
  std::array<uint64_t, kDropReasonCount> drops{};

  void accumulate(const WorkerCounters& c);
};

}  // namespace nodeplane
