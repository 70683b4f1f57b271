// The pod port on real sockets: a veth pair in a network namespace of the test's own, the pod
// port on one end, a packet socket with virtio-net headers standing in for the pod's kernel on
// the other. Frames both ways, a TSO super-packet both ways as one packet, checksum offload
// flags both ways. Needs root (CAP_NET_ADMIN, CAP_NET_RAW): fails, loudly, without it.
#include "dataplane/pod_port.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "dataplane/snapshot.h"
#include "dataplane/vnet.h"
#include "tests/unit/support/packet_builder.h"

namespace nodeplane::dataplane {
namespace {

using testing::Bytes;
using testing::PacketBuilder;

constexpr uint16_t kPort = kFirstPodPort + 7;

int sh(const std::string& command) {
  return std::system(command.c_str());
}

class PodPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the pod port test needs root: it creates a network namespace";
    netns_ = "np-ut-podport-" + std::to_string(getpid());
    ASSERT_EQ(sh("ip netns add " + netns_), 0);
    const std::string in = "ip -n " + netns_ + " ";
    ASSERT_EQ(sh("ip netns exec " + netns_ + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 " +
                 "net.ipv6.conf.default.disable_ipv6=1"),
              0);
    ASSERT_EQ(sh(in + "link add nphost type veth peer name nppod"), 0);
    ASSERT_EQ(sh(in + "link set nphost up && " + in + "link set nppod up"), 0);

