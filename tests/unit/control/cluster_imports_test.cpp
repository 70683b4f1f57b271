// Imports and clusterset services: an announcement is imported and a changed one reported; what
// is not announced again, or whose cluster has no gateway alive, is forgotten; clusterset
// services get the lowest free addresses and keep them; local endpoints first, the other
// clusters' only serving while one is ready; a name only imported takes the exporter's ports.
#include "control/cluster_imports.h"

#include <gtest/gtest.h>

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;
using control::ClusterImports;
using control::ExportAnnouncement;

ExportAnnouncement announcement(const char* cluster, const char* name, uint32_t address) {
  ExportAnnouncement a;
  a.clusterId = cluster;
  a.namespaceName = "shop";
  a.name = name;
  a.address = Ipv4Address{address};
  a.ports = {{"http", 6, 80}};
  return a;
}

TEST(ClusterImportsTest, AnnouncementsAreImportedAndForgottenWhenStaleOrGone) {
  ClusterImports imports;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(imports.announce(announcement("west", "web", 0xf2010002), t0));
  EXPECT_FALSE(imports.announce(announcement("west", "web", 0xf2010002), t0 + 1s));
  EXPECT_TRUE(imports.announce(announcement("west", "web", 0xf2010009), t0 + 1s)) << "moved";
  EXPECT_TRUE(imports.announce(announcement("north", "web", 0xf2020002), t0 + 1s));
  EXPECT_TRUE(imports.announce(announcement("north", "db", 0xf2020003), t0));
  ASSERT_EQ(imports.services().at("shop/web").size(), 2u);
  EXPECT_TRUE(imports.expire(t0, {"west", "north"}).empty());
  EXPECT_EQ(imports.expire(t0 + 1ms, {"west", "north"}),
            (std::vector<std::pair<std::string, std::string>>{{"north", "shop/db"}}))
      << "db not announced since t0";
  EXPECT_FALSE(imports.services().count("shop/db"));
  EXPECT_EQ(imports.expire(t0, {"north"}).size(), 1u) << "west has no gateway alive";
  EXPECT_FALSE(imports.withdraw("west", "shop/web"));
  EXPECT_TRUE(imports.withdraw("north", "shop/web"));
  EXPECT_TRUE(imports.services().empty());
  EXPECT_TRUE(imports.announce(announcement("north", "web", 0xf2020002), t0 + 1s));
  ASSERT_EQ(imports.services().at("shop/web").size(), 1u);
  EXPECT_EQ(imports.services().at("shop/web").begin()->first, "north");
}

TEST(ClusterImportsTest, ClustersetServicesAreLocalFirstAtStableAddresses) {
  const auto t0 = std::chrono::steady_clock::now();
  ClusterImports imports;
  imports.announce(announcement("west", "web", 0xf2010002), t0);
  imports.announce(announcement("west", "api", 0xf2010003), t0);
  std::map<std::string, control::ServiceSpec> services;
  control::ServiceSpec& web = services["shop/web"];
  web.namespaceName = "shop";
  web.name = "web";
  web.clusterIps = {*Ipv4Address::parse("10.96.0.20")};
  web.ports = {{"http", 6, 80, 8080}};
  control::EndpointSpec local;
  local.ip = *Ipv4Address::parse("10.244.1.2");
  web.endpoints = {local};
  const control::ExportMap exports = {{"shop/web", Ipv4Address{0xf2000002}}};
  const Ipv4Prefix cidr = *Ipv4Prefix::parse("10.112.0.0/24");
  std::map<std::string, Ipv4Address> vips;
  auto cs = control::clustersetServices(services, exports, imports, cidr, vips);
  ASSERT_EQ(cs.size(), 2u);
  const control::ServiceSpec& w = cs.at("shop/web@clusterset");
  EXPECT_EQ(w.clusterIps.front().toString(), "10.112.0.2") << "api first in name order";
  ASSERT_EQ(w.endpoints.size(), 2u);
  EXPECT_TRUE(w.endpoints[0].ready) << "local";
  EXPECT_FALSE(w.endpoints[1].ready) << "west's: serving only while a local one is ready";
  EXPECT_TRUE(w.endpoints[1].serving);
  EXPECT_EQ(w.endpoints[1].ports.at("http"), 80) << "west's service port, not the target port";
  const control::ServiceSpec& api = cs.at("shop/api@clusterset");
  ASSERT_EQ(api.ports.size(), 1u);
  EXPECT_EQ(api.ports[0].port, 80);
  EXPECT_TRUE(api.endpoints.at(0).ready);
  // No local endpoint ready: west's take the flows; the addresses stay.
  services["shop/web"].endpoints[0].ready = false;
  cs = control::clustersetServices(services, exports, imports, cidr, vips);
  EXPECT_TRUE(cs.at("shop/web@clusterset").endpoints[1].ready);
  EXPECT_EQ(cs.at("shop/web@clusterset").clusterIps.front().toString(), "10.112.0.2");
  // api gone: its address is freed and the next name takes it.
  imports.expire(t0 + 1ms, {"west"});
  imports.announce(announcement("west", "cart", 0xf2010004), t0 + 1s);
  cs = control::clustersetServices(services, exports, imports, cidr, vips);
  EXPECT_EQ(cs.at("shop/cart@clusterset").clusterIps.front().toString(), "10.112.0.1");
  EXPECT_FALSE(cs.count("shop/api@clusterset"));
  EXPECT_TRUE(control::isClustersetKey("shop/cart@clusterset"));
  EXPECT_FALSE(control::isClustersetKey("shop/cart"));
}

}  // namespace
}  // namespace nodeplane::testing

