// L7 rules on Hyperscan streams: requests matched across segments, allow rules as a request-level
// default deny, deny patterns, sequence-order handling, and compile errors named by rule.
#include "policy/l7.h"

#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include <string>

#include "policy/model_json.h"

namespace nodeplane::policy {
namespace {

const Ipv4Prefix kLocal = *Ipv4Prefix::parse("10.244.1.0/24");

PolicyState stateWith(const char* l7Json) {
  auto state = policyStateFromJson(Json::parse(std::string(R"({
    "pods": [{"namespace": "x", "name": "web", "ip": "10.244.1.5", "labels": {"app": "web"},
              "ports": [{"name": "http", "containerPort": 80}]},
             {"namespace": "x", "name": "other", "ip": "10.244.1.6", "labels": {"app": "other"}}],
    "l7Rules": [)") + l7Json + "]}"));
  EXPECT_TRUE(state.ok()) << state.error().message;
  return *state;
}

constexpr const char* kWebRules = R"({"metadata": {"namespace": "x", "name": "web"},
  "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ports": [{"port": "http"}],
           "rules": [{"action": "allow", "http": {"method": "GET", "path": "/public/.*"}},
                     {"action": "allow", "http": {"path": "/health", "host": "web\\.x(\\.svc)?"}},
                     {"action": "deny", "pattern": "(?i)union\\s+select"},
                     {"action": "log", "http": {"method": "GET", "path": "/public/log.*"}}]}})";

class L7Test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto built = L7Database::build(stateWith(kWebRules), kLocal, 1, 16);
    ASSERT_TRUE(built.ok()) << built.error().message;
    db = std::move(*built);
    ASSERT_NE(db, nullptr);
    const int32_t rs = db->rulesetFor(rte_cpu_to_be_32(0x0af40105), rte_cpu_to_be_16(80));
    ASSERT_GE(rs, 0);
    flow = db->allocate(0);
    ASSERT_NE(flow, nullptr);
    flow->ruleset = static_cast<uint32_t>(rs);
    ASSERT_EQ(db->inspect(0, *flow, nullptr, 0, seq - 1, true, &report), L7Verdict::kPass);
  }

  L7Verdict send(const std::string& bytes) {
    report = L7Report{};
    const L7Verdict v = db->inspect(0, *flow, reinterpret_cast<const uint8_t*>(bytes.data()),
                                    static_cast<uint32_t>(bytes.size()), seq, false, &report);
    if (v == L7Verdict::kPass) seq += static_cast<uint32_t>(bytes.size());
    return v;
  }

  std::shared_ptr<L7Database> db;
  L7Flow* flow = nullptr;
  L7Report report;
  uint32_t seq = 5001;
};

TEST_F(L7Test, AttachesToTheSelectedPodAndItsNamedPortOnly) {
  EXPECT_LT(db->rulesetFor(rte_cpu_to_be_32(0x0af40105), rte_cpu_to_be_16(81)), 0);
  EXPECT_LT(db->rulesetFor(rte_cpu_to_be_32(0x0af40106), rte_cpu_to_be_16(80)), 0);
}

TEST_F(L7Test, AllowedRequestsPassAndKeepAliveWorks) {
  EXPECT_EQ(send("GET /public/a.html HTTP/1.1\r\nHost: web\r\nAccept: */*\r\n\r\n"),
            L7Verdict::kPass);
  EXPECT_EQ(send("GET /public/b HTTP/1.1\r\nHost: web\r\n\r\n"), L7Verdict::kPass);
  EXPECT_EQ(send("POST /health HTTP/1.1\r\nUser-Agent: x\r\nHOST: web.x.svc:80\r\n\r\n"),
            L7Verdict::kPass);
}

TEST_F(L7Test, ARequestNoAllowRuleMatchesIsDeniedAtTheEndOfItsHead) {
  EXPECT_EQ(send("GET /public/ok HTTP/1.1\r\n\r\n"), L7Verdict::kPass);
  EXPECT_EQ(send("GET /private HTTP/1.1\r\nHost: web\r\n"), L7Verdict::kPass) << "head not done";
  EXPECT_EQ(send("\r\n"), L7Verdict::kDeny);
  EXPECT_EQ(report.denyMatch, -1) << "no allow rule, not a deny rule";
}

TEST_F(L7Test, HostMustMatchWhole) {
  EXPECT_EQ(send("GET /health HTTP/1.1\r\nHost: evil.web.x\r\n\r\n"), L7Verdict::kDeny);
}

