// The apply request read with simdjson must mean exactly what the generic (nlohmann-json) path
// reads: the same desired state for every construct, the same error texts for every bad input.
#include "control/apply_reader.h"

#include <gtest/gtest.h>

#include "control/model_json.h"

namespace nodeplane::control {
namespace {

std::string line(const std::string& args,
                 const std::string& envelope = R"("v": 1, "id": 7, "op": "apply")") {
  return "{" + envelope + ", \"args\": " + args + "}";
}

const char* kFullState = R"({
  "generation": 42,
  "nodes": [{"name": "n1", "ip": "192.168.50.10", "podCidrs": ["10.244.1.0/24"]},
            {"name": "n2", "ip": "192.168.50.11", "podCidr": "10.244.2.0/24", "vtepMac": "02:00:00:00:00:02"}],
  "services": [
    {"namespace": "web", "name": "front", "type": "LoadBalancer",
     "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "externalIPs": ["203.0.113.5"],
     "loadBalancerIPs": ["203.0.113.6"],
     "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web", "nodePort": 30080},
               {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "5353", "appProtocol": "dns"},
               {"port": 443, "targetPort": 8443, "nodePort": null}],
     "sessionAffinity": "ClientIP", "sessionAffinityTimeoutSeconds": 600,
     "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
     "endpoints": [
       {"ip": "10.244.1.5", "nodeName": "n1", "ready": true, "ports": {"web": 8080, "http": 8081},
        "weight": 3, "targetRef": {"kind": "Pod", "name": "front-1"}},
       {"ip": "10.244.2.5", "nodeName": "n2", "ready": false, "serving": true, "terminating": true},
       {"ip": "10.244.2.6", "ready": false},
       {"ip": "10.244.2.7", "ready": null, "serving": null, "weight": 0}]},
    {"namespace": "db", "name": "headless", "clusterIP": "None", "ports": [{"port": 5432}],
     "sessionAffinity": null, "type": null}
  ],
  "policy": {"namespaces": [{"name": "web", "labels": {"team": "a"}}],
             "pods": [{"namespace": "web", "name": "front-1", "ip": "10.244.1.5", "labels": {"app": "front"}}],
             "networkPolicies": [{"metadata": {"namespace": "web", "name": "allow-a"},
                                  "spec": {"podSelector": {"matchLabels": {"app": "front"}},
                                           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}],
                                                        "ports": [{"port": 8080}]}]}}]},
  "exports": [{"namespace": "web", "name": "front"}, {"namespace": "db", "name": "headless"}]
})";

void expectSameState(const DesiredState& a, const DesiredState& b) {
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.nodes, b.nodes);
  EXPECT_EQ(a.services, b.services);
  ASSERT_EQ(a.policy.has_value(), b.policy.has_value());
  if (a.policy) EXPECT_TRUE(*a.policy == *b.policy);
  EXPECT_EQ(a.exports, b.exports);
}

TEST(ApplyReader, ReadsEveryConstructAsTheGenericPathDoes) {
  auto fast = readApplyRequest(line(kFullState));
  ASSERT_TRUE(fast.has_value());
  EXPECT_EQ(fast->id, Json(7));
  ASSERT_TRUE(fast->state.ok()) << fast->state.error().message;
  auto generic = desiredStateFromJson(Json::parse(kFullState));
  ASSERT_TRUE(generic.ok()) << generic.error().message;
  expectSameState(*fast->state, *generic);
  // And it is what was written.
  const auto& s = *fast->state;
  EXPECT_EQ(s.exports, (std::vector<std::string>{"web/front", "db/headless"}));
  ASSERT_EQ(s.services->size(), 2u);
  const ServiceSpec& front = (*s.services)[0];
  EXPECT_EQ(front.ports[0].targetPortName, "web");
  EXPECT_EQ(front.ports[1].targetPort, 5353);
  EXPECT_EQ(front.ports[0].nodePort, 30080);
  EXPECT_TRUE(front.affinityClientIp);
  EXPECT_EQ(front.affinityTimeoutSeconds, 600u);
  EXPECT_TRUE(front.externalTrafficLocal);
  EXPECT_EQ(front.endpoints[0].ports.at("http"), 8081);
  EXPECT_EQ(front.endpoints[0].weight, 3u);
  EXPECT_FALSE(front.endpoints[2].serving) << "serving follows ready when not given";
  EXPECT_TRUE(front.endpoints[1].terminating);
  EXPECT_TRUE((*s.services)[1].clusterIps.empty()) << "headless";
  EXPECT_EQ(s.policy->policies.size(), 1u);
}