namespace nodeplane::testing {
namespace {

ExportAnnouncement headlessAnnouncement(const char* cluster,
                                        std::vector<control::AnnouncedEndpoint> endpoints) {
  ExportAnnouncement a;
  a.clusterId = cluster;
  a.namespaceName = "shop";
  a.name = "db";
  a.headless = true;
  a.ports = {{"pg", 6, 5432}};
  a.endpoints = std::move(endpoints);
  return a;
}

TEST(ClusterImportsTest, AHeadlessNameGetsEveryClustersEndpointsAndNoAddress) {
  const auto t0 = std::chrono::steady_clock::now();
  ClusterImports imports;
  EXPECT_TRUE(
      imports.announce(headlessAnnouncement("west", {{*Ipv4Address::parse("242.1.0.254"), "db-0"},
                                                     {*Ipv4Address::parse("242.1.0.253"), ""}}),
                       t0));
  EXPECT_FALSE(
      imports.announce(headlessAnnouncement("west", {{*Ipv4Address::parse("242.1.0.254"), "db-0"},
                                                     {*Ipv4Address::parse("242.1.0.253"), ""}}),
                       t0 + 1s));
  EXPECT_TRUE(imports.announce(
      headlessAnnouncement("west", {{*Ipv4Address::parse("242.1.0.254"), "db-0"}}), t0 + 1s))
      << "an endpoint gone";
  imports.announce(headlessAnnouncement("north", {{*Ipv4Address::parse("242.2.0.254"), ""}}), t0);
  // This cluster exports its own db headless too: its ready pods, at their own addresses.
  std::map<std::string, control::ServiceSpec> services;
  control::ServiceSpec& db = services["shop/db"];
  db.namespaceName = "shop";
  db.name = "db";
  db.ports = {{"pg", 6, 5432, 5432}};
  control::EndpointSpec mine;
  mine.ip = *Ipv4Address::parse("10.244.1.7");
  mine.hostname = "db-local";
  control::EndpointSpec notReady = mine;
  notReady.ip = *Ipv4Address::parse("10.244.1.8");
  notReady.ready = false;
  db.endpoints = {mine, notReady};
  control::ExportMap exports = {{"shop/db", Ipv4Address{0}}};
  std::map<std::string, Ipv4Address> vips;
  auto out = control::clustersetServices(services, exports, imports,
                                         *Ipv4Prefix::parse("10.112.0.0/24"), vips);
  ASSERT_EQ(out.size(), 1u);
  const control::ServiceSpec& s = out.begin()->second;
  EXPECT_EQ(s.name, "db@clusterset");
  EXPECT_TRUE(s.clusterIps.empty()) << "headless";
  EXPECT_TRUE(vips.empty());
  std::vector<std::string> endpoints;
  for (const auto& e : s.endpoints)
    endpoints.push_back(e.ip.toString() + "/" + e.hostname + (e.ready ? "" : "!"));
  EXPECT_EQ(endpoints,
            (std::vector<std::string>{"10.244.1.7/db-local", "242.2.0.254/", "242.1.0.254/db-0"}));
  for (const auto& e : s.endpoints)
    if (e.nodeName.starts_with("cluster:")) {  // the other clusters' say their port
      ASSERT_TRUE(e.ports.count("pg")) << e.ip.toString();
      EXPECT_EQ(e.ports.at("pg"), 5432);
    }
  // A cluster exporting the name with a ClusterIP is left out of a headless name.
  imports.announce(announcement("east", "db", 0xf2030002), t0 + 1s);
  out = control::clustersetServices(services, exports, imports, *Ipv4Prefix::parse("10.112.0.0/24"),
                                    vips);
  EXPECT_EQ(out.begin()->second.endpoints.size(), 3u);
}

}  // namespace
}  // namespace nodeplane::testing
