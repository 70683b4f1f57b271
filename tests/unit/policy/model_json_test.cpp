// Reading NetworkPolicy (as the API server serves it), L7Rule and identities; every kind of bad
// input is reported with the object, the field and the value, and all of them at once.
#include "policy/model_json.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace nodeplane::policy {
namespace {

Json parse(const char* text) {
  return Json::parse(text);
}

// The example of the Kubernetes documentation ("test-network-policy"), as kubectl get -o json
// prints it (metadata trimmed).
constexpr const char* kDocExample = R"({
  "apiVersion": "networking.k8s.io/v1",
  "kind": "NetworkPolicy",
  "metadata": {"name": "test-network-policy", "namespace": "default", "resourceVersion": "42",
               "uid": "0b8a1c8e-0000-0000-0000-000000000000"},
  "spec": {
    "podSelector": {"matchLabels": {"role": "db"}},
    "policyTypes": ["Ingress", "Egress"],
    "ingress": [{
      "from": [
        {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
        {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
        {"podSelector": {"matchLabels": {"role": "frontend"}}}
      ],
      "ports": [{"protocol": "TCP", "port": 6379}]
    }],
    "egress": [{
      "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
      "ports": [{"protocol": "TCP", "port": 5978}]
    }]
  }
})";

TEST(NetworkPolicyJson, ReadsTheDocumentationExample) {
  Problems problems;
  NetworkPolicy p = networkPolicyFromJson(parse(kDocExample), problems);
  ASSERT_TRUE(problems.empty()) << problems.toError().message;
  EXPECT_EQ(p.key(), "default/test-network-policy");
  EXPECT_TRUE(p.ingress);
  EXPECT_TRUE(p.egress);
  EXPECT_EQ(p.podSelector.matchLabels.at("role"), "db");
  ASSERT_EQ(p.ingressRules.size(), 1u);
  ASSERT_EQ(p.ingressRules[0].peers.size(), 3u);
  EXPECT_EQ(p.ingressRules[0].peers[0].ipBlock->cidr.toString(), "172.17.0.0/16");
  EXPECT_EQ(p.ingressRules[0].peers[0].ipBlock->except[0].toString(), "172.17.1.0/24");
  EXPECT_TRUE(p.ingressRules[0].peers[1].namespaceSelector.has_value());
  EXPECT_FALSE(p.ingressRules[0].peers[1].podSelector.has_value());
  EXPECT_EQ(p.ingressRules[0].ports[0], (PortMatch{kProtoTcp, 6379, 0, ""}));
  EXPECT_EQ(p.egressRules[0].ports[0].port, 5978);
}

TEST(NetworkPolicyJson, PolicyTypesDefaultAsTheApiServerDoes) {
  Problems problems;
  auto p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x"},
      "spec": {"podSelector": {}}})"),
                                 problems);
  EXPECT_TRUE(p.ingress);
  EXPECT_FALSE(p.egress) << "no egress rules: ingress only";
  p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x"},
      "spec": {"podSelector": {}, "egress": [{}]}})"),
                            problems);
  EXPECT_TRUE(p.ingress);
  EXPECT_TRUE(p.egress);
  p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x"},
      "spec": {"podSelector": {}, "egress": []}})"),
                            problems);
  EXPECT_FALSE(p.egress) << "an empty egress list adds no Egress type";
  p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x"},
      "spec": {"podSelector": {}, "policyTypes": ["Egress"]}})"),
                            problems);
  EXPECT_FALSE(p.ingress);
  EXPECT_TRUE(p.egress);
  EXPECT_TRUE(problems.empty()) << problems.toError().message;
}

TEST(NetworkPolicyJson, PortForms) {
  Problems problems;
  auto p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x"},
      "spec": {"podSelector": {}, "ingress": [{"ports": [
        {"port": "http"}, {"protocol": "UDP", "port": 53}, {"port": 32000, "endPort": 32768},
        {"protocol": "SCTP"}]}]}})"),
                                 problems);
  ASSERT_TRUE(problems.empty()) << problems.toError().message;
  const auto& ports = p.ingressRules[0].ports;
  ASSERT_EQ(ports.size(), 4u);
  EXPECT_EQ(ports[0], (PortMatch{kProtoTcp, 0, 0, "http"}));
  EXPECT_EQ(ports[1], (PortMatch{kProtoUdp, 53, 0, ""}));
  EXPECT_EQ(ports[2], (PortMatch{kProtoTcp, 32000, 32768, ""}));
  EXPECT_EQ(ports[3], (PortMatch{kProtoSctp, 0, 0, ""}));
}

TEST(NetworkPolicyJson, AuditAnnotation) {
  Problems problems;
  auto p = networkPolicyFromJson(parse(R"({"metadata": {"name": "a", "namespace": "x",
      "annotations": {"nodeplane.io/audit": "true"}}, "spec": {"podSelector": {}}})"),
                                 problems);
  EXPECT_TRUE(p.audit);
}

