// NodeController against a fake backend: validation, idempotence, conflicts, rollback, and the
// order of publish / synchronize / close that keeps workers safe.
#include "control/node_controller.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "control/model_json.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::control {
namespace {

NodeSettings settings() {
  NodeSettings s;
  s.nodeName = "node-cpu";
  s.nodeIp = testing::ip("192.168.50.10");
  s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
  return s;
}

PodAttachment pod(const char* name, const char* ipText, const char* macText = "0a:00:00:00:00:01") {
  PodAttachment a;
  a.namespaceName = "ns-dev";
  a.name = name;
  a.containerId = std::string("ctr-") + name;
  a.hostInterface = std::string("veth-") + name;
  a.ip = testing::ip(ipText);
  a.mac = testing::mac(macText);
  return a;
}

class NodeControllerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(node.start().ok()); }
  testing::FakeBackend backend;
  NodeController node{settings(), backend};
};

TEST_F(NodeControllerTest, AttachOpensAnAfPacketPortAndPublishes) {
  backend.workers = 1;
  auto r = node.attachPod(pod("c1", "10.244.1.2"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(backend.opened.size(), 1u);
  EXPECT_EQ(backend.opened[0], "pod:veth-c1") << "a pod port of our own on the veth's host end";
  const dataplane::Snapshot* s = backend.current();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->generation, node.generation());
  EXPECT_EQ(s->ports[r->port.id].role, dataplane::PortRole::kPod);
  EXPECT_EQ(s->ports[r->port.id].podIp, rte_cpu_to_be_32(testing::ip("10.244.1.2").value));
  ASSERT_EQ(s->workers.size(), 1u);
  ASSERT_EQ(s->workers[0].rxQueues.size(), 1u);
  uint32_t dst = testing::ip("10.244.1.2").value;
  uint64_t nh;
  s->routes->lookup(&dst, &nh, 1);
  EXPECT_EQ(s->routes->nextHop(nh).kind, dataplane::NextHopKind::kLocalPod);
  EXPECT_EQ(s->routes->nextHop(nh).port, r->port.id);
}

TEST_F(NodeControllerTest, RetriedAttachIsIdempotentConflictingOneIsRefused) {
  ASSERT_TRUE(node.attachPod(pod("c1", "10.244.1.2")).ok());
  const auto gen = node.generation();
  ASSERT_TRUE(node.attachPod(pod("c1", "10.244.1.2")).ok());
  EXPECT_EQ(node.generation(), gen);
  EXPECT_EQ(backend.opened.size(), 1u);

  auto changed = pod("c1", "10.244.1.9");
  auto r = node.attachPod(changed);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);

  auto sameIp = pod("c2", "10.244.1.2");
  r = node.attachPod(sameIp);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("field 'ip'"), std::string::npos);

  auto sameIf = pod("c3", "10.244.1.3");
  sameIf.hostInterface = "veth-c1";
  r = node.attachPod(sameIf);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("hostInterface"), std::string::npos);
}

TEST_F(NodeControllerTest, InvalidAttachmentsNameTheField) {
  struct Case {
    std::function<void(PodAttachment&)> mutate;
    const char* field;
  } cases[] = {
      {[](auto& a) { a.ip = testing::ip("10.244.2.5"); }, "'ip'"},
      {[](auto& a) { a.ip = testing::ip("10.244.1.0"); }, "'ip'"},
      {[](auto& a) { a.ip = testing::ip("10.244.1.255"); }, "'ip'"},
      {[](auto& a) { a.mac = testing::mac("01:00:5e:00:00:01"); }, "'mac'"},
      {[](auto& a) { a.mac = testing::mac("00:00:00:00:00:00"); }, "'mac'"},
      {[](auto& a) { a.namespaceName = "NS_Dev"; }, "'namespace'"},
      {[](auto& a) { a.name = ""; }, "'name'"},
      {[](auto& a) { a.containerId = ""; }, "'containerId'"},
      {[](auto& a) { a.hostInterface = "bad,iface=x"; }, "'hostInterface'"},
      {[](auto& a) { a.hostInterface = "this-name-is-too-long"; }, "'hostInterface'"},
      {[](auto& a) { a.devargs = "net_tap0"; }, "exactly one"},
      {[](auto& a) { a.interface = "a/b"; }, "'interface'"},
  };
  for (auto& c : cases) {
    auto a = pod("c1", "10.244.1.2");
    c.mutate(a);
    auto r = node.attachPod(a);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.field), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(backend.opened.empty()) << "nothing opened for an invalid request";
  EXPECT_TRUE(node.pods().empty());
}

