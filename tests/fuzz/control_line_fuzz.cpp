// Fuzz target: the control socket's request line (ControlApi::handleLine), every op, on a node
// over the fake backend. Any line gets one reply line that is valid JSON; nothing throws,
// crashes or reads past the line.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "control/control_api.h"
#include "control/node_controller.h"
#include "core/json.h"
#include "lb/conntrack.h"
#include "tests/fuzz/fuzz_eal.h"
#include "tests/unit/support/fake_backend.h"
#include "tests/unit/support/packet_builder.h"

namespace {

using namespace nodeplane;

struct Daemon {
  testing::FakeBackend backend;
  std::unique_ptr<lb::ConnTracker> tracker;
  std::unique_ptr<control::NodeController> node;
  std::unique_ptr<control::ControlApi> api;
};

Daemon& daemon() {
  static Daemon* d = [] {
    fuzz::startEal();
    auto* made = new Daemon;
    made->backend.pool = testing::testPool();
    auto tracker = lb::ConnTracker::create(1024, 1, 0, nullptr);
    if (!tracker) std::abort();
    made->tracker = std::move(*tracker);
    made->backend.tracker = made->tracker.get();
    control::NodeSettings s;
    s.nodeName = "node-cpu";
    s.nodeIp = *Ipv4Address::parse("192.168.50.10");
    s.underlayPrefixLength = 24;
    s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
    s.clusterCidr = *Ipv4Prefix::parse("10.244.0.0/16");
    s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
    s.uplinkDevargs = "net_fake_uplink";
    s.clusterId = "east";  // the cluster ops go past their first check
    s.globalCidr = *Ipv4Prefix::parse("242.0.0.0/24");
    s.clustersetCidr = *Ipv4Prefix::parse("10.112.0.0/24");
    s.maglevSize = 251;
    s.l7FlowsPerWorker = 16;
    s.maxPolicies = 64;
    made->node = std::make_unique<control::NodeController>(s, made->backend);
    if (!made->node->start()) std::abort();
    made->api = std::make_unique<control::ControlApi>(*made->node, made->backend);
    return made;
  }();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Daemon& d = daemon();
  const std::string line(reinterpret_cast<const char*>(data), size);  // exactly its bytes
  const std::string reply = d.api->handleLine(line);
  if (reply.empty() || reply.back() != '\n' || !json::parse(reply)) std::abort();
  return 0;
}