    // Sockets belong to the namespace they are made in: enter it for that, then leave.
    const int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(("/run/netns/" + netns_).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(home, 0);
    ASSERT_GE(target, 0);
    ASSERT_EQ(::setns(target, CLONE_NEWNET), 0);
    auto port = PodPort::open("nphost", PodPort::Options{});
    pod_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    const int podIndex = static_cast<int>(::if_nametoindex("nppod"));
    EXPECT_EQ(::setns(home, CLONE_NEWNET), 0);
    ::close(home);
    ::close(target);
    ASSERT_TRUE(port.ok()) << port.error().message;
    port_ = std::move(*port);
    ASSERT_GE(pod_, 0);
    const int one = 1;
    ASSERT_EQ(::setsockopt(pod_, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)), 0);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = podIndex;
    ASSERT_EQ(::bind(pod_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }

  void TearDown() override {
    port_.reset();
    if (pod_ >= 0) ::close(pod_);
    if (!netns_.empty()) sh("ip netns del " + netns_);
  }

  // The pod sends `frame` with `vnet` in front.
  void podSends(const VnetHeader& vnet, const Bytes& frame) {
    iovec iov[2] = {{const_cast<VnetHeader*>(&vnet), sizeof(vnet)},
                    {const_cast<uint8_t*>(frame.data()), frame.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    ASSERT_EQ(::sendmsg(pod_, &msg, 0), static_cast<ssize_t>(sizeof(vnet) + frame.size()))
        << std::strerror(errno);
  }

  // What the pod receives next (its virtio-net header apart), within a second.
  Bytes podReceives(VnetHeader& vnet) {
    pollfd p{pod_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return {};
    Bytes frame(70000);
    iovec iov[2] = {{&vnet, sizeof(vnet)}, {frame.data(), frame.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    const ssize_t n = ::recvmsg(pod_, &msg, 0);
    frame.resize(n > static_cast<ssize_t>(sizeof(vnet)) ? n - sizeof(vnet) : 0);
    return frame;
  }

  // The port's next packet, polled as a worker does, within a second.
  rte_mbuf* portReceives() {
    rte_mbuf* m = nullptr;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (port_->receive(testing::testPool(), kPort, &m, 1, counters_) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return nullptr;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return m;
  }

  std::string netns_;
  std::unique_ptr<PodPort> port_;
  int pod_ = -1;
  WorkerCounters counters_;
};

Bytes udpFrame(size_t payload) {
  return PacketBuilder()
      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
      .ipv4("10.244.1.2", "10.244.1.3")
      .udp(1000, 2000)
      .payload(payload, 0x5a)
      .build();
}

Bytes tcpFrame(size_t payload) {
  Bytes data(payload);
  for (size_t i = 0; i < payload; ++i) data[i] = static_cast<uint8_t>(i % 253);
  return PacketBuilder()
      .eth("02:00:00:00:00:01", "02:00:00:00:00:02")
      .ipv4("10.244.1.2", "10.244.1.3")
      .dontFragment()
      .tcp(40000, 5201, 0x10)
      .payloadBytes(data)
      .build();
}

TEST_F(PodPortTest, FramesBothWays) {
  const Bytes frame = udpFrame(100);
  podSends(VnetHeader{}, frame);
  rte_mbuf* m = portReceives();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->port, kPort);
  EXPECT_EQ(testing::mbufBytes(m), frame);
  EXPECT_FALSE(hasPartialChecksum(m));
  EXPECT_EQ(port_->transmit(&m, 1, counters_), 1);
  rte_pktmbuf_free(m);
  VnetHeader vnet{};
  EXPECT_EQ(podReceives(vnet), frame);
  EXPECT_EQ(vnet.gsoType, kVnetGsoNone);
  EXPECT_EQ(port_->stats().rxPackets, 1u);
}

TEST_F(PodPortTest, ChecksumOffloadBothWays) {
  const Bytes frame = udpFrame(4);
  podSends(VnetHeader{kVnetNeedsCsum, kVnetGsoNone, 0, 0, 34, 6}, frame);
  rte_mbuf* m = portReceives();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->ol_flags & RTE_MBUF_F_TX_L4_MASK, RTE_MBUF_F_TX_UDP_CKSUM);
  EXPECT_EQ(port_->transmit(&m, 1, counters_), 1);
  rte_pktmbuf_free(m);
  VnetHeader vnet{};
  EXPECT_EQ(podReceives(vnet), frame);
  EXPECT_EQ(vnet.flags & kVnetNeedsCsum, kVnetNeedsCsum);
  EXPECT_EQ(vnet.csumStart, 34);
  EXPECT_EQ(vnet.csumOffset, 6);
}

TEST_F(PodPortTest, ASuperPacketCrossesWholeBothWays) {
  // 60,000 bytes of TCP payload with TSO: far larger than a ring frame, one packet all the same.
  const Bytes frame = tcpFrame(60000);
  podSends(VnetHeader{kVnetNeedsCsum, kVnetGsoTcpv4, 54, 1398, 34, 16}, frame);
  rte_mbuf* m = portReceives();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->pkt_len, frame.size());
  EXPECT_GT(m->nb_segs, 1);
  EXPECT_TRUE(isTcpSuperPacket(m));
  EXPECT_EQ(m->tso_segsz, 1398u);
  EXPECT_EQ(testing::mbufBytes(m), frame);
  EXPECT_EQ(port_->transmit(&m, 1, counters_), 1);
  rte_pktmbuf_free(m);
  VnetHeader vnet{};
  EXPECT_EQ(podReceives(vnet), frame);
  EXPECT_EQ(vnet.gsoType & ~kVnetGsoEcn, kVnetGsoTcpv4);
  EXPECT_EQ(vnet.gsoSize, 1398);
  for (const auto& c : counters_.drops) EXPECT_EQ(c.read(), 0u);
}

TEST_F(PodPortTest, ManyFramesKeepTheirOrder) {
  for (uint8_t i = 0; i < 200; ++i) podSends(VnetHeader{}, udpFrame(10 + i));
  rte_mbuf* pkts[64];
  unsigned seen = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (seen < 200 && std::chrono::steady_clock::now() < deadline) {
    const uint16_t n = port_->receive(testing::testPool(), kPort, pkts, 64, counters_);
    for (uint16_t i = 0; i < n; ++i, ++seen) {
      EXPECT_EQ(pkts[i]->pkt_len, udpFrame(10 + seen).size());
      rte_pktmbuf_free(pkts[i]);
    }
  }
  EXPECT_EQ(seen, 200u);
}

}  // namespace
}  // namespace nodeplane::dataplane
