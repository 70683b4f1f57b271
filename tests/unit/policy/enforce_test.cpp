// Policy in the data plane's connection-tracking stage, on synthetic bursts through the real
// stages, with the real NodeController compiling what policy.apply would send.
#include "policy/enforce.h"

#include <gtest/gtest.h>

#include "policy/model_json.h"
#include "tests/unit/support/pod_pair_fixture.h"

namespace nodeplane::testing {
namespace {

using nodeplane::Action;
using nodeplane::DropReason;
using policy::Json;

class EnforceTest : public PodPairFixture {
 protected:
  void SetUp() override {
    control::NodeSettings s = nodeSettings();
    s.l7FlowsPerWorker = 16;
    startNode(s);
    attachPair("y", "client", "x", "server");  // client 10.244.1.2, server 10.244.1.3
  }

  // The identities of the two pods, plus `policies` and `l7` (JSON arrays).
  void apply(const char* policies, const char* l7 = "[]", bool audit = false) {
    Json args = Json::parse(std::string(R"({
      "namespaces": [{"name": "x"}, {"name": "y", "labels": {"team": "clients"}}],
      "pods": [{"namespace": "y", "name": "client", "ip": "10.244.1.2", "labels": {"app": "client"}},
               {"namespace": "x", "name": "server", "ip": "10.244.1.3", "labels": {"app": "web"},
                "ports": [{"name": "http", "containerPort": 80}]},
               {"namespace": "x", "name": "remote", "ip": "10.244.2.9", "labels": {"app": "web"}}],
      "networkPolicies": )") +
                            policies + R"(, "l7Rules": )" + l7 + "}");
    args["audit"] = audit;
    auto state = policy::policyStateFromJson(args);
    ASSERT_TRUE(state.ok()) << state.error().message;
    auto st = node->applyPolicy(std::move(*state));
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  PacketMeta run(const Bytes& frame, uint16_t port) {
    auto out = runAll(frame, port);
    for (auto& [meta, m] : out) rte_pktmbuf_free(m);
    return out.front().first;
  }

  static PacketBuilder fromClient() { return fromFirstPod(); }
  static PacketBuilder fromServer() { return fromSecondPod(); }
};

constexpr const char* kAllowClientsOn80 = R"([{"metadata": {"namespace": "x", "name": "web"},
  "spec": {"podSelector": {"matchLabels": {"app": "web"}},
           "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "clients"}}}],
                        "ports": [{"port": "http"}]}]}}])";

TEST_F(EnforceTest, WithoutPolicyPodFlowsAreNotTracked) {
  EXPECT_EQ(run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 81).build(), 0).action,
            Action::kTransmit);
  EXPECT_EQ(tracker->live(), 0u);
}

TEST_F(EnforceTest, AllowedFlowIsTrackedAndItsRepliesPass) {
  apply(kAllowClientsOn80);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).build(), 0).action,
      Action::kTransmit);
  EXPECT_EQ(tracker->live(), 1u);
  EXPECT_EQ(counters.podFlows.read(), 1u);
  // The server is isolated for ingress, not egress; the client for neither. The reply passes
  // because the flow is tracked (it would pass anyway); what isolation blocks is new flows:
  EXPECT_EQ(
      run(fromServer().ipv4("10.244.1.3", "10.244.1.2").tcp(80, 40000, 0x12).build(), 1).action,
      Action::kTransmit);
  const auto denied =
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40001, 81, 0x02).build(), 0);
  EXPECT_EQ(denied.action, Action::kDrop);
  EXPECT_EQ(denied.drop, DropReason::kPolicyDeniedIngress);
  EXPECT_EQ(tracker->live(), 1u) << "denied flows take no entry";
  EXPECT_EQ(counters.policyDenied.read(), 1u);
  EXPECT_EQ(counters.policyAllowed.read(), 1u);
  const auto totals = node->policyRuntime()->totals(node->policyTable()->counterSlot(0));
  EXPECT_EQ(totals.allowed, 1u);
  EXPECT_EQ(totals.denied, 1u);
}

TEST_F(EnforceTest, RepliesOfAnAllowedFlowPassTheOtherSidesIsolation) {
  // The client is isolated for ingress (nothing may connect to it); its own flows' replies pass.
  apply(R"([{"metadata": {"namespace": "y", "name": "deny-in"}, "spec": {"podSelector": {}}}])");
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).build(), 0).action,
      Action::kTransmit);
  EXPECT_EQ(
      run(fromServer().ipv4("10.244.1.3", "10.244.1.2").tcp(80, 40000, 0x12).build(), 1).action,
      Action::kTransmit);
  const auto opened =
      run(fromServer().ipv4("10.244.1.3", "10.244.1.2").tcp(5555, 22, 0x02).build(), 1);
  EXPECT_EQ(opened.action, Action::kDrop);
  EXPECT_EQ(opened.drop, DropReason::kPolicyDeniedIngress);
  // A stray RST is judged on its own and dropped: it could open nothing.
  EXPECT_EQ(run(fromServer().ipv4("10.244.1.3", "10.244.1.2").tcp(5556, 22, 0x04).build(), 1).drop,
            DropReason::kPolicyDeniedIngress);
}

