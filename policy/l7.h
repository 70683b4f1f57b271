// L7 rules on Hyperscan: one streaming database for every L7 match of the node, built on the
// control thread with the snapshot; per worker, one scratch and a fixed pool of stream states
// (opened at build time: nothing is allocated per flow). A flow to a local pod's port that some
// L7Rule covers gets a stream; the client's bytes are scanned in TCP sequence order, so a request
// split over segments still matches.
//
// Request rules: an `allow` rule makes the port default-deny at the request level: each request
// head (request line to the empty line) must match some allow rule before its end passes. `deny`
// resets the flow as soon as its pattern matches. `log` counts and reports.
// Segments are scanned only in order: a retransmission of bytes already scanned passes unscanned,
// the new part of a partly new segment is scanned, and a segment beyond the next expected byte
// (out of order, after a loss) is dropped so that the client resends it in order. No bytes are
// buffered.
#pragma once

#include <rte_byteorder.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/counters.h"
#include "core/result.h"
#include "policy/model.h"

struct hs_database;
struct hs_scratch;
struct hs_stream;

namespace nodeplane::policy {

struct L7MatchInfo {
  L7Action action;
  std::string source;      // "l7rule ns/name rules[i]"
  std::string expression;  // the Hyperscan expression it compiled to
};

// One inspected flow. Owned by the worker that tracks the flow's client side.
struct L7Flow {
  hs_stream* stream = nullptr;
  uint32_t ruleset = 0;
  uint32_t nextSeq = 0;  // next client byte expected
  uint32_t entry = 0;    // the connection entry it belongs to (the stage's bookkeeping)
  bool seqKnown = false;
  bool inHead = false;   // between a request line and the end of its head
  bool allowed = false;  // the current request head matched an allow rule
  bool inUse = false;
};

enum class L7Verdict : uint8_t { kPass, kDeny, kOutOfOrder };

// What one scan decided and saw.
struct L7Report {
  int32_t denyMatch = -1;  // kDeny: the deny rule that matched, or -1: no allow rule matched
  int32_t logMatch = -1;   // the last log rule that matched, if any
  uint32_t logs = 0;
};

struct L7Attachment {
  Ipv4Address pod;
  uint16_t port = 0;  // 0: every TCP port of the pod
  uint32_t ruleset = 0;
  std::string pods;  // namespace/name of the pod, for listings
};

class L7Database {
 public:
  // Null (and no error) when no rule applies to a pod of this node. Errors name the rule object
  // and field of every expression Hyperscan refuses.
  static Result<std::shared_ptr<L7Database>> build(const PolicyState& state,
                                                   const Ipv4Prefix& localPods, unsigned workers,
                                                   uint32_t flowsPerWorker);
  ~L7Database();
  L7Database(const L7Database&) = delete;
  L7Database& operator=(const L7Database&) = delete;

  // The ruleset for TCP traffic to this pod and port (both in wire order), or -1.
  int32_t rulesetFor(rte_be32_t pod, rte_be16_t port) const;

  // Worker `w` only, for its own flows.
  L7Flow* allocate(unsigned w);  // null: every stream state is in use
  void release(unsigned w, L7Flow* flow);
  // Every flow of worker w's pool (for reclaiming those whose connection ended).
  L7Flow* flows(unsigned w) { return workers_[w].flows.data(); }
  uint32_t flowsPerWorker() const { return flowsPerWorker_; }
  uint32_t inUse(unsigned w) const {
    return flowsPerWorker_ - static_cast<uint32_t>(workers_[w].free.size());
  }
  // Feeds a client segment (payload, its sequence number; `syn` for the SYN itself).
  L7Verdict inspect(unsigned w, L7Flow& flow, const uint8_t* payload, uint32_t length, uint32_t seq,
                    bool syn, L7Report* report);

  const std::vector<L7MatchInfo>& matches() const { return matches_; }
  const std::vector<L7Attachment>& attachments() const { return attachments_; }
  // Matches of rule i, summed over workers (control thread; approximate while workers run).
  uint64_t matchCount(size_t i) const;
  size_t streamBytes() const { return streamBytes_; }
  // A unique id: a worker's references to flows of an older database are stale.
  uint32_t serial() const { return serial_; }

 private:
  L7Database() = default;
  struct Ruleset {
    std::vector<uint64_t> bits;  // over match indices
    bool hasAllow = false;
    bool has(uint32_t m) const { return (bits[m >> 6] >> (m & 63)) & 1; }
  };
  struct alignas(64) Worker {
    hs_scratch* scratch = nullptr;
    std::vector<L7Flow> flows;
    std::vector<uint32_t> free;
    std::vector<Counter> matchCounts;
  };
  struct ScanContext;
  static int onMatch(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                     void* context);

  hs_database* db_ = nullptr;
  std::vector<L7MatchInfo> matches_;
  std::vector<Ruleset> rulesets_;
  std::vector<L7Attachment> attachments_;  // sorted by (pod, port)
  std::vector<Worker> workers_;
  uint32_t flowsPerWorker_ = 0;
  size_t streamBytes_ = 0;
  uint32_t serial_ = 0;
};

// The expression an http match compiles to (exposed for tests and npctl).
std::string httpExpression(const L7Match& m);

}  // namespace nodeplane::policy
