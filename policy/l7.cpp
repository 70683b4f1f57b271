#include "policy/l7.h"

#include <hs/hs.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <tuple>

namespace nodeplane::policy {

namespace {

// Internal expressions, before the rules' (rule i has id kFirstRuleId + i).
constexpr unsigned kRequestLineId = 0;  // a request line starts: "\nMETHOD "
constexpr unsigned kHeadEndId = 1;      // the empty line that ends a request head
constexpr unsigned kFirstRuleId = 2;

std::atomic<uint32_t> serials{1};

bool selects(const L7Rule& rule, const PodIdentity& pod, const Ipv4Prefix& local) {
  return pod.namespaceName == rule.namespaceName && pod.ip.value != 0 && local.contains(pod.ip) &&
         rule.podSelector.matches(pod.labels);
}

}  // namespace

std::string httpExpression(const L7Match& m) {
  const std::string method = m.method.empty() ? "[A-Z]+" : m.method;
  const std::string path = m.path.empty() ? "[^ \\r\\n?]*" : "(?:" + m.path + ")";
  std::string e = "(?:^|\\n)" + method + " " + path + "(?:\\?[^ \\r\\n]*)? HTTP/1\\.[01]\\r\\n";
  if (!m.host.empty())
    e += "(?:[^\\r\\n]+\\r\\n)*(?i:host):[ \\t]*(?:" + m.host + ")(?::[0-9]+)?[ \\t]*\\r\\n";
  return e;
}

struct L7Database::ScanContext {
  const L7Database* db;
  const Ruleset* ruleset;
  L7Flow* flow;
  L7Report* report;
  Worker* worker;
  bool denied;
};

int L7Database::onMatch(unsigned id, unsigned long long, unsigned long long, unsigned, void* c) {
  auto* ctx = static_cast<ScanContext*>(c);
  L7Flow& f = *ctx->flow;
  if (id == kRequestLineId) {
    f.inHead = true;
    f.allowed = false;
    return 0;
  }
  if (id == kHeadEndId) {
    if (!f.inHead) return 0;  // an empty line in a body
    f.inHead = false;
    if (ctx->ruleset->hasAllow && !f.allowed) {
      ctx->denied = true;
      ctx->report->denyMatch = -1;
      return 1;  // stop: the flow is reset
    }
    return 0;
  }
  const uint32_t m = id - kFirstRuleId;
  if (!ctx->ruleset->has(m)) return 0;
  ctx->worker->matchCounts[m].add();
  switch (ctx->db->matches_[m].action) {
    case L7Action::kDeny:
      ctx->denied = true;
      ctx->report->denyMatch = static_cast<int32_t>(m);
      return 1;
    case L7Action::kAllow:
      if (f.inHead) f.allowed = true;
      return 0;
    case L7Action::kLog:
      ctx->report->logMatch = static_cast<int32_t>(m);
      ++ctx->report->logs;
      return 0;
  }
  return 0;
}

Result<std::shared_ptr<L7Database>> L7Database::build(const PolicyState& state,
                                                      const Ipv4Prefix& localPods, unsigned workers,
                                                      uint32_t flowsPerWorker) {
  std::shared_ptr<L7Database> db(new L7Database());
  // Every match of every rule object becomes an expression; attachments say which apply where.
  std::vector<std::string> expressions = {"(?:^|\\n)[A-Z]+ ", "\\r\\n\\r\\n"};
  std::vector<unsigned> flags = {0, 0};
  std::vector<unsigned> ids = {kRequestLineId, kHeadEndId};
  std::vector<std::string> fields = {"", ""};
  std::map<std::pair<uint32_t, uint16_t>, std::vector<uint32_t>>
      attached;  // (pod, port) -> matches
  std::map<uint32_t, std::string> podNames;
  for (const L7Rule& rule : state.l7Rules) {
    const uint32_t first = static_cast<uint32_t>(db->matches_.size());
    for (size_t i = 0; i < rule.rules.size(); ++i) {
      const L7Match& m = rule.rules[i];
      const std::string field = "spec.rules[" + std::to_string(i) + "]";
      L7MatchInfo info{m.action, "l7rule " + rule.key() + " " + field,
                       m.http ? httpExpression(m) : m.pattern};
      expressions.push_back(info.expression);
      // Deny rules end the flow on their first match; the others count every request.
      flags.push_back(m.action == L7Action::kDeny ? HS_FLAG_SINGLEMATCH : 0);
      ids.push_back(kFirstRuleId + static_cast<unsigned>(db->matches_.size()));
      fields.push_back("l7rule " + rule.key() + ": field '" + field +
                       (m.http ? ".http" : ".pattern") + "'");
      db->matches_.push_back(std::move(info));
    }
    const uint32_t last = static_cast<uint32_t>(db->matches_.size());
    for (const PodIdentity& pod : state.pods) {
      if (!selects(rule, pod, localPods)) continue;
      podNames[pod.ip.value] = pod.key();
      std::vector<uint16_t> ports;
      if (rule.ports.empty()) ports.push_back(0);
      for (const PortMatch& p : rule.ports) {
        if (!p.name.empty()) {
          if (uint16_t n = pod.namedPort(p.name, kProtoTcp)) ports.push_back(n);
        } else if (p.port == 0) {
          ports.push_back(0);
        } else {
          ports.push_back(p.port);
        }
      }
      for (uint16_t port : ports) {
        auto& list = attached[{pod.ip.value, port}];
        for (uint32_t m = first; m < last; ++m) list.push_back(m);
      }
    }
  }

  // Every expression is checked on its own first, so that all bad ones are reported.
  std::string errors;
  for (size_t i = kFirstRuleId; i < expressions.size(); ++i) {
    hs_expr_info_t* info = nullptr;
    hs_compile_error_t* err = nullptr;
    if (hs_expression_info(expressions[i].c_str(), flags[i], &info, &err) != HS_SUCCESS) {
      errors += (errors.empty() ? "" : "; ") + fields[i] + ": '" + expressions[i] +
                "' is not a usable pattern: " + (err ? err->message : "unknown error");
      hs_free_compile_error(err);
    } else {
      if (info->min_width == 0)
        errors += (errors.empty() ? "" : "; ") + fields[i] + ": '" + expressions[i] +
                  "' matches empty input";
      free(info);
    }
  }
  if (!errors.empty()) return invalidArgument(errors);
  if (attached.empty()) return std::shared_ptr<L7Database>();

  // A port's own entry also carries the rules that cover every port of the pod.
  for (auto& [key, list] : attached) {
    if (key.second == 0) continue;
    auto all = attached.find({key.first, 0});
    if (all != attached.end()) list.insert(list.end(), all->second.begin(), all->second.end());
  }
  std::map<std::vector<uint32_t>, uint32_t> rulesetIds;
  for (auto& [key, list] : attached) {
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    auto [it, added] = rulesetIds.try_emplace(list, static_cast<uint32_t>(db->rulesets_.size()));
    if (added) {
      Ruleset rs;
      rs.bits.assign((db->matches_.size() + 63) / 64, 0);
      for (uint32_t m : list) {
        rs.bits[m >> 6] |= uint64_t{1} << (m & 63);
        rs.hasAllow |= db->matches_[m].action == L7Action::kAllow;
      }
      db->rulesets_.push_back(std::move(rs));
    }
    db->attachments_.push_back(
        L7Attachment{Ipv4Address{key.first}, key.second, it->second, podNames[key.first]});
  }

  std::vector<const char*> ptrs;
  for (const std::string& e : expressions) ptrs.push_back(e.c_str());
  hs_compile_error_t* err = nullptr;
  if (hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()),
                       HS_MODE_STREAM, nullptr, &db->db_, &err) != HS_SUCCESS) {
    std::string where = err && err->expression >= 0 ? fields[err->expression] + ": " : "";
    std::string why = err ? err->message : "unknown error";
    hs_free_compile_error(err);
    return invalidArgument("L7 rules: " + where + "Hyperscan cannot compile them together: " + why);
  }
  hs_stream_size(db->db_, &db->streamBytes_);
  db->flowsPerWorker_ = flowsPerWorker;
  db->workers_ = std::vector<Worker>(workers);
  for (unsigned w = 0; w < workers; ++w) {
    Worker& wk = db->workers_[w];
    if (hs_alloc_scratch(db->db_, &wk.scratch) != HS_SUCCESS)
      return makeError(ErrorCode::kResourceExhausted,
                       "L7 rules: cannot allocate Hyperscan scratch");
    wk.flows.resize(flowsPerWorker);
    wk.free.reserve(flowsPerWorker);
    wk.matchCounts = std::vector<Counter>(db->matches_.size());
    for (uint32_t i = 0; i < flowsPerWorker; ++i) {
      if (hs_open_stream(db->db_, 0, &wk.flows[i].stream) != HS_SUCCESS)
        return makeError(ErrorCode::kResourceExhausted, "L7 rules: cannot open " +
                                                            std::to_string(flowsPerWorker) +
                                                            " Hyperscan streams per worker");
      wk.free.push_back(flowsPerWorker - 1 - i);
    }
  }
  db->serial_ = serials.fetch_add(1);
  return db;
}

