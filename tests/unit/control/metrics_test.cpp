// The metrics endpoint's content: every family promtool accepts (Debian's prometheus package),
// counters that follow what the workers counted, applies and their latency, readiness.
#include "control/metrics.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/unit/support/pod_pair_fixture.h"

namespace nodeplane::testing {
namespace {

class MetricsTest : public PodPairFixture {
 protected:
  void SetUp() override {
    startNode(nodeSettings());
    attachPair("ns-dev", "client", "backend", "web");
    backend.stats.resize(2);
    for (unsigned i = 0; i < 2; ++i) {
      backend.stats[i].index = i;
      backend.stats[i].counters.loops = 100;
      backend.stats[i].counters.rxPackets = 10 + i;
      backend.stats[i].counters.dnsAnswersA = 3;
      backend.stats[i].counters.drops[static_cast<size_t>(DropReason::kPodSourceSpoofed)] = 2;
    }
    api = std::make_unique<control::ControlApi>(*node, backend);
  }
  std::string render(bool ready = true) {
    return control::renderMetrics(*api, *node, backend, api->applyStats(), ready);
  }
  // promtool's verdict on `text` (its exit status; its complaints into *out).
  static int promtool(const std::string& text, std::string* out) {
    char path[] = "/tmp/np-metrics-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    std::ofstream(path) << text;
    const std::string cmd = "/usr/bin/promtool check metrics < " + std::string(path) + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    char buf[512];
    while (p && fgets(buf, sizeof(buf), p)) *out += buf;
    const int status = p ? pclose(p) : -1;
    std::remove(path);
    return status;
  }
  std::unique_ptr<control::ControlApi> api;
};

TEST_F(MetricsTest, PromtoolAcceptsTheScrape) {
  // The prometheus package (promtool) is installed by the build (scripts/install-deps.sh): a
  // machine without it fails here, loudly.
  ASSERT_EQ(access("/usr/bin/promtool", X_OK), 0) << "promtool missing: apt-get install prometheus";
  (void)api->handleLine(R"({"v":1,"id":1,"op":"apply","args":{"generation":3,"services":[]}})");
  std::string complaints;
  EXPECT_EQ(promtool(render(), &complaints), 0) << complaints;
}

TEST_F(MetricsTest, CountersAreWhatTheWorkersCounted) {
  const std::string text = render();
  EXPECT_NE(text.find("nodeplane_drop_count_total{reason=\"pod_source_spoofed\"} 4"),
            std::string::npos)
      << "summed over workers";
  EXPECT_NE(text.find("nodeplane_rx_packets_total{worker=\"1\"} 11"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_dns_answers_a_total{worker=\"0\"} 3"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_pods 2"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_conntrack_capacity"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_ready 1"), std::string::npos);
}

TEST_F(MetricsTest, AppliesAreCountedWithTheirLatency) {
  (void)api->handleLine(R"({"v":1,"id":1,"op":"apply","args":{"generation":3,"services":[]}})");
  (void)api->handleLine(R"({"v":1,"id":2,"op":"apply","args":{"services":[{"name":5}]}})");
  const std::string text = render();
  EXPECT_NE(text.find("nodeplane_apply_total{result=\"ok\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("nodeplane_apply_total{result=\"error\"} 1"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_apply_duration_seconds_count 2"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_apply_duration_seconds_bucket{le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(text.find("nodeplane_desired_generation 3"), std::string::npos);
}

TEST_F(MetricsTest, ReadyOnceAStateIsAppliedAndWhileWorkersPoll) {
  control::Readiness readiness;
  EXPECT_EQ(readiness.check(*node, backend), "no desired state applied yet");
  ASSERT_TRUE(node->replaceServices({}).ok());
  EXPECT_EQ(readiness.check(*node, backend), "");
  // A worker whose loop counter stops: not ready at the next sample.
  std::this_thread::sleep_for(control::Readiness::kSampleInterval);
  backend.stats[0].counters.loops += 5;
  EXPECT_EQ(readiness.check(*node, backend), "worker 1 has not polled since the last check");
  std::this_thread::sleep_for(control::Readiness::kSampleInterval);
  backend.stats[0].counters.loops += 5;
  backend.stats[1].counters.loops += 5;
  EXPECT_EQ(readiness.check(*node, backend), "");
}

}  // namespace
}  // namespace nodeplane::testing
