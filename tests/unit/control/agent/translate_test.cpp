// The agent's reading of Kubernetes objects: manifest files as kubectl prints them, watch events,
// and their translation into one node's desired state; every bad-object class is reported with
// kind, namespace/name and field, and the rest is translated.
#include "control/agent/translate.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "control/agent/manifests.h"

namespace nodeplane::agent {
namespace {

const std::string kFixtures = NP_FIXTURES_DIR;

ClusterState load(const std::string& file, std::vector<std::string>* problems = nullptr) {
  LoadedObjects loaded = loadManifests(kFixtures + "/" + file);
  ClusterState state;
  state.replaceSource("test", loaded.objects);
  if (problems) *problems = loaded.problems;
  return state;
}

const Json& byName(const Json& list, const std::string& name) {
  for (const Json& j : list)
    if (j.value("name", "") == name) return j;
  static const Json none;
  return none;
}

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
  return std::any_of(problems.begin(), problems.end(),
                     [&](const std::string& p) { return p.find(text) != std::string::npos; });
}

TEST(Manifests, YamlKeepsScalarTypesAndExpandsLists) {
  LoadedObjects o = parseManifests(R"(kind: List
items:
- {kind: Service, metadata: {name: a}, spec: {ports: [{port: 80, targetPort: "8080", name: http}]}}
- {kind: Service, metadata: {name: b}, spec: {clusterIP: 10.96.0.1, x: true, y: null, z: 1.5}}
---
)",
                                   "inline");
  ASSERT_TRUE(o.problems.empty());
  ASSERT_EQ(o.objects.size(), 2u);
  EXPECT_TRUE(o.objects[0]["spec"]["ports"][0]["port"].is_number_integer());
  EXPECT_TRUE(o.objects[0]["spec"]["ports"][0]["targetPort"].is_string())
      << "quoted stays a string";
  EXPECT_EQ(o.objects[1]["spec"]["clusterIP"], "10.96.0.1");
  EXPECT_EQ(o.objects[1]["spec"]["x"], true);
  EXPECT_TRUE(o.objects[1]["spec"]["y"].is_null());
  EXPECT_EQ(o.objects[1]["spec"]["z"], 1.5);
}

TEST(Manifests, JsonDocumentsOneAfterAnother) {
  LoadedObjects o = parseManifests(
      "{\"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n"
      "{\"kind\": \"List\", \"items\": [{\"kind\": \"Namespace\", \"metadata\": {\"name\": "
      "\"b\"}}]}",
      "inline");
  ASSERT_TRUE(o.problems.empty());
  EXPECT_EQ(o.objects.size(), 2u);
}

TEST(Manifests, AYamlErrorNamesTheFileAndLineAndKeepsWhatCameBefore) {
  LoadedObjects o = loadManifests(kFixtures + "/broken.yaml");
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("broken.yaml:"), std::string::npos) << o.problems[0];
  EXPECT_NE(o.problems[0].find("YAML error"), std::string::npos) << o.problems[0];
}

// "Billion laughs": nine levels of ten aliases each would expand to 10^9 nodes. The document is
// refused with a problem; what came before it is kept.
TEST(Manifests, AliasesOfAliasesAreRefusedNotExpanded) {
  std::string yaml = "kind: Namespace\nmetadata: {name: before}\n---\na: &a [lol]\n";
  char prev = 'a';
  for (char level = 'b'; level <= 'j'; ++level, ++prev) {
    yaml += std::string(1, level) + ": &" + level + " [";
    for (int i = 0; i < 10; ++i) yaml += std::string(i ? ", *" : "*") + prev;
    yaml += "]\n";
  }
  LoadedObjects o = parseManifests(yaml, "laughs.yaml");
  ASSERT_EQ(o.objects.size(), 1u) << "the document before it";
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("expands to more nodes"), std::string::npos) << o.problems[0];
}

// yaml-cpp 0.7 never returned from these (found by fuzz_manifests): each is a YAML error now,
// and what came before it is kept.
TEST(Manifests, InputsThatOnceHungTheYamlReaderAreErrors) {
  for (const char* text :
       {",", " ,", "# c\n,", "a: b\n---\n, x", "&x ,", "!t ,", "--- ,", "\"q\"\n,"}) {
    LoadedObjects o = parseManifests(text, "stray.yaml");
    ASSERT_FALSE(o.problems.empty()) << text;
    EXPECT_NE(o.problems.back().find("stray.yaml:"), std::string::npos) << o.problems.back();
  }
  LoadedObjects kept = parseManifests("kind: Namespace\nmetadata: {name: a}\n---\n, x", "s.yaml");
  EXPECT_EQ(kept.objects.size(), 1u);
  // Commas elsewhere are YAML as usual.
  LoadedObjects fine =
      parseManifests("kind: Namespace\nmetadata: {name: a, labels: {x: y}}\n", "ok");
  EXPECT_TRUE(fine.problems.empty());
  EXPECT_EQ(fine.objects.size(), 1u);
}