L7Database::~L7Database() {
  for (Worker& w : workers_) {
    for (L7Flow& f : w.flows)
      if (f.stream) hs_close_stream(f.stream, nullptr, nullptr, nullptr);
    if (w.scratch) hs_free_scratch(w.scratch);
  }
  if (db_) hs_free_database(db_);
}

int32_t L7Database::rulesetFor(rte_be32_t pod, rte_be16_t port) const {
  const uint32_t ip = rte_be_to_cpu_32(pod);
  const uint16_t p = rte_be_to_cpu_16(port);
  auto find = [&](uint16_t key) -> int32_t {
    auto it = std::lower_bound(attachments_.begin(), attachments_.end(), std::make_pair(ip, key),
                               [](const L7Attachment& a, const std::pair<uint32_t, uint16_t>& k) {
                                 return std::make_pair(a.pod.value, a.port) < k;
                               });
    if (it != attachments_.end() && it->pod.value == ip && it->port == key)
      return static_cast<int32_t>(it->ruleset);
    return -1;
  };
  const int32_t exact = find(p);
  return exact >= 0 ? exact : find(0);
}

L7Flow* L7Database::allocate(unsigned w) {
  Worker& wk = workers_[w];
  if (wk.free.empty()) return nullptr;
  L7Flow* f = &wk.flows[wk.free.back()];
  wk.free.pop_back();
  hs_reset_stream(f->stream, 0, nullptr, nullptr, nullptr);
  f->seqKnown = f->inHead = f->allowed = false;
  f->nextSeq = 0;
  f->inUse = true;
  return f;
}

