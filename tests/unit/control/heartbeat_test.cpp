// Gateway heartbeats on the wire: what is encoded decodes to the same; every truncation, a
// longer payload, a wrong magic, version or ID length, and an ID that is not a DNS label are
// rejected without reading past the bytes given; a frame built for the wire reads back.
#include "control/heartbeat.h"

#include <gtest/gtest.h>

#include "dataplane/cluster_link.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::testing {
namespace {

using control::Heartbeat;

TEST(HeartbeatTest, EncodedDecodesToTheSame) {
  const Heartbeat hb{"east", 0xdeadbeef, true};
  const auto bytes = control::encodeHeartbeat(hb);
  ASSERT_EQ(bytes.size(), 12u + 4);
  auto back = control::decodeHeartbeat(bytes.data(), bytes.size());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, hb);
}

TEST(HeartbeatTest, MalformedPayloadsAreRejectedInBounds) {
  const auto good = control::encodeHeartbeat({"west", 7, false});
  for (size_t n = 0; n < good.size(); ++n) {
    // A copy of exactly n bytes on the heap: ASan catches any read past it.
    std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(control::decodeHeartbeat(cut.data(), cut.size()).has_value()) << n;
  }
  auto longer = good;
  longer.push_back('x');
  EXPECT_FALSE(control::decodeHeartbeat(longer.data(), longer.size()).has_value());
  for (size_t byte : {0u, 4u, 5u, 6u, 7u}) {
    auto bad = good;
    bad[byte] ^= 0x40;
    EXPECT_FALSE(control::decodeHeartbeat(bad.data(), bad.size()).has_value()) << byte;
  }
  auto notALabel = control::encodeHeartbeat({"We_st", 7, false});
  EXPECT_FALSE(control::decodeHeartbeat(notALabel.data(), notALabel.size()).has_value());
  EXPECT_FALSE(control::decodeHeartbeat(nullptr, 16).has_value());
}

TEST(HeartbeatTest, AnnouncementsRoundTripAndMalformedOnesAreRejectedInBounds) {
  control::ExportAnnouncement a;
  a.clusterId = "west";
  a.namespaceName = "shop";
  a.name = "web";
  a.address = *Ipv4Address::parse("242.1.0.2");
  a.ports = {{"http", 6, 80}, {"", 17, 7001}};
  const auto bytes = control::encodeAnnouncement(a);
  ASSERT_FALSE(bytes.empty());
  auto back = control::decodeAnnouncement(bytes.data(), bytes.size());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, a);
  EXPECT_FALSE(control::decodeHeartbeat(bytes.data(), bytes.size()).has_value());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(control::decodeAnnouncement(cut.data(), cut.size()).has_value()) << n;
  }
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(control::decodeAnnouncement(longer.data(), longer.size()).has_value());
  auto badProtocol = bytes;
  badProtocol[16 + 4 + 4 + 3] = 1;  // the first port's protocol
  EXPECT_FALSE(control::decodeAnnouncement(badProtocol.data(), badProtocol.size()).has_value());
  control::ExportAnnouncement none = a;
  none.ports.clear();
  EXPECT_TRUE(control::encodeAnnouncement(none).empty()) << "no ports: not encodable";
}

TEST(HeartbeatTest, HeadlessAnnouncementsCarryTheirEndpoints) {
  control::ExportAnnouncement a;
  a.clusterId = "west";
  a.namespaceName = "shop";
  a.name = "db";
  a.headless = true;
  a.ports = {{"pg", 6, 5432}};
  a.endpoints = {{*Ipv4Address::parse("242.1.0.254"), "db-0"},
                 {*Ipv4Address::parse("242.1.0.253"), ""}};
  const auto bytes = control::encodeAnnouncement(a);
  ASSERT_FALSE(bytes.empty());
  auto back = control::decodeAnnouncement(bytes.data(), bytes.size());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, a);
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(control::decodeAnnouncement(cut.data(), cut.size()).has_value()) << n;
  }
  // Headless without ports or endpoints is still a name; never with an address of its own.
  control::ExportAnnouncement bare = a;
  bare.ports.clear();
  bare.endpoints.clear();
  EXPECT_FALSE(control::encodeAnnouncement(bare).empty());
  control::ExportAnnouncement addressed = a;
  addressed.address = *Ipv4Address::parse("242.1.0.2");
  EXPECT_TRUE(control::encodeAnnouncement(addressed).empty());
  control::ExportAnnouncement plain = a;
  plain.headless = false;
  plain.address = *Ipv4Address::parse("242.1.0.2");
  EXPECT_TRUE(control::encodeAnnouncement(plain).empty()) << "endpoints only when headless";
  auto flagged = bytes;
  flagged[12] = 1;  // an address on a headless announcement
  EXPECT_FALSE(control::decodeAnnouncement(flagged.data(), flagged.size()).has_value());
  control::ExportAnnouncement badHost = a;
  badHost.endpoints[0].hostname = "Not_A_Label";
  EXPECT_TRUE(control::encodeAnnouncement(badHost).empty());
  // More than one datagram's worth: not encodable (the sender announces fewer).
  control::ExportAnnouncement many = a;
  many.endpoints.assign(control::kMaxAnnouncedEndpoints,
                        {*Ipv4Address::parse("242.1.0.9"), std::string(40, 'a')});
  EXPECT_TRUE(control::encodeAnnouncement(many).empty());
  many.endpoints.resize(20);
  EXPECT_FALSE(control::encodeAnnouncement(many).empty());
}

TEST(HeartbeatTest, AFrameForTheWireReadsBack) {
  const Heartbeat hb{"east", 42, true};
  rte_mbuf* m = control::heartbeatFrame(
      testPool(), *MacAddress::parse("02:00:00:00:00:01"), *MacAddress::parse("02:00:00:00:00:02"),
      *Ipv4Address::parse("192.168.53.10"), *Ipv4Address::parse("192.168.53.11"), hb);
  ASSERT_NE(m, nullptr);
  const Bytes frame = mbufBytes(m);
  EXPECT_EQ(internetChecksum(&frame[14], 20), 0) << "IPv4 header checksum";
  EXPECT_EQ(get16(frame, 36), dataplane::kClusterHeartbeatPort);
  auto read = control::readHeartbeatFrame(m);
  rte_pktmbuf_free(m);
  ASSERT_TRUE(read.has_value());
  ASSERT_TRUE(read->heartbeat.has_value());
  EXPECT_EQ(*read->heartbeat, hb);
  EXPECT_EQ(read->from.toString(), "192.168.53.10");

  // Not a heartbeat: a UDP datagram with some other payload.
  rte_mbuf* other = makeMbuf(
      PacketBuilder().ipv4("192.168.53.10", "192.168.53.11").udp(4800, 4800).payload(20).build());
  EXPECT_FALSE(control::readHeartbeatFrame(other).has_value());
  rte_pktmbuf_free(other);
}

}  // namespace
}  // namespace nodeplane::testing
