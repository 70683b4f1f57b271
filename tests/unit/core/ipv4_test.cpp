#include "core/ipv4.h"

#include <gtest/gtest.h>

namespace nodeplane {
namespace {

TEST(Ipv4Address, ParsesStrictly) {
  EXPECT_EQ(Ipv4Address::parse("10.244.1.2")->value, 0x0af40102u);
  EXPECT_EQ(Ipv4Address::parse("0.0.0.0")->value, 0u);
  EXPECT_EQ(Ipv4Address::parse("255.255.255.255")->value, 0xffffffffu);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "1.1.1.1 ", "a.b.c.d",
                          "1..1.1", "-1.1.1.1", "1.1.1.1/32"})
    EXPECT_FALSE(Ipv4Address::parse(bad)) << bad;
  EXPECT_EQ(Ipv4Address::parse("192.168.0.1")->toString(), "192.168.0.1");
}

TEST(Ipv4Prefix, ParsesAndContains) {
  auto p = Ipv4Prefix::parse("10.244.0.0/16");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(*Ipv4Address::parse("10.244.200.1")));
  EXPECT_FALSE(p->contains(*Ipv4Address::parse("10.245.0.1")));
  EXPECT_EQ(p->toString(), "10.244.0.0/16");
  EXPECT_TRUE(Ipv4Prefix::parse("0.0.0.0/0")->contains(*Ipv4Address::parse("8.8.8.8")));
  for (const char* bad : {"10.244.0.1/16", "10.0.0.0/33", "10.0.0.0", "10.0.0.0/", "10.0.0.0/-1"})
    EXPECT_FALSE(Ipv4Prefix::parse(bad)) << bad;
  EXPECT_TRUE(Ipv4Prefix::parse("10.0.0.0/8")->overlaps(*Ipv4Prefix::parse("10.244.0.0/16")));
  EXPECT_FALSE(Ipv4Prefix::parse("10.96.0.0/12")->overlaps(*Ipv4Prefix::parse("10.244.0.0/16")));
}

TEST(MacAddress, ParsesAndFormats) {
  auto m = MacAddress::parse("02:AB:cd:00:11:ff");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->toString(), "02:ab:cd:00:11:ff");
  EXPECT_FALSE(m->isMulticast());
  EXPECT_TRUE(MacAddress::parse("01:00:5e:00:00:01")->isMulticast());
  EXPECT_TRUE(MacAddress::parse("00:00:00:00:00:00")->isZero());
  for (const char* bad :
       {"", "02:ab:cd:00:11", "02-ab-cd-00-11-ff", "02:ab:cd:00:11:fg", "2:ab:cd:00:11:ff0"})
    EXPECT_FALSE(MacAddress::parse(bad)) << bad;
}

}  // namespace
}  // namespace nodeplane