TEST(Manifests, JsonNestedTooDeepIsSkippedAndTheRestRead) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  LoadedObjects o = parseManifests(
      "{\"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n" + std::string("{\"x\": ") +
          deep + "}\n{\"kind\": \"Namespace\", \"metadata\": {\"name\": \"b\"}}",
      "deep.json");
  EXPECT_EQ(o.objects.size(), 2u);
  ASSERT_EQ(o.problems.size(), 1u);
  EXPECT_NE(o.problems[0].find("nested deeper"), std::string::npos) << o.problems[0];
}

// Numbers, lists and bools where strings belong: each object is reported and skipped, and the
// agent goes on (these once ended it with a type_error).
TEST(Translate, HeadlessServicesNameTheirPodsByHostnameAndSubdomain) {
  // No EndpointSlice: the selector's pods, named as the EndpointSlice controller names them.
  LoadedObjects loaded = parseManifests(R"(
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {hostname: db-0, subdomain: db, containers: [{name: c}]}
status: {phase: Running, podIP: 10.244.1.20, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: shop, labels: {app: db}}
spec: {hostname: other, subdomain: not-db, containers: [{name: c}]}
status: {phase: Running, podIP: 10.244.1.21, conditions: [{type: Ready, status: "True"}]}
)",
                                        "inline");
  ASSERT_TRUE(loaded.problems.empty());
  ClusterState state;
  state.replaceSource("test", loaded.objects);
  const Translation t = translate(state);
  const Json& db = byName(t.args["services"], "db");
  ASSERT_EQ(db["endpoints"].size(), 2u) << t.args.dump();
  EXPECT_EQ(db["ports"], Json::array()) << "a headless service may have no ports";
  for (const Json& e : db["endpoints"])
    EXPECT_EQ(e.value("hostname", ""), e["ip"] == "10.244.1.20" ? "db-0" : "") << e.dump();
}

TEST(Translate, WrongTypesAreReportedAndSkippedNeverFatal) {
  LoadedObjects loaded = parseManifests(R"(
kind: 5
metadata: {name: odd}
---
apiVersion: v1
kind: Pod
metadata: {name: 12345, namespace: shop}
status: {phase: Running, podIP: 10.244.1.77}
---
apiVersion: v1
kind: Service
metadata: {name: proto-number, namespace: shop}
spec:
  clusterIP: 10.96.0.77
  ports: [{port: 80, protocol: 6}]
---
apiVersion: v1
kind: Pod
metadata: {name: port-types, namespace: shop, labels: {app: x}}
spec:
  containers: [{name: c, ports: [{containerPort: 80, protocol: 6, name: 7}]}]
status: {phase: Running, podIP: 10.244.1.78, conditions: [{type: 5, status: []}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s1, namespace: shop, labels: {kubernetes.io/service-name: 9}}
addressType: 4
endpoints: [{addresses: [10.244.1.78], conditions: {ready: "yes"}}]
ports: [{name: 3, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: [np], namespace: shop}
spec: {podSelector: {}}
)",
                                        "types.yaml");
  ASSERT_TRUE(loaded.problems.empty());
  ClusterState state;
  state.replaceSource("test", loaded.objects);
  Translation t;
  EXPECT_NO_THROW(t = translate(state));
  EXPECT_TRUE(mentions(t.problems, "service shop/proto-number: field 'spec.ports[0].protocol'"))
      << ::testing::PrintToString(t.problems);
  EXPECT_TRUE(t.args["services"].empty());
  EXPECT_TRUE(mentions(t.problems, "pod shop/port-types")) << ::testing::PrintToString(t.problems);
}

TEST(ClusterState, WatchEventsAndSourceReplacement) {
  ClusterState s;
  Json svc = {{"kind", "Service"}, {"metadata", {{"namespace", "a"}, {"name", "x"}}}};
  EXPECT_TRUE(s.apply({WatchEvent::Type::kAdded, svc}));
  EXPECT_FALSE(s.apply({WatchEvent::Type::kModified, svc})) << "no change";
  EXPECT_FALSE(s.apply({WatchEvent::Type::kBookmark, svc}));
  EXPECT_TRUE(s.apply({WatchEvent::Type::kDeleted, svc}));
  EXPECT_EQ(s.size(), 0u);
  Json other = {{"kind", "ConfigMap"}, {"metadata", {{"name", "c"}}}};
  EXPECT_FALSE(s.apply({WatchEvent::Type::kAdded, other})) << "kinds nodeplane does not read";
  EXPECT_TRUE(s.replaceSource("files", {svc}));
  EXPECT_TRUE(s.replaceSource("files", {}));
  EXPECT_EQ(s.size(), 0u) << "what a source no longer defines is gone";
  EXPECT_TRUE(s.replaceKind("Service", {svc}));
  EXPECT_FALSE(s.replaceKind("Service", {svc}));
}

class ClusterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    state = load("cluster.yaml", &problems);
    ASSERT_TRUE(problems.empty());
    t = translate(state);
  }
  std::vector<std::string> problems;
  ClusterState state;
  Translation t;
};