TEST_F(L7Test, ARequestLineSplitOverTwoSegmentsStillMatches) {
  EXPECT_EQ(send("GET /pub"), L7Verdict::kPass);
  EXPECT_EQ(send("lic/x HTTP/1.1\r\n\r\n"), L7Verdict::kPass);
  EXPECT_EQ(send("GET /priv"), L7Verdict::kPass);
  EXPECT_EQ(send("ate HTTP/1.1\r\n\r\n"), L7Verdict::kDeny);
}

TEST_F(L7Test, DenyPatternsMatchAnywhereInTheStreamAcrossSegments) {
  EXPECT_EQ(send("GET /public/q?id=1%20UNION"), L7Verdict::kPass);
  EXPECT_EQ(send("  sElEcT HTTP/1.1\r\n\r\n"), L7Verdict::kDeny);
  EXPECT_EQ(db->matches()[static_cast<size_t>(report.denyMatch)].source,
            "l7rule x/web spec.rules[2]");
}

TEST_F(L7Test, LogRulesCount) {
  EXPECT_EQ(send("GET /public/log1 HTTP/1.1\r\n\r\nGET /public/log2 HTTP/1.1\r\n\r\n"),
            L7Verdict::kPass);
  EXPECT_EQ(report.logs, 2u);
  EXPECT_EQ(db->matchCount(3), 2u);
}

TEST_F(L7Test, SegmentsAreScannedInSequenceOrderOnly) {
  const std::string first = "GET /public/x HTTP/1.1\r\n";
  const std::string second = "Host: web\r\n\r\n";
  // The second segment arrives first: dropped so that it comes again in order.
  L7Report r;
  EXPECT_EQ(db->inspect(0, *flow, reinterpret_cast<const uint8_t*>(second.data()),
                        static_cast<uint32_t>(second.size()),
                        seq + static_cast<uint32_t>(first.size()), false, &r),
            L7Verdict::kOutOfOrder);
  EXPECT_EQ(send(first), L7Verdict::kPass);
  // A retransmission of scanned bytes passes unscanned (a scan would see a second request line).
  EXPECT_EQ(db->inspect(0, *flow, reinterpret_cast<const uint8_t*>(first.data()),
                        static_cast<uint32_t>(first.size()),
                        seq - static_cast<uint32_t>(first.size()), false, &r),
            L7Verdict::kPass);
  EXPECT_EQ(send(second), L7Verdict::kPass);
  // A segment overlapping scanned bytes: only its new part is scanned.
  const std::string third = "GET /private HTTP/1.1\r\n\r\n";
  EXPECT_EQ(
      db->inspect(0, *flow, reinterpret_cast<const uint8_t*>((second.substr(8) + third).data()),
                  static_cast<uint32_t>(second.size() - 8 + third.size()),
                  seq - static_cast<uint32_t>(second.size() - 8), false, &r),
      L7Verdict::kDeny);
}

TEST_F(L7Test, StreamStatesAreReusedWithoutAllocation) {
  std::vector<L7Flow*> taken;
  while (L7Flow* f = db->allocate(0)) taken.push_back(f);
  EXPECT_EQ(taken.size(), 15u) << "16 per worker, one in use by the fixture";
  db->release(0, taken.back());
  EXPECT_EQ(db->allocate(0), taken.back());
}

TEST(L7Build, NothingAttachedNoDatabase) {
  auto built = L7Database::build(stateWith(R"({"metadata": {"namespace": "y", "name": "n"},
      "spec": {"podSelector": {}, "rules": [{"action": "deny", "pattern": "x"}]}})"),
                                 kLocal, 1, 16);
  ASSERT_TRUE(built.ok());
  EXPECT_EQ(*built, nullptr) << "namespace y has no pod on this node";
}

TEST(L7Build, EveryBadPatternIsNamed) {
  auto built = L7Database::build(stateWith(R"({"metadata": {"namespace": "x", "name": "bad"},
      "spec": {"podSelector": {}, "rules": [{"action": "deny", "pattern": "(unclosed"},
                                            {"action": "deny", "pattern": "a*"},
                                            {"action": "deny", "pattern": "(a)\\1"},
                                            {"action": "allow", "http": {"path": "/[z-a]"}}]}})"),
                                 kLocal, 1, 16);
  ASSERT_FALSE(built.ok());
  const std::string& m = built.error().message;
  for (const char* expected :
       {"l7rule x/bad: field 'spec.rules[0].pattern': '(unclosed'",
        "l7rule x/bad: field 'spec.rules[1].pattern': 'a*' matches empty input",
        "l7rule x/bad: field 'spec.rules[2].pattern'", "l7rule x/bad: field 'spec.rules[3].http'"})
    EXPECT_NE(m.find(expected), std::string::npos) << expected << " in: " << m;
}

}  // namespace
}  // namespace nodeplane::policy
