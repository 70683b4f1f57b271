#include "daemon/options.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace nodeplane::daemon {
namespace {

Result<ParsedOptions> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "nodeplane");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return parseDaemonOptions(static_cast<int>(argv.size()), argv.data());
}

const std::vector<std::string> kMinimal = {"--node-name",   "node-cpu",   "--node-ip",
                                           "192.168.50.10", "--pod-cidr", "10.244.1.0/24"};

std::vector<std::string> with(std::vector<std::string> extra) {
  std::vector<std::string> a = kMinimal;
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(Options, MinimalSetAndDefaults) {
  auto r = parse(kMinimal);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const DaemonOptions& o = r->options;
  EXPECT_EQ(o.nodeName, "node-cpu");
  EXPECT_EQ(o.nodeIp.toString(), "192.168.50.10");
  EXPECT_EQ(o.podCidr.toString(), "10.244.1.0/24");
  EXPECT_EQ(o.controlSocket, "/run/nodeplane/control.sock");
  EXPECT_EQ(o.workerLcores, std::vector<unsigned>{1});
  EXPECT_EQ(o.gatewayIp.toString(), "169.254.1.1");
  EXPECT_TRUE(o.uplink.empty());
}

TEST(Options, EalArgumentsPassThroughAfterSeparator) {
  auto r = parse(with({"--workers", "2-3", "--", "--no-huge", "-m", "512"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->options.ealArgs, (std::vector<std::string>{"--no-huge", "-m", "512"}));
  auto eal = buildEalArgs("nodeplane", r->options);
  EXPECT_EQ(eal[1], "-l");
  EXPECT_EQ(eal[2], "0,2,3");
  EXPECT_NE(std::find(eal.begin(), eal.end(), "nodeplane-node-cpu"), eal.end());
  EXPECT_EQ(eal.back(), "512");
}

TEST(Options, ConfigFileAndCommandLineCombine) {
  char path[] = "/tmp/np-options-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "node-name = node-gpu\nnode-ip = 192.168.50.11\npod-cidr = 10.244.2.0/24\n"
                         "uplink = net_af_packet0,iface=eth1\nworkers = 1\n"
                         "cluster-dns = 10.96.0.10\ncluster-dns = 169.254.20.10\n"
                         "snat-ports = 61000-65535\n";
  auto r = parse({"--config", path, "--log-level", "debug"});
  std::remove(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->options.nodeName, "node-gpu");
  EXPECT_EQ(r->options.uplink, "net_af_packet0,iface=eth1");
  EXPECT_EQ(r->options.logLevel, "debug");
  ASSERT_EQ(r->options.clusterDns.size(), 2u) << "repeatable in a config file";
  EXPECT_EQ(r->options.clusterDns[1].toString(), "169.254.20.10");
  EXPECT_EQ(r->options.snatPorts, (std::pair<uint16_t, uint16_t>{61000, 65535}));
  EXPECT_EQ(r->options.clusterDomain, "cluster.local");
  EXPECT_TRUE(r->options.dnsResponder);
}

TEST(Options, ErrorsNameTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  } cases[] = {
      {{"--pod-cidr", "10.244.1.0/24", "--node-name", "n"}, "--node-ip: required"},
      {with({"--node-ip", "300.1.1.1"}), "--node-ip"},
      {{"--node-ip", "1.1.1.1", "--node-name", "n"}, "--pod-cidr: required"},
      {{"--node-ip", "1.1.1.1", "--node-name", "n", "--pod-cidr", "10.244.1.1/24"}, "--pod-cidr"},
      {with({"--cluster-cidr", "10.0.0.0/16"}), "--pod-cidr"},
      {with({"--cluster-cidr", "10.244.0.0/16", "--service-cidr", "10.244.0.0/12"}),
       "--service-cidr"},
      {with({"--workers", "0"}), "--workers"},
      {with({"--workers", "2,2"}), "--workers"},
      {with({"--workers", "x"}), "--workers"},
      {with({"--log-level", "loud"}), "--log-level"},
      {with({"--burst", "65"}), "--burst"},
      {with({"--control-socket", "relative.sock"}), "--control-socket"},
      {with({"--gateway-ip", "10.244.1.1"}), "--gateway-ip"},
      {with({"--node-name", "Bad_Name"}), "--node-name"},
      {with({"--frobnicate"}), "frobnicate"},
      {with({"--", "-l", "0-3"}), "-l"},
      {{"--config", "/nonexistent/np.conf"}, "--config"},
      {with({"--snat-ports", "61000"}), "--snat-ports"},
      {with({"--snat-ports", "65000-64000"}), "--snat-ports"},
      {with({"--snat-ports", "100-5000"}), "--snat-ports"},
      {with({"--snat-ports", "65000-65535"}), "--snat-ports"},
      {with({"--cluster-dns", "10.96.0.300"}), "--cluster-dns"},
      {with({"--cluster-dns", "224.0.0.1"}), "--cluster-dns"},
      {with({"--cluster-domain", "bad_domain"}), "--cluster-domain"},
      {with({"--dns-ttl", "100000"}), "--dns-ttl"},
      {with({"--host-default-route"}), "needs --host-interface"},
      {with({"--host-default-route", "--host-interface", "np0"}), "needs --uplink"},
      {with({"--host-default-route", "--host-interface", "np0", "--uplink", "0000:3b:00.0"}),
       "needs --underlay-gateway"},
  };
  for (const Case& c : cases) {
    auto r = parse(c.args);
    ASSERT_FALSE(r.ok()) << c.expected;
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos)
        << "'" << r.error().message << "' should name " << c.expected;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << "one line";
  }
}

TEST(Options, HostDefaultRouteWithWhatItNeeds) {
  auto r = parse({"--node-name", "node-cpu", "--node-ip", "192.168.50.10/24", "--pod-cidr",
                  "10.244.1.0/24", "--underlay-gateway", "192.168.50.1", "--uplink", "0000:3b:00.0",
                  "--host-interface", "np0", "--host-default-route"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->options.hostDefaultRoute);
  EXPECT_FALSE(parse(kMinimal)->options.hostDefaultRoute);
}

TEST(Options, HelpAndVersionExitEarly) {
  auto r = parse({"--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->exitNow);
  EXPECT_NE(r->output.find("--pod-cidr"), std::string::npos);
  r = parse({"--version"});
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->output.find("nodeplane"), std::string::npos);
}

TEST(Options, LcoreLists) {
  EXPECT_EQ(parseLcoreList("1"), (std::vector<unsigned>{1}));
  EXPECT_EQ(parseLcoreList("1,4-6"), (std::vector<unsigned>{1, 4, 5, 6}));
  EXPECT_FALSE(parseLcoreList(""));
  EXPECT_FALSE(parseLcoreList("3-1"));
  EXPECT_FALSE(parseLcoreList("1,,2"));
  EXPECT_FALSE(parseLcoreList("1-"));
}

}  // namespace
}  // namespace nodeplane::daemon