struct BadCase {
  const char* spec;   // the spec object
  const char* field;  // the field the error must name
  const char* value;  // a fragment the message must contain
};

class NetworkPolicyBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(NetworkPolicyBadInput, NamesPolicyFieldAndValue) {
  const BadCase& c = GetParam();
  const std::string text =
      std::string(R"({"metadata": {"name": "bad", "namespace": "x"}, "spec": )") + c.spec + "}";
  auto state = policyStateFromJson(Json{{"networkPolicies", Json::array({parse(text.c_str())})}});
  ASSERT_FALSE(state.ok()) << c.spec;
  const std::string& m = state.error().message;
  EXPECT_NE(m.find("networkpolicy x/bad"), std::string::npos) << m;
  EXPECT_NE(m.find(std::string("field '") + c.field + "'"), std::string::npos) << m;
  EXPECT_NE(m.find(c.value), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(
    EveryConstruct, NetworkPolicyBadInput,
    ::testing::Values(
        BadCase{R"({})", "spec.podSelector", "missing"},
        BadCase{R"({"podSelector": {"matchLabels": {"a b": "x"}}})",
                "spec.podSelector.matchLabels.a b", "'a b'"},
        BadCase{R"({"podSelector": {"matchLabels": {"app": "a b"}}})",
                "spec.podSelector.matchLabels.app", "'a b'"},
        BadCase{
            R"({"podSelector": {"matchExpressions": [{"key": "env", "operator": "Maybe", "values": ["x"]}]}})",
            "spec.podSelector.matchExpressions[0].operator", "'Maybe'"},
        BadCase{R"({"podSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}})",
                "spec.podSelector.matchExpressions[0].values", "non-empty"},
        BadCase{
            R"({"podSelector": {"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]}})",
            "spec.podSelector.matchExpressions[0].values", "empty"},
        BadCase{R"({"podSelector": {}, "policyTypes": ["Sideways"]})", "spec.policyTypes[0]",
                "'Sideways'"},
        BadCase{
            R"({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]})",
            "spec.ingress[0].from[0].ipBlock.cidr", "'10.0.0.0/33'"},
        BadCase{
            R"({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]})",
            "spec.ingress[0].from[0].ipBlock.except[0]", "'10.1.0.0/24'"},
        BadCase{
            R"({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}, "podSelector": {}}]}]})",
            "spec.ingress[0].from[0].ipBlock", "may not be combined"},
        BadCase{R"({"podSelector": {}, "ingress": [{"from": [{}]}]})", "spec.ingress[0].from[0]",
                "must specify"},
        BadCase{R"({"podSelector": {}, "egress": [{"ports": [{"port": 70000}]}]})",
                "spec.egress[0].ports[0].port", "70000"},
        BadCase{R"({"podSelector": {}, "egress": [{"ports": [{"port": "HTTP_80"}]}]})",
                "spec.egress[0].ports[0].port", "'HTTP_80'"},
        BadCase{R"({"podSelector": {}, "egress": [{"ports": [{"protocol": "ICMP"}]}]})",
                "spec.egress[0].ports[0].protocol", "'ICMP'"},
        BadCase{R"({"podSelector": {}, "egress": [{"ports": [{"port": 90, "endPort": 80}]}]})",
                "spec.egress[0].ports[0].endPort", "80"},
        BadCase{R"({"podSelector": {}, "egress": [{"ports": [{"port": "http", "endPort": 80}]}]})",
                "spec.egress[0].ports[0].endPort", "numeric"},
        BadCase{R"({"podSelector": {}, "ingres": []})", "spec.ingres", "unknown field"}));

