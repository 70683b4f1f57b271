// Ports by devargs: a failed probe says why, and names the driver when DPDK has none loaded for
// the device (an installation without the driver's package, as the image once was).
#include "dataplane/port_manager.h"

#include <gtest/gtest.h>

#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

TEST(PortManager, DeviceNameIsTheDevargsFirstWord) {
  EXPECT_EQ(PortManager::deviceName("net_af_packet0,iface=eth0"), "net_af_packet0");
  EXPECT_EQ(PortManager::deviceName("0000:03:00.0"), "0000:03:00.0");
}

TEST(PortManager, AVirtualDeviceWithoutADriverNamesTheDriver) {
  PortManager ports(testing::testPool(), 1, PortSettings{});
  auto r = ports.open("net_nosuchdriver7,x=1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no DPDK driver net_nosuchdriver is loaded"), std::string::npos)
      << r.error().message;
}

TEST(PortManager, AFailureOfALoadedDriverIsNotBlamedOnTheDriver) {
  PortManager ports(testing::testPool(), 1, PortSettings{});
  auto r = ports.open("net_af_packet0,iface=np-no-such-if");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("probing"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("no DPDK driver"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace nodeplane::dataplane
