// The CNI plugin's contract where no kernel work is involved: VERSION, and every malformed input
// answered with the spec's error code (the netns work is covered by the e2e tests).
#include "control/cni/cni_plugin.h"

#include <gtest/gtest.h>

#include "control/protocol.h"

namespace nodeplane::cni {
namespace {

using control::Json;

CniEnv env(const std::string& command) {
  return CniEnv{command, "ctr1", "/var/run/netns/none", "eth0", "", "/usr/lib/cni"};
}

const char* kConf =
    R"({"cniVersion":"1.0.0","name":"net","type":"nodeplane-cni","ipam":{"type":"host-local"}})";

int errorCode(const CniOutcome& o) {
  EXPECT_NE(o.exitCode, 0);
  Json j = Json::parse(o.stdoutText);
  EXPECT_TRUE(j.contains("msg"));
  return j.value("code", 0);
}

TEST(CniPlugin, VersionListsSupportedVersions) {
  auto o = runCni(env("VERSION"), "");
  EXPECT_EQ(o.exitCode, 0);
  Json j = Json::parse(o.stdoutText);
  EXPECT_EQ(j["cniVersion"], "1.0.0");
  EXPECT_NE(std::find(j["supportedVersions"].begin(), j["supportedVersions"].end(), "0.4.0"),
            j["supportedVersions"].end());
}

TEST(CniPlugin, MalformedInputGetsSpecErrorCodes) {
  EXPECT_EQ(errorCode(runCni(env("ADD"), "{not json")), 6);
  EXPECT_EQ(errorCode(runCni(env("ADD"), R"({"name":"x","ipam":{"type":"host-local"}})")), 7);
  EXPECT_EQ(
      errorCode(runCni(env("ADD"), R"({"cniVersion":"9.9.9","name":"x","ipam":{"type":"h"}})")), 1);
  EXPECT_EQ(errorCode(runCni(env("ADD"), R"({"cniVersion":"1.0.0","name":"x"})")), 7);
  EXPECT_EQ(errorCode(runCni(env("ADD"),
                             R"({"cniVersion":"1.0.0","name":"x","mtu":20,"ipam":{"type":"h"}})")),
            7);
  EXPECT_EQ(errorCode(runCni(env("FROB"), kConf)), 4);
  CniEnv noContainer = env("ADD");
  noContainer.containerId.clear();
  EXPECT_EQ(errorCode(runCni(noContainer, kConf)), 4);
  CniEnv badIf = env("ADD");
  badIf.ifname = "a/b";
  EXPECT_EQ(errorCode(runCni(badIf, kConf)), 4);
  CniEnv noNetns = env("ADD");
  noNetns.netns.clear();
  EXPECT_EQ(errorCode(runCni(noNetns, kConf)), 4);
  // A namespace that does not exist: "container unknown".
  EXPECT_EQ(errorCode(runCni(env("ADD"), kConf)), 3);
  // CHECK without prevResult is an invalid configuration.
  EXPECT_EQ(errorCode(runCni(env("CHECK"), kConf)), 7);
  // The error echoes the configuration's version.
  auto o = runCni(env("ADD"), R"({"cniVersion":"0.4.0","name":"x"})");
  EXPECT_EQ(Json::parse(o.stdoutText)["cniVersion"], "0.4.0");
}

// Input no runtime would send, but a careless operator or an attacker could: none of it crashes
// the plugin, each gets a spec error.
TEST(CniPlugin, HostileConfigsGetErrorsNotCrashes) {
  // Nested 200,000 deep (a copy of such a value once overflowed the stack).
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto o = runCni(env("ADD"),
                  R"({"cniVersion":"1.0.0","name":"x","ipam":{"type":"h"},"x":)" + deep + "}");
  EXPECT_EQ(errorCode(o), 6);
  EXPECT_NE(o.stdoutText.find("nested deeper"), std::string::npos) << o.stdoutText;
  // Wrong types where strings belong, in what the error echoes too.
  EXPECT_EQ(errorCode(runCni(env("ADD"), R"({"cniVersion":5,"name":"x","ipam":{"type":"h"}})")), 7);
  EXPECT_EQ(
      errorCode(runCni(env("ADD"), R"({"cniVersion":"1.0.0","name":[],"ipam":{"type":"h"}})")), 7);
  // Bytes that are not UTF-8 in the environment end up in the error text: replaced, not thrown.
  CniEnv badCommand = env("\xff\xfe");
  auto bad = runCni(badCommand, kConf);
  EXPECT_EQ(errorCode(bad), 4);
}

TEST(CniPlugin, HostInterfaceNamesAreStableAndFitIfnamsiz) {
  const std::string a = hostInterfaceName("0123456789abcdef", "eth0");
  EXPECT_EQ(a, hostInterfaceName("0123456789abcdef", "eth0"));
  EXPECT_NE(a, hostInterfaceName("0123456789abcdef", "eth1"));
  EXPECT_NE(a, hostInterfaceName("0123456789abcdee", "eth0"));
  EXPECT_EQ(a.size(), 15u);
  EXPECT_EQ(a.rfind("np", 0), 0u);
}

TEST(CniPlugin, ParsesCniArgs) {
  auto m = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns-dev;K8S_POD_NAME=c1;junk;=x");
  EXPECT_EQ(m["K8S_POD_NAMESPACE"], "ns-dev");
  EXPECT_EQ(m["K8S_POD_NAME"], "c1");
  EXPECT_EQ(m.count("junk"), 0u);
  EXPECT_EQ(m.size(), 3u);
}

}  // namespace
}  // namespace nodeplane::cni