TEST_F(NodeControllerTest, APortThatFailsToOpenChangesNothing) {
  const auto gen = node.generation();
  backend.failNextOpen = true;
  auto r = node.attachPod(pod("c1", "10.244.1.2"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ns-dev/c1"), std::string::npos);
  EXPECT_EQ(node.generation(), gen);
  EXPECT_TRUE(node.pods().empty());
}

TEST_F(NodeControllerTest, DetachPublishesThenWaitsThenCloses) {
  auto r = node.attachPod(pod("c1", "10.244.1.2"));
  ASSERT_TRUE(r.ok());
  const int syncs = backend.synchronizations;
  ASSERT_TRUE(node.detachPod(PodKey{"ctr-c1", "eth0"}).ok());
  EXPECT_EQ(backend.synchronizations, syncs + 1);
  ASSERT_EQ(backend.closed.size(), 1u);
  EXPECT_EQ(backend.closed[0], r->port.id);
  EXPECT_EQ(backend.current()->ports[r->port.id].role, dataplane::PortRole::kUnused);
  auto again = node.detachPod(PodKey{"ctr-c1", "eth0"});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(NodeControllerTest, FindsPodsByNamespaceAndName) {
  ASSERT_TRUE(node.attachPod(pod("c1", "10.244.1.2")).ok());
  auto key = node.findPod("ns-dev", "c1");
  ASSERT_TRUE(key);
  EXPECT_EQ(key->containerId, "ctr-c1");
  EXPECT_FALSE(node.findPod("ns-stg", "c1"));
}

TEST_F(NodeControllerTest, PodPortsAreSpreadOverTheWorkersEachPolledByOne) {
  testing::FakeBackend multi;
  multi.workers = 3;
  NodeController n(settings(), multi);
  ASSERT_TRUE(n.start().ok());
  for (int i = 0; i < 6; ++i) {
    const std::string name = "c" + std::to_string(i);
    PodAttachment p = pod(name.c_str(), ("10.244.1." + std::to_string(2 + i)).c_str());
    ASSERT_TRUE(n.attachPod(p).ok());
  }
  const auto* s = multi.current();
  ASSERT_EQ(s->workers.size(), 3u);
  std::set<uint16_t> polled;
  for (uint16_t w = 0; w < 3; ++w) {
    EXPECT_EQ(s->workers[w].rxQueues.size(), 2u) << "worker " << w;
    for (const auto& q : s->workers[w].rxQueues) {
      EXPECT_EQ(q.queue, 0);
      EXPECT_TRUE(polled.insert(q.port).second) << "port " << q.port << " polled twice";
    }
  }
  EXPECT_EQ(polled.size(), 6u);
}

TEST_F(NodeControllerTest, ShutdownClosesEveryPortAfterAGracePeriod) {
  ASSERT_TRUE(node.attachPod(pod("c1", "10.244.1.2")).ok());
  ASSERT_TRUE(node.attachPod(pod("c2", "10.244.1.3", "0a:00:00:00:00:02")).ok());
  node.shutdown();
  EXPECT_TRUE(backend.live.empty());
  EXPECT_TRUE(node.pods().empty());
}

}  // namespace
}  // namespace nodeplane::control

namespace nodeplane::control {
namespace {

TEST_F(NodeControllerTest, PodsWhoseInterfaceVanishedAreDetached) {
  std::set<std::string> present = {"veth-c1", "veth-c2"};
  node.setInterfaceProbe([&](const std::string& n) { return present.count(n) > 0; });
  ASSERT_TRUE(node.attachPod(pod("c1", "10.244.1.2")).ok());
  ASSERT_TRUE(node.attachPod(pod("c2", "10.244.1.3", "0a:00:00:00:00:02")).ok());
  EXPECT_EQ(node.detachVanishedPods(), 0u);
  present.erase("veth-c2");
  EXPECT_EQ(node.detachVanishedPods(), 1u);
  ASSERT_EQ(node.pods().size(), 1u);
  EXPECT_EQ(node.pods()[0].spec.name, "c1");
}

TEST(NodeControllerState, AttachmentsSurviveARestart) {
  char dir[] = "/tmp/np-state-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  NodeSettings s = settings();
  s.stateFile = std::string(dir) + "/pods.json";
  {
    testing::FakeBackend backend;
    NodeController first(s, backend);
    first.setInterfaceProbe([](const std::string&) { return true; });
    ASSERT_TRUE(first.start().ok());
    ASSERT_TRUE(first.attachPod(pod("c1", "10.244.1.2")).ok());
    ASSERT_TRUE(first.attachPod(pod("c2", "10.244.1.3", "0a:00:00:00:00:02")).ok());
    ASSERT_TRUE(first.attachPod(pod("c3", "10.244.1.4", "0a:00:00:00:00:03")).ok());
    ASSERT_TRUE(first.detachPod(PodKey{"ctr-c3", "eth0"}).ok());
    first.shutdown();  // a clean stop keeps the record
  }
  testing::FakeBackend backend;
  NodeController second(s, backend);
  // c2's namespace was deleted while the daemon was down.
  second.setInterfaceProbe([](const std::string& n) { return n != "veth-c2"; });
  ASSERT_TRUE(second.start().ok());
  auto pods = second.pods();
  ASSERT_EQ(pods.size(), 1u);
  EXPECT_EQ(pods[0].spec.name, "c1");
  EXPECT_EQ(pods[0].spec.ip.toString(), "10.244.1.2");

  // Another node's state file is not taken over.
  NodeSettings other = s;
  other.nodeName = "node-gpu";
  testing::FakeBackend otherBackend;
  NodeController third(other, otherBackend);
  third.setInterfaceProbe([](const std::string&) { return true; });
  ASSERT_TRUE(third.start().ok());
  EXPECT_TRUE(third.pods().empty());
  std::filesystem::remove_all(dir);
}

TEST(NodeControllerState, ACorruptStateFileIsIgnored) {
  char dir[] = "/tmp/np-state-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  NodeSettings s = settings();
  s.stateFile = std::string(dir) + "/pods.json";
  std::ofstream(s.stateFile) << "{ not json";
  testing::FakeBackend backend;
  NodeController node(s, backend);
  EXPECT_TRUE(node.start().ok());
  EXPECT_TRUE(node.pods().empty());
  std::filesystem::remove_all(dir);
}

// --- desired state (apply) -------------------------------------------------------------------

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NodeSettings s = settings();
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    node = std::make_unique<NodeController>(s, backend);
    ASSERT_TRUE(node->start().ok());
  }
  Result<ApplyResult> apply(const std::string& json) {
    auto state = desiredStateFromJson(Json::parse(json));
    if (!state) return state.error();
    return node->applyDesired(std::move(*state));
  }
  static std::string svc(const char* name, const char* ip) {
    return std::string(R"({"namespace": "shop", "name": ")") + name + R"(", "clusterIPs": [")" +
           ip +
           R"("], "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
              "endpoints": [{"ip": "10.244.1.5"}]})";
  }
  testing::FakeBackend backend;
  std::unique_ptr<NodeController> node;
};