TEST_F(ClusterFixture, Nodes) {
  const Json& nodes = t.args["nodes"];
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(byName(nodes, "node-gpu")["ip"], "192.168.50.11");
  EXPECT_EQ(byName(nodes, "node-gpu")["podCidrs"], Json::array({"10.244.2.0/24"}));
  EXPECT_EQ(byName(nodes, "node-gpu")["vtepMac"], "0e:4e:c0:a8:32:0b");
  EXPECT_EQ(byName(nodes, "node-cpu")["ip"], "192.168.50.10") << "the IPv4 InternalIP";
  EXPECT_EQ(byName(nodes, "node-cpu")["podCidrs"], Json::array({"10.244.1.0/24"})) << "podCIDR";
}

TEST_F(ClusterFixture, ServicesWithEndpointsFromSlicesAndEndpoints) {
  const Json& services = t.args["services"];
  ASSERT_EQ(services.size(), 5u) << "headless and ExternalName too: cluster DNS answers them";
  const Json& web = byName(services, "web");
  EXPECT_EQ(web["clusterIPs"], Json::array({"10.96.0.50"}));
  EXPECT_EQ(web["sessionAffinity"], "ClientIP");
  EXPECT_EQ(web["sessionAffinityTimeoutSeconds"], 600);
  EXPECT_EQ(web["ports"][0]["targetPort"], "http");
  ASSERT_EQ(web["endpoints"].size(), 2u) << "the IPv6 slice is not read";
  EXPECT_EQ(web["endpoints"][0]["ip"], "10.244.2.7");
  EXPECT_EQ(web["endpoints"][0]["ports"]["http"], 8080);
  EXPECT_EQ(web["endpoints"][0]["nodeName"], "node-gpu");
  EXPECT_EQ(web["endpoints"][1]["ready"], false);
  EXPECT_EQ(web["endpoints"][1]["serving"], true);
  EXPECT_EQ(web["endpoints"][1]["terminating"], true);

  const Json& lb = byName(services, "shop-lb");
  EXPECT_EQ(lb["type"], "LoadBalancer");
  EXPECT_EQ(lb["loadBalancerIPs"], Json::array({"203.0.113.10"}));
  EXPECT_EQ(lb["externalTrafficPolicy"], "Local");
  EXPECT_EQ(lb["ports"][0]["nodePort"], 30443);
  // No slice for shop-lb: its selector's pods, as the EndpointSlice controller would list them.
  EXPECT_EQ(lb["endpoints"].size(), 2u);

  const Json& legacy = byName(services, "legacy");
  ASSERT_EQ(legacy["endpoints"].size(), 2u) << "from v1 Endpoints";
  EXPECT_EQ(legacy["endpoints"][0]["ready"], true);
  EXPECT_EQ(legacy["endpoints"][1]["ready"], false);

  const Json& headless = byName(services, "headless");
  EXPECT_EQ(headless["clusterIPs"], Json::array()) << "clusterIP None";
  ASSERT_EQ(headless["endpoints"].size(), 2u) << "its selector's pods";
  EXPECT_EQ(headless["endpoints"][0]["ip"], "10.244.2.7");
  const Json& external = byName(services, "external");
  EXPECT_EQ(external, (Json{{"namespace", "shop"},
                            {"name", "external"},
                            {"type", "ExternalName"},
                            {"externalName", "example.com"}}));
  EXPECT_EQ(t.endpoints, 8u);
}