TEST(PolicyStateJson, ReportsEveryProblemAtOnce) {
  auto state = policyStateFromJson(parse(R"({
    "namespaces": [{"name": "x", "labels": {"team": "a b"}}],
    "pods": [{"namespace": "x", "name": "a", "ip": "10.244.1.300"}],
    "networkPolicies": [
      {"metadata": {"name": "p1", "namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["In"]}},
      {"metadata": {"name": "p2", "namespace": "x"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}}
    ]})"));
  ASSERT_FALSE(state.ok());
  const std::string& m = state.error().message;
  for (const char* expected : {"namespace x: field 'labels.team'", "pod x/a: field 'ip'",
                               "networkpolicy x/p1: field 'spec.policyTypes[0]'",
                               "networkpolicy x/p2: field 'spec.ingress[0].ports[0].port'"})
    EXPECT_NE(m.find(expected), std::string::npos) << expected << " in: " << m;
}

// Every string field of the policy section given as another type is an error naming the field,
// never an exception (a number, a list, a bool, an object, null where a string belongs).
TEST(PolicyStateJson, AWrongTypeAnywhereIsAnErrorNotAnException) {
  const char* fields[] = {
      R"({"namespaces": [{"name": %s}]})",
      R"({"namespaces": [{"metadata": {"name": %s}}]})",
      R"({"pods": [{"namespace": %s, "name": "p", "ip": "10.244.1.2"}]})",
      R"({"pods": [{"namespace": "a", "name": %s, "ip": "10.244.1.2"}]})",
      R"({"pods": [{"namespace": "a", "name": "p", "ip": %s}]})",
      R"({"pods": [{"namespace": "a", "name": "p", "ip": "10.244.1.2", "ports": [{"name": %s, "containerPort": 80}]}]})",
      R"({"pods": [{"namespace": "a", "name": "p", "ip": "10.244.1.2", "ports": [{"containerPort": 80, "protocol": %s}]}]})",
      R"({"networkPolicies": [{"metadata": {"namespace": %s, "name": "p"}, "spec": {"podSelector": {}}}]})",
      R"({"networkPolicies": [{"metadata": {"namespace": "a", "name": %s}, "spec": {"podSelector": {}}}]})",
      R"({"networkPolicies": [{"metadata": {"namespace": "a", "name": "p"}, "spec": {"podSelector": {"matchExpressions": [{"key": %s, "operator": "Exists"}]}}}]})",
      R"({"l7Rules": [{"metadata": {"namespace": %s, "name": "r"}, "spec": {"podSelector": {}, "rules": [{"action": "allow", "http": {"method": "GET"}}]}}]})",
  };
  for (const char* field : fields)
    for (const char* value : {"5", "[1]", "true", "{\"a\": 1}"}) {
      char text[512];
      std::snprintf(text, sizeof(text), field, value);
      Result<PolicyState> r = makeError(ErrorCode::kInternal, "not run");
      EXPECT_NO_THROW(r = policyStateFromJson(Json::parse(text))) << text;
      EXPECT_FALSE(r.ok()) << text;
    }
}

TEST(PolicyStateJson, DuplicatesAndSharedAddressesAreRefused) {
  auto state = policyStateFromJson(parse(R"({
    "pods": [{"namespace": "x", "name": "a", "ip": "10.244.1.5"},
             {"namespace": "y", "name": "b", "ip": "10.244.1.5"}]})"));
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.error().message.find("pod y/b: field 'ip': '10.244.1.5'"), std::string::npos)
      << state.error().message;
}

TEST(PolicyStateJson, NamespacesGetTheirNameLabel) {
  auto state = policyStateFromJson(parse(R"({"namespaces": [
      {"name": "x"}, {"metadata": {"name": "y", "labels": {"team": "ml"}}}]})"));
  ASSERT_TRUE(state.ok()) << state.error().message;
  EXPECT_EQ(state->namespaces[0].labels.at("kubernetes.io/metadata.name"), "x");
  EXPECT_EQ(state->namespaces[1].labels.at("team"), "ml");
  EXPECT_EQ(state->namespaces[1].labels.at("kubernetes.io/metadata.name"), "y");
}

TEST(L7RuleJson, ReadsRulesAndRefusesBadOnes) {
  Problems problems;
  L7Rule r = l7RuleFromJson(parse(R"({"apiVersion": "nodeplane.io/v1", "kind": "L7Rule",
      "metadata": {"namespace": "x", "name": "web"},
      "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ports": [{"port": 80}],
               "rules": [{"action": "allow", "http": {"method": "GET", "path": "/public/.*"}},
                         {"action": "deny", "pattern": "(?i)union\\s+select"}]}})"),
                            problems);
  ASSERT_TRUE(problems.empty()) << problems.toError().message;
  ASSERT_EQ(r.rules.size(), 2u);
  EXPECT_TRUE(r.rules[0].http);
  EXPECT_EQ(r.rules[0].path, "/public/.*");
  EXPECT_EQ(r.rules[1].action, L7Action::kDeny);

  auto bad = policyStateFromJson(parse(R"({"l7Rules": [{"metadata": {"namespace": "x", "name": "w"},
      "spec": {"podSelector": {}, "ports": [{"protocol": "UDP", "port": 53}],
               "rules": [{"action": "maybe", "pattern": "x"}, {"action": "allow", "pattern": "x"},
                         {"action": "deny", "http": {"method": "get"}}, {"action": "log"}]}}]})"));
  ASSERT_FALSE(bad.ok());
  const std::string& m = bad.error().message;
  for (const char* expected :
       {"l7rule x/w: field 'spec.ports[0].protocol'", "field 'spec.rules[0].action': 'maybe'",
        "field 'spec.rules[1].action': 'allow' needs an 'http' match",
        "field 'spec.rules[2].http.method': 'get'", "field 'spec.rules[3]': needs exactly one"})
    EXPECT_NE(m.find(expected), std::string::npos) << expected << " in: " << m;
}

}  // namespace
}  // namespace nodeplane::policy