TEST(ApplyReader, EveryBadInputGetsTheGenericPathsErrors) {
  const char* bad[] = {
      R"({"generation": -1})",
      R"({"generation": 1, "nodez": []})",
      R"({"services": {}})",
      R"({"services": [5]})",
      R"({"services": [{"name": "x", "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": 5, "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "typo": 1, "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x"}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 0}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80.5}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "protocol": "SCTP"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "protocol": 6}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "name": []}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "targetPort": "99999"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "targetPort": "999999999999999999999"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "targetPort": true}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "nodePort": -1}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80, "prot": "TCP"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [80]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "clusterIPs": "10.96.0.1", "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "clusterIPs": ["10.96.0.300"], "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "clusterIP": "nope", "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "externalIPs": [1], "ports": [{"port": 80}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "sessionAffinity": "Sticky"}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "sessionAffinityTimeoutSeconds": 0}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "sessionAffinityTimeoutSeconds": "1"}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "externalTrafficPolicy": "Node"}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": {}}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [1]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": null}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "1.2.3"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "ready": "yes"}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "ports": {"p": 0}}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "ports": []}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "weight": 70000}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "nodeName": 3}]}]})",
      R"({"services": [{"namespace": "a", "name": "x", "ports": [{"port": 80}], "endpoints": [{"ip": "10.0.0.1", "color": "red"}]}]})",
      R"({"nodes": [{"name": "n1", "ip": "x"}], "services": [{"namespace": "a", "ports": []}]})",
      R"({"policy": {"networkPolicies": [{"metadata": {"namespace": "a", "name": "p"}, "spec": {"ingres": []}}]}})",
      // Wrong types in the policy section (these once ended the daemon with a type_error).
      R"({"policy": {"namespaces": [{"name": 5}]}})",
      R"({"policy": {"pods": [{"namespace": [], "name": "p", "ip": "10.244.1.2"}]}})",
      R"({"policy": {"pods": [{"namespace": "a", "name": true, "ip": "10.244.1.2"}]}})",
      R"({"policy": {"pods": [{"namespace": "a", "name": "p", "ip": "10.244.1.2", "ports": [{"name": 1, "containerPort": 80}]}]}})",
      R"({"policy": {"pods": [{"namespace": "a", "name": "p", "ip": "10.244.1.2", "ports": [{"containerPort": 80, "protocol": 6}]}]}})",
      R"({"policy": {"networkPolicies": [{"metadata": {"namespace": 1, "name": "p"}, "spec": {"podSelector": {}}}]}})",
      R"({"policy": {"networkPolicies": [{"metadata": {"namespace": "a", "name": ["p"]}, "spec": {"podSelector": {}}}]}})",
      R"({"exports": {"namespace": "a", "name": "x"}})",
      R"({"exports": ["a/x"]})",
      R"({"exports": [{"namespace": "a"}]})",
      R"({"exports": [{"namespace": "a", "name": "x", "globalIp": "242.0.0.2"}]})",
      R"({"exports": [{"namespace": "A", "name": "x"}]})",
      R"({"exports": [{"namespace": "a", "name": 5}]})",
  };
  for (const char* args : bad) {
    auto fast = readApplyRequest(line(args));
    ASSERT_TRUE(fast.has_value()) << args;
    auto generic = desiredStateFromJson(Json::parse(args));
    ASSERT_FALSE(generic.ok()) << args;
    ASSERT_FALSE(fast->state.ok()) << args;
    EXPECT_EQ(fast->state.error().message, generic.error().message) << args;
  }
}

TEST(ApplyReader, LeavesAnythingButAWellFormedApplyToTheGenericPath) {
  EXPECT_FALSE(readApplyRequest("not json"));
  EXPECT_FALSE(readApplyRequest("[1, 2]"));
  EXPECT_FALSE(readApplyRequest(line("{}", R"("v": 1, "op": "status")")));
  EXPECT_FALSE(readApplyRequest(line("{}", R"("v": 2, "op": "apply")")));
  EXPECT_FALSE(readApplyRequest(line("{}", R"("op": "apply")")));
  EXPECT_FALSE(readApplyRequest(line("{}", R"("v": 1, "op": "apply", "extra": 1)")));
  EXPECT_FALSE(readApplyRequest(line("[]")));
  EXPECT_FALSE(readApplyRequest(R"({"v": 1, "op": "apply"})"));
  EXPECT_FALSE(readApplyRequest(line("{\"services\": [")));  // cut short
  auto ok = readApplyRequest(line("{}", R"("v": 1, "op": "apply", "id": "abc")"));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->id, Json("abc"));
  ASSERT_TRUE(ok->state.ok());
  EXPECT_FALSE(ok->state->services.has_value()) << "a section not given is left as it is";
}

}  // namespace
}  // namespace nodeplane::control