TEST_F(EnforceTest, EgressDenialAndUdpAndIcmp) {
  apply(R"([{"metadata": {"namespace": "y", "name": "dns-only"},
    "spec": {"podSelector": {}, "policyTypes": ["Egress"],
             "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}}])");
  EXPECT_EQ(run(fromClient().ipv4("10.244.1.2", "10.244.1.3").udp(5000, 53).build(), 0).action,
            Action::kTransmit);
  EXPECT_EQ(run(fromClient().ipv4("10.244.1.2", "10.244.1.3").udp(5000, 54).build(), 0).drop,
            DropReason::kPolicyDeniedEgress);
  EXPECT_EQ(run(fromClient().ipv4("10.244.1.2", "10.244.1.3").icmpEcho(7, 1).build(), 0).drop,
            DropReason::kPolicyDeniedEgress)
      << "a rule with ports allows no ICMP";
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").ipProto(47).payload(20).build(), 0).drop,
      DropReason::kPolicyDeniedEgress)
      << "untracked protocols are judged too";
}

TEST_F(EnforceTest, APolicyChangeReachesEstablishedFlowsOnTheirNextPacket) {
  apply("[]");
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).build(), 0).action,
      Action::kTransmit);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 81, 0x02).build(), 0).action,
      Action::kTransmit);
  apply(kAllowClientsOn80);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x10).build(), 0).action,
      Action::kTransmit);
  const auto revoked =
      run(fromServer().ipv4("10.244.1.3", "10.244.1.2").tcp(81, 40000, 0x10).build(), 1);
  EXPECT_EQ(revoked.action, Action::kDrop) << "either direction of a revoked flow";
  EXPECT_EQ(revoked.drop, DropReason::kPolicyDeniedIngress);
  EXPECT_EQ(counters.policyReevaluated.read(), 2u);
  apply("[]");
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 81, 0x10).build(), 0).action,
      Action::kTransmit)
      << "and allowed again when the policy goes";
}

TEST_F(EnforceTest, ServiceTrafficIsJudgedAgainstTheBackend) {
  control::ServiceSpec svc;
  svc.namespaceName = "x";
  svc.name = "web";
  svc.clusterIps = {ip("10.96.0.30")};
  svc.ports = {control::ServicePortSpec{"p", 6, 8080, 80, "", 0},
               control::ServicePortSpec{"q", 6, 8081, 81, "", 0}};
  control::EndpointSpec e;
  e.ip = ip("10.244.1.3");
  svc.endpoints = {e};
  ASSERT_TRUE(node->setService(svc).ok());
  apply(kAllowClientsOn80);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40000, 8080, 0x02).build(), 0).action,
      Action::kTransmit)
      << "VIP:8080 -> backend port 80 (named port http)";
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.96.0.30").tcp(40001, 8081, 0x02).build(), 0).drop,
      DropReason::kPolicyDeniedIngress);
}

TEST_F(EnforceTest, AuditModeCountsAndPasses) {
  apply(R"([{"metadata": {"namespace": "x", "name": "deny"}, "spec": {"podSelector": {}}}])", "[]",
        /*audit=*/true);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).build(), 0).action,
      Action::kTransmit);
  EXPECT_EQ(counters.policyAuditDenied.read(), 1u);
  node->drainPolicyLog();
  ASSERT_EQ(node->policyRuntime()->recent().size(), 1u);
  EXPECT_EQ(node->policyRuntime()->recent()[0].record.event,
            policy::PolicyEvent::kAuditDenyIngress);
  EXPECT_EQ(node->policyRuntime()->recent()[0].policy, "x/deny");
}

TEST_F(EnforceTest, DeniedFlowsAreLoggedWithThePolicy) {
  apply(kAllowClientsOn80);
  run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40001, 81, 0x02).build(), 0);
  EXPECT_EQ(node->drainPolicyLog(), 1u);
  const auto& r = node->policyRuntime()->recent().back();
  EXPECT_EQ(r.record.event, policy::PolicyEvent::kDenyIngress);
  EXPECT_EQ(r.policy, "x/web");
  EXPECT_EQ(rte_be_to_cpu_16(r.record.dport), 81);
}

constexpr const char* kL7 = R"([{"metadata": {"namespace": "x", "name": "web-l7"},
  "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ports": [{"port": 80}],
           "rules": [{"action": "allow", "http": {"method": "GET", "path": "/public/.*"}}]}}])";

