// Capture sessions on a node over the fake backend: the port named as npctl ports names it, the
// filter compiled by libpcap and run as eBPF on the mbufs a worker offers (only matches are
// copied, up to the snap length), packets read back base64 with their direction, errors that
// name the field, one session at a time, and an unread session stopped.
#include "control/packet_capture.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/base64.h"
#include "dataplane/capture.h"
#include "tests/unit/support/pod_pair_fixture.h"

namespace nodeplane::testing {
namespace {

using control::ArgReader;
using control::Json;
using control::PacketCapture;

class PacketCaptureTest : public PodPairFixture {
 protected:
  void SetUp() override {
    startNode(nodeSettings());
    attachPair("ns", "client", "ns", "server");
    capture = std::make_unique<PacketCapture>(*node, backend);
  }
  void TearDown() override { capture.reset(); }

  Result<Json> start(const Json& args) { return capture->start(ArgReader("capture.start", args)); }
  Result<Json> read(uint64_t session) {
    return capture->read(ArgReader("capture.read", Json{{"session", session}}));
  }
  // What a worker does with a burst the client's port received.
  void offer(const std::vector<Bytes>& frames, dataplane::CaptureDirection d) {
    std::vector<rte_mbuf*> pkts;
    for (const Bytes& f : frames) pkts.push_back(makeMbuf(f, 0));
    dataplane::CaptureSession* session = backend.capture();
    ASSERT_NE(session, nullptr);
    if (session->wants(0, d)) session->offer(pkts.data(), static_cast<uint16_t>(pkts.size()), d, 0);
    for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
  }

  std::unique_ptr<PacketCapture> capture;
};

TEST_F(PacketCaptureTest, TheFilterPassesOnlyMatchesCutToTheSnapLength) {
  auto started = start({{"port", "ns/client"}, {"filter", "tcp dst port 80"}, {"snaplen", 64}});
  ASSERT_TRUE(started.ok()) << started.error().message;
  EXPECT_EQ((*started)["interface"], "ns/client");
  const uint64_t session = (*started)["session"];
  const Bytes web =
      fromFirstPod().ipv4("10.244.1.2", "10.244.1.3").tcp(4000, 80, 0x02).payload(200).build();
  const Bytes other = fromFirstPod().ipv4("10.244.1.2", "10.244.1.3").tcp(4000, 81, 0x02).build();
  const Bytes udp = fromFirstPod().ipv4("10.244.1.2", "10.244.1.3").udp(4000, 80).build();
  offer({web, other, udp, web}, dataplane::CaptureDirection::kRx);

  auto got = read(session);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ((*got)["packets"].size(), 2u) << got->dump();
  for (const Json& p : (*got)["packets"]) {
    EXPECT_EQ(p["direction"], "rx");
    EXPECT_EQ(p["length"], web.size());
    auto data = base64Decode(p["data"].get<std::string>());
    ASSERT_TRUE(data.has_value());
    ASSERT_EQ(data->size(), 64u) << "cut to the snap length";
    EXPECT_EQ(std::memcmp(data->data(), web.data(), data->size()), 0);
    EXPECT_GT(p["unixNs"].get<int64_t>(), int64_t{1'700'000'000} * 1'000'000'000);
  }
  EXPECT_EQ((*got)["captured"], 2);
  EXPECT_EQ((*read(session))["packets"].size(), 0u) << "read once";

  auto stopped = capture->stop(ArgReader("capture.stop", Json{{"session", session}}));
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ((*stopped)["delivered"], 2);
  EXPECT_EQ(backend.capture(), nullptr);
}

TEST_F(PacketCaptureTest, DirectionAndPortChooseWhatIsOffered) {
  auto started = start({{"port", "ns/client"}, {"direction", "tx"}});
  ASSERT_TRUE(started.ok());
  dataplane::CaptureSession* s = backend.capture();
  EXPECT_TRUE(s->wants(0, dataplane::CaptureDirection::kTx));
  EXPECT_FALSE(s->wants(0, dataplane::CaptureDirection::kRx));
  EXPECT_FALSE(s->wants(1, dataplane::CaptureDirection::kTx)) << "the server's port";
}

TEST_F(PacketCaptureTest, ErrorsNameTheFieldAndChangeNothing) {
  auto bad = start({{"port", "ns/client"}, {"filter", "tcp port nonsense"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("filter"), std::string::npos) << bad.error().message;
  EXPECT_EQ(backend.capture(), nullptr);
  auto nobody = start({{"port", "ns/nobody"}});
  ASSERT_FALSE(nobody.ok());
  EXPECT_NE(nobody.error().message.find("ns/nobody"), std::string::npos);
  EXPECT_FALSE(start({{"port", "ns/client"}, {"direction", "sideways"}}).ok());
  EXPECT_FALSE(start({{"port", "ns/client"}, {"snaplen", 10}}).ok());
  EXPECT_FALSE(start({{"port", 7}}).ok());

  auto first = start({{"port", "ns/client"}});
  ASSERT_TRUE(first.ok());
  auto second = start({{"port", "ns/server"}});
  ASSERT_FALSE(second.ok()) << "one at a time";
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  EXPECT_FALSE(read((*first)["session"].get<uint64_t>() + 1).ok()) << "no such session";
}

TEST_F(PacketCaptureTest, ASessionNobodyReadsIsStopped) {
  auto started = start({{"port", "ns/client"}});
  ASSERT_TRUE(started.ok());
  const auto now = std::chrono::steady_clock::now();
  capture->expireIdle(now);
  EXPECT_NE(backend.capture(), nullptr) << "just started";
  capture->expireIdle(now + PacketCapture::kIdleTimeout + std::chrono::seconds(1));
  EXPECT_EQ(backend.capture(), nullptr);
  EXPECT_FALSE(read((*started)["session"]).ok());
  EXPECT_TRUE(start({{"port", "ns/server"}}).ok()) << "a new one may start";
}

}  // namespace
}  // namespace nodeplane::testing