TEST_F(ApplyTest, SectionsGivenReplaceSectionsLeftOutStay) {
  auto r = apply(R"({"generation": 1, "services": [)" + svc("a", "10.96.0.1") + "," +
                 svc("b", "10.96.0.2") + "]}");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->servicesChanged);
  EXPECT_EQ(node->serviceRegistry().services().size(), 2u);
  r = apply(R"({"generation": 2, "services": [)" + svc("a", "10.96.0.1") + "]}");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(node->serviceRegistry().services().size(), 1u) << "b is swept";
  r = apply(R"({"generation": 3, "policy": {"namespaces": [{"name": "shop"}]}})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->servicesChanged);
  EXPECT_TRUE(r->policyChanged);
  EXPECT_EQ(node->serviceRegistry().services().size(), 1u) << "no services section: kept";
  EXPECT_EQ(node->appliedGeneration(), 3u);
}

TEST_F(ApplyTest, ReapplyingTheSameStateChangesNothing) {
  const std::string state = R"({"nodes": [{"name": "node-cpu", "ip": "192.168.50.10",
      "podCidrs": ["10.244.1.0/24"]}], "services": [)" +
                            svc("a", "10.96.0.1") +
                            R"(], "policy": {"pods": [{"namespace": "shop", "name": "p",
      "ip": "10.244.1.5"}], "networkPolicies": [{"metadata": {"namespace": "shop", "name": "d"},
      "spec": {"podSelector": {}}}]}})";
  ASSERT_TRUE(apply(state).ok());
  const uint64_t snapshot = node->generation();
  const uint32_t policyGeneration = node->policyTable()->generation();
  auto r = apply(state);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->nodesChanged || r->servicesChanged || r->policyChanged);
  EXPECT_EQ(node->generation(), snapshot) << "no snapshot published";
  EXPECT_EQ(node->policyTable()->generation(), policyGeneration) << "flows keep their verdicts";
}