TEST_F(EnforceTest, AnL7DenialResetsTheFlowBothWays) {
  apply("[]", kL7);
  EXPECT_EQ(
      run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).tcpSeq(7000).build(),
          0)
          .action,
      Action::kTransmit);
  EXPECT_EQ(run(fromServer()
                    .ipv4("10.244.1.3", "10.244.1.2")
                    .tcp(80, 40000, 0x12)
                    .tcpSeq(9000, 7001)
                    .build(),
                1)
                .action,
            Action::kTransmit);
  const std::string ok = "GET /public/a HTTP/1.1\r\nHost: s\r\n\r\n";
  EXPECT_EQ(run(fromClient()
                    .ipv4("10.244.1.2", "10.244.1.3")
                    .tcp(40000, 80, 0x18)
                    .tcpSeq(7001, 9001)
                    .payloadBytes(Bytes(ok.begin(), ok.end()))
                    .build(),
                0)
                .action,
            Action::kTransmit);
  const std::string bad = "GET /admin HTTP/1.1\r\nHost: s\r\n\r\n";
  const uint32_t badSeq = 7001 + static_cast<uint32_t>(ok.size());
  auto out = runAll(fromClient()
                        .ipv4("10.244.1.2", "10.244.1.3")
                        .tcp(40000, 80, 0x18)
                        .tcpSeq(badSeq, 9001)
                        .payloadBytes(Bytes(bad.begin(), bad.end()))
                        .build(),
                    0);
  ASSERT_EQ(out.size(), 2u) << "the segment, turned into a RST, and a RST made for the client";
  // To the server: its own addresses, the segment's sequence number, no payload.
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  EXPECT_EQ(out[0].first.outPort, 1);
  Bytes toServer = mbufBytes(out[0].second);
  EXPECT_EQ(toServer.size(), 54u);
  EXPECT_EQ(get32(toServer, 30), ip("10.244.1.3").value);
  EXPECT_EQ(get32(toServer, 38), badSeq);
  EXPECT_EQ(toServer[47], 0x04) << "RST";
  EXPECT_EQ(internetChecksum(&toServer[14], 20), 0);
  // To the client: from the server, with the sequence number the client expects.
  ASSERT_EQ(out[1].first.action, Action::kTransmit);
  EXPECT_EQ(out[1].first.outPort, 0);
  Bytes toClient = mbufBytes(out[1].second);
  EXPECT_EQ(get32(toClient, 26), ip("10.244.1.3").value);
  EXPECT_EQ(get32(toClient, 30), ip("10.244.1.2").value);
  EXPECT_EQ(get32(toClient, 38), 9001u);
  EXPECT_EQ(toClient[47] & 0x04, 0x04);
  for (auto& [meta, m] : out) rte_pktmbuf_free(m);
  EXPECT_EQ(counters.l7Resets.read(), 1u);
  // The flow stays refused: the client's retransmission is answered with another RST.
  auto again = runAll(fromClient()
                          .ipv4("10.244.1.2", "10.244.1.3")
                          .tcp(40000, 80, 0x18)
                          .tcpSeq(badSeq, 9001)
                          .payloadBytes(Bytes(bad.begin(), bad.end()))
                          .build(),
                      0);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].first.outPort, 0);
  EXPECT_EQ(mbufBytes(again[0].second)[47] & 0x04, 0x04);
  rte_pktmbuf_free(again[0].second);
  EXPECT_EQ(run(fromServer()
                    .ipv4("10.244.1.3", "10.244.1.2")
                    .tcp(80, 40000, 0x10)
                    .tcpSeq(9001, badSeq)
                    .build(),
                1)
                .drop,
            DropReason::kL7Denied);
}

TEST_F(EnforceTest, L7OutOfOrderSegmentsAreDroppedForResending) {
  apply("[]", kL7);
  run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40000, 80, 0x02).tcpSeq(7000).build(), 0);
  const std::string part = "HTTP/1.1\r\n\r\n";
  EXPECT_EQ(run(fromClient()
                    .ipv4("10.244.1.2", "10.244.1.3")
                    .tcp(40000, 80, 0x18)
                    .tcpSeq(7100, 1)
                    .payloadBytes(Bytes(part.begin(), part.end()))
                    .build(),
                0)
                .drop,
            DropReason::kL7OutOfOrder);
}

TEST_F(EnforceTest, BadPolicyChangesNothing) {
  apply(kAllowClientsOn80);
  const uint32_t generation = node->policyTable()->generation();
  auto state = policy::policyStateFromJson(Json::parse(R"({"l7Rules": [
      {"metadata": {"namespace": "x", "name": "bad"},
       "spec": {"podSelector": {}, "rules": [{"action": "deny", "pattern": "(open"}]}}]})"));
  ASSERT_TRUE(state.ok());
  auto st = node->applyPolicy(std::move(*state));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("l7rule x/bad: field 'spec.rules[0].pattern'"),
            std::string::npos)
      << st.error().message;
  EXPECT_EQ(node->policyTable()->generation(), generation);
  EXPECT_EQ(run(fromClient().ipv4("10.244.1.2", "10.244.1.3").tcp(40001, 81, 0x02).build(), 0).drop,
            DropReason::kPolicyDeniedIngress)
      << "the last good policy is still in force";
}

}  // namespace
}  // namespace nodeplane::testing