void L7Database::release(unsigned w, L7Flow* flow) {
  if (!flow->inUse) return;
  flow->inUse = false;
  workers_[w].free.push_back(static_cast<uint32_t>(flow - workers_[w].flows.data()));
}

L7Verdict L7Database::inspect(unsigned w, L7Flow& flow, const uint8_t* payload, uint32_t length,
                              uint32_t seq, bool syn, L7Report* report) {
  if (syn) {
    flow.nextSeq = seq + 1;
    flow.seqKnown = true;
    ++seq;
  }
  if (length == 0) return L7Verdict::kPass;
  if (!flow.seqKnown) {  // picked up mid-stream: scan from here
    flow.nextSeq = seq;
    flow.seqKnown = true;
  }
  const int32_t ahead = static_cast<int32_t>(seq - flow.nextSeq);
  if (ahead > 0) return L7Verdict::kOutOfOrder;
  const uint32_t seen = flow.nextSeq - seq;     // modulo 2^32: -ahead, also for ahead == INT32_MIN
  if (seen >= length) return L7Verdict::kPass;  // a retransmission of scanned bytes
  payload += seen;
  length -= seen;
  Worker& wk = workers_[w];
  ScanContext ctx{this, &rulesets_[flow.ruleset], &flow, report, &wk, false};
  hs_scan_stream(flow.stream, reinterpret_cast<const char*>(payload), length, 0, wk.scratch,
                 &L7Database::onMatch, &ctx);
  if (ctx.denied) return L7Verdict::kDeny;
  flow.nextSeq += length;
  return L7Verdict::kPass;
}

uint64_t L7Database::matchCount(size_t i) const {
  uint64_t sum = 0;
  for (const Worker& w : workers_) sum += w.matchCounts[i].read();
  return sum;
}

}  // namespace nodeplane::policy
