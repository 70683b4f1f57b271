// What must stay stable across service changes (backend slots and tags, service-port ids), and
// what must change (a removed or flushed backend's tag), through prepare/commit.
#include "control/service_registry.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::control {
namespace {

NodeSettings settings() {
  NodeSettings s;
  s.nodeName = "node-cpu";
  s.nodeIp = testing::ip("192.168.50.10");
  s.podCidr = *Ipv4Prefix::parse("10.244.1.0/24");
  s.serviceCidr = *Ipv4Prefix::parse("10.96.0.0/12");
  s.maglevSize = 251;
  return s;
}

ServiceSpec web(std::vector<const char*> backends) {
  ServiceSpec s;
  s.namespaceName = "backend";
  s.name = "web";
  s.clusterIps = {testing::ip("10.96.0.30")};
  s.ports = {ServicePortSpec{"http", IPPROTO_TCP, 80, 8080, "", 0},
             ServicePortSpec{"dns", IPPROTO_UDP, 53, 0, "dns", 0}};
  for (const char* b : backends) {
    EndpointSpec e;
    e.ip = testing::ip(b);
    e.ports["dns"] = 5353;
    s.endpoints.push_back(e);
  }
  return s;
}

struct BackendView {
  uint32_t slot, tag;
  uint16_t port;
  bool local;
};

std::map<std::string, BackendView> backendsOf(const lb::ServiceTable& t, const char* vip,
                                              uint16_t port, uint8_t proto) {
  uint32_t index;
  lb::ServiceAccess access;
  std::map<std::string, BackendView> out;
  if (!t.find(rte_cpu_to_be_32(testing::ip(vip).value), rte_cpu_to_be_16(port), proto, &index,
              &access))
    return out;
  const auto& sp = t.port(index);
  for (uint32_t i = 0; i < sp.backendCount; ++i) {
    const auto& b = t.backend(sp, i);
    out[Ipv4Address{rte_be_to_cpu_32(b.ip)}.toString()] =
        BackendView{b.slot, b.tag, rte_be_to_cpu_16(b.port), b.local != 0};
  }
  return out;
}

class ServiceRegistryTest : public ::testing::Test {
 protected:
  std::shared_ptr<const lb::ServiceTable> apply(ServiceRegistry::Services next,
                                                std::set<uint32_t> flush = {}) {
    auto p = reg.prepare(std::move(next), settings(), 0, flush);
    EXPECT_TRUE(p.ok());
    auto table = p->table;
    reg.commit(std::move(*p));
    return table;
  }
  ServiceRegistry reg;
};

TEST_F(ServiceRegistryTest, ResolvesPortsAndLocality) {
  auto t = apply({{"backend/web", web({"10.244.1.5", "10.244.2.5"})}});
  auto http = backendsOf(*t, "10.96.0.30", 80, IPPROTO_TCP);
  ASSERT_EQ(http.size(), 2u);
  EXPECT_EQ(http["10.244.1.5"].port, 8080);
  EXPECT_TRUE(http["10.244.1.5"].local);
  EXPECT_FALSE(http["10.244.2.5"].local);
  auto dns = backendsOf(*t, "10.96.0.30", 53, IPPROTO_UDP);
  EXPECT_EQ(dns["10.244.2.5"].port, 5353) << "targetPort by name, resolved per endpoint";
}

TEST_F(ServiceRegistryTest, UnchangedBackendsKeepSlotAndTagRemovedOnesChangeTag) {
  auto t1 = apply({{"backend/web", web({"10.244.1.5", "10.244.2.5"})}});
  auto before = backendsOf(*t1, "10.96.0.30", 80, IPPROTO_TCP);
  auto t2 = apply({{"backend/web", web({"10.244.1.5", "10.244.2.6"})}});
  auto after = backendsOf(*t2, "10.96.0.30", 80, IPPROTO_TCP);
  EXPECT_EQ(after["10.244.1.5"].slot, before["10.244.1.5"].slot);
  EXPECT_EQ(after["10.244.1.5"].tag, before["10.244.1.5"].tag);
  EXPECT_TRUE(t2->alive(before["10.244.1.5"].slot, before["10.244.1.5"].tag));
  EXPECT_FALSE(t2->alive(before["10.244.2.5"].slot, before["10.244.2.5"].tag))
      << "the removed backend's flows are dead at once";
}

TEST_F(ServiceRegistryTest, FlushChangesTheTagsOfTheService) {
  auto t1 = apply({{"backend/web", web({"10.244.1.5"})}});
  auto b = backendsOf(*t1, "10.96.0.30", 80, IPPROTO_TCP)["10.244.1.5"];
  auto slots = reg.slotsOf("backend/web");
  EXPECT_EQ(slots.size(), 2u) << "one per service port";
  auto t2 = apply(reg.services(), slots);
  EXPECT_FALSE(t2->alive(b.slot, b.tag));
  auto again = backendsOf(*t2, "10.96.0.30", 80, IPPROTO_TCP)["10.244.1.5"];
  EXPECT_TRUE(t2->alive(again.slot, again.tag)) << "new flows still go there";
}

TEST_F(ServiceRegistryTest, APreparedChangeThatIsNotCommittedChangesNothing) {
  apply({{"backend/web", web({"10.244.1.5"})}});
  auto p = reg.prepare({}, settings(), 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(reg.services().size(), 1u);
  EXPECT_EQ(reg.slotsOf("backend/web").size(), 2u);
}

TEST_F(ServiceRegistryTest, ValidationNamesTheFieldAndTheConflict) {
  ServiceRegistry::Services others = {{"backend/web", web({})}};
  ServiceSpec clash = web({});
  clash.name = "other";
  auto st = ServiceRegistry::validate(clash, settings(), others);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("already service backend/web"), std::string::npos);
  ServiceSpec outside = web({});
  outside.clusterIps = {testing::ip("10.200.0.1")};
  st = ServiceRegistry::validate(outside, settings(), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("field 'clusterIPs'"), std::string::npos);
  ServiceSpec np = web({});
  np.ports[0].nodePort = 30080;
  st = ServiceRegistry::validate(np, settings(), {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("ports[0].nodePort"), std::string::npos);
}

}  // namespace
}  // namespace nodeplane::control