TEST_F(ApplyTest, EveryProblemIsReportedAndNothingChanges) {
  ASSERT_TRUE(apply(R"({"services": [)" + svc("a", "10.96.0.1") + "]}").ok());
  const uint64_t snapshot = node->generation();
  auto r = apply(R"({"generation": 9,
      "nodes": [{"name": "node-cpu", "ip": "192.168.50.99", "podCidrs": ["10.244.1.0/24"]}],
      "services": [)" +
                 svc("inside", "10.96.0.3") + "," + svc("outside", "192.0.2.1") + R"(],
      "policy": {"l7Rules": [{"metadata": {"namespace": "shop", "name": "r"}, "spec": {
        "podSelector": {}, "rules": [{"action": "deny", "pattern": "(open"}]}}],
        "pods": [{"namespace": "shop", "name": "p", "ip": "10.244.1.5"}]}})");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("node node-cpu: field 'ip'"), std::string::npos) << m;
  EXPECT_NE(m.find("service shop/outside"), std::string::npos) << m;
  EXPECT_EQ(node->generation(), snapshot);
  EXPECT_EQ(node->serviceRegistry().services().size(), 1u);
  EXPECT_EQ(node->appliedGeneration(), 0u);
  // The policy problem alone is reported too (policy is compiled once the rest is valid).
  r = apply(R"({"policy": {"l7Rules": [{"metadata": {"namespace": "shop", "name": "r"}, "spec": {
        "podSelector": {}, "rules": [{"action": "deny", "pattern": "(open"}]}}],
        "pods": [{"namespace": "shop", "name": "p", "ip": "10.244.1.5"}]}})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("l7rule shop/r: field 'spec.rules[0].pattern'"),
            std::string::npos)
      << r.error().message;
  EXPECT_EQ(node->policyTable(), nullptr);
}

TEST_F(ApplyTest, MalformedArgumentsAreAllReported) {
  auto state = desiredStateFromJson(Json::parse(R"({"generation": -1, "nodez": [],
      "services": [{"namespace": "shop"}], "nodes": [{"name": "n", "ip": "x"}]})"));
  ASSERT_FALSE(state.ok());
  const std::string& m = state.error().message;
  for (const char* expected :
       {"field 'generation'", "field 'nodez': unknown field", "node n: field 'ip'", "field 'name'"})
    EXPECT_NE(m.find(expected), std::string::npos) << expected << " in: " << m;
}

}  // namespace
}  // namespace nodeplane::control