TEST_F(ClusterFixture, PolicyIdentitiesAndObjects) {
  const Json& policy = t.args["policy"];
  ASSERT_EQ(policy["namespaces"].size(), 1u);
  EXPECT_EQ(policy["namespaces"][0]["labels"]["team"], "retail");
  const Json& pods = policy["pods"];
  ASSERT_EQ(pods.size(), 2u) << "not the pending pod, not the host-network pod";
  EXPECT_EQ(t.podsWithoutAddress, (std::set<std::string>{"shop/pending"}))
      << "the pending pod is named as left out for want of an address, the host-network one not";
  EXPECT_EQ(pods[0]["ip"], "10.244.2.7");
  EXPECT_EQ(pods[0]["labels"]["app"], "web");
  EXPECT_EQ(pods[0]["ports"][0]["name"], "http");
  EXPECT_EQ(pods[0]["ports"][0]["containerPort"], 8080);
  ASSERT_EQ(policy["networkPolicies"].size(), 1u);
  const Json& np = policy["networkPolicies"][0];
  EXPECT_EQ(np["metadata"], (Json{{"namespace", "shop"},
                                  {"name", "web-from-shop"},
                                  {"annotations", {{"nodeplane.io/audit", "true"}}}}))
      << "only what the daemon reads of the metadata";
  EXPECT_EQ(np["spec"]["ingress"][0]["ports"][0]["port"], "http");
  ASSERT_EQ(policy["l7Rules"].size(), 1u);
  EXPECT_EQ(policy["l7Rules"][0]["spec"]["rules"][0]["http"]["path"], "/api/.*");
}

TEST_F(ClusterFixture, LeavingOutRefusedObjects) {
  Translation less = translate(state, {"service shop/web", "networkpolicy shop/web-from-shop"});
  EXPECT_EQ(less.args["services"].size(), 4u);
  EXPECT_TRUE(less.args["policy"]["networkPolicies"].empty());
}

TEST(Translate, EveryBadObjectIsNamedAndSkipped) {
  ClusterState state = load("bad-objects.yaml");
  Translation t = translate(state);
  for (const char* expected : {
           "node no-address: field 'status.addresses': no IPv4 InternalIP",
           "service shop/bad-port: field 'spec.ports[0].port': must be a number, not string",
           "service shop/bad-ports-type: field 'spec.ports': must be a list, not string",
           "pod shop/bad-labels: field 'metadata.labels.app': label values are strings, not number",
           "networkpolicy shop/bad-cidr: field 'spec.ingress[0].from[0].ipBlock.cidr': "
           "'10.0.0.0/40'",
           "l7rule shop/bad-action: field 'spec.rules[0].action': 'block'",
       })
    EXPECT_TRUE(mentions(t.problems, expected)) << expected;
  EXPECT_TRUE(t.args["nodes"].empty());
  ASSERT_EQ(t.args["services"].size(), 1u);
  EXPECT_EQ(t.args["services"][0]["name"], "good");
  EXPECT_TRUE(t.args["policy"]["networkPolicies"].empty());
  EXPECT_TRUE(t.args["policy"]["l7Rules"].empty());
  EXPECT_TRUE(t.args["policy"]["pods"].empty());
}

TEST(Translate, ObjectsNamedInADaemonError) {
  const auto named = objectsNamedIn(
      "apply: service shop/a: field 'clusterIPs': 192.0.2.1 is outside the service CIDR; "
      "node node-x: field 'podCidrs': 10.244.1.0/24 overlaps 10.244.1.0/24 of node node-cpu; "
      "networkpolicy shop/p: field 'spec': bad; l7rule shop/r: field 'spec.rules[0].pattern': x");
  EXPECT_EQ(named, (std::set<std::string>{"service shop/a", "node node-x", "networkpolicy shop/p",
                                          "l7rule shop/r"}))
      << "only the object each problem is about, not the ones it mentions";
  EXPECT_TRUE(objectsNamedIn("L7 rules: Hyperscan cannot compile them together").empty());
  EXPECT_EQ(objectsNamedIn("apply: serviceexport shop/web: every address of the global CIDR "
                           "242.0.0.0/30 is taken"),
            (std::set<std::string>{"serviceexport shop/web"}));
}

TEST(Translate, ServiceExportsBecomeTheExportsSection) {
  LoadedObjects loaded = parseManifests(R"(
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: web, namespace: shop}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: 7, namespace: shop}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: db, namespace: shop}
)",
                                        "inline");
  ClusterState state;
  state.replaceSource("test", loaded.objects);
  Translation t = translate(state);
  EXPECT_EQ(t.args["exports"], Json::parse(R"([{"namespace": "shop", "name": "db"},
                                               {"namespace": "shop", "name": "web"}])"));
  EXPECT_EQ(t.exports, 2u);
  EXPECT_TRUE(mentions(t.problems, "serviceexport shop/") &&
              mentions(t.problems, "'metadata.name'"))
      << "a name that is not a string";
  // Left out when the daemon refused it.
  t = translate(state, {"serviceexport shop/web"});
  EXPECT_EQ(t.args["exports"].size(), 1u);
}

}  // namespace
}  // namespace nodeplane::agent
