// The DNS stage on real mbufs through every stage: a UDP query from a pod is answered in place
// (addresses, ports, lengths, checksums), queries the zone does not hold go on to the service
// stage, and without an upstream TCP is answered statelessly (SYN-ACK cookie, answer with FIN).
#include <netinet/in.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dns/present.h"
#include "tests/unit/support/pod_pair_fixture.h"

namespace nodeplane::testing {
namespace {

constexpr const char* kDnsIp = "10.96.0.10";

class DnsStageTest : public PodPairFixture {
 protected:
  void SetUp() override {
    startNode(nodeSettings());
    attachPair("ns-dev", "client", "kube-system", "upstream");
  }
  // kube-dns with (or without) the second pod as its upstream on UDP and TCP 53.
  void services(bool upstream) {
    control::ServiceSpec dns;
    dns.namespaceName = "kube-system";
    dns.name = "kube-dns";
    dns.clusterIps = {ip(kDnsIp)};
    dns.ports = {{"dns", IPPROTO_UDP, 53, 53, "", 0}, {"dns-tcp", IPPROTO_TCP, 53, 53, "", 0}};
    if (upstream) {
      control::EndpointSpec e;
      e.ip = ip(kSecondPodIp);
      dns.endpoints = {e};
    }
    control::ServiceSpec web;
    web.namespaceName = "backend";
    web.name = "web";
    web.clusterIps = {ip("10.96.0.30")};
    web.ports = {{"http", IPPROTO_TCP, 80, 8080, "", 0}};
    ASSERT_TRUE(node->replaceServices({dns, web}).ok());
  }
  static Bytes udpQuery(const std::string& name, uint16_t sport = 33333) {
    const auto q = dns::buildQuery(name, dns::kTypeA, 0x4242);
    return fromFirstPod().ipv4(kFirstPodIp, kDnsIp).udp(sport, 53).payloadBytes(q).build();
  }
  static Bytes tcpSegment(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload = {}) {
    return fromFirstPod()
        .ipv4(kFirstPodIp, kDnsIp)
        .tcp(44444, 53, flags)
        .tcpSeq(seq, ack)
        .payloadBytes(payload)
        .build();
  }
  // The DNS message in a UDP or TCP reply (after TCP's 2-byte length).
  static std::optional<dns::PresentedMessage> message(rte_mbuf* m, bool tcp) {
    const Bytes b = mbufBytes(m);
    size_t at = kEthLen + kIpLen;
    at += tcp ? (b[at + 12] >> 4) * 4u + 2 : 8u;
    return dns::present(b.data() + at, b.size() - at);
  }
};

TEST_F(DnsStageTest, AUdpQueryIsAnsweredInPlaceBackToThePod) {
  services(true);
  auto out = runAll(udpQuery("web.backend.svc.cluster.local"), 0);
  ASSERT_EQ(out.size(), 1u);
  const auto& [meta, m] = out[0];
  ASSERT_EQ(meta.action, Action::kTransmit);
  EXPECT_EQ(meta.outPort, 0) << "back out the port it came in on";
  const Bytes b = mbufBytes(m);
  const MacAddress podMac = mac(kFirstPodMac);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 6), Bytes(podMac.bytes.begin(), podMac.bytes.end()));
  auto* hdr = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthLen);
  EXPECT_EQ(hdr->src_addr, rte_cpu_to_be_32(ip(kDnsIp).value));
  EXPECT_EQ(hdr->dst_addr, rte_cpu_to_be_32(ip(kFirstPodIp).value));
  EXPECT_EQ(rte_ipv4_cksum(hdr), 0) << "IPv4 header checksum (verifies to 0 with the field)";
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(hdr, hdr + 1), 0);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(hdr + 1);
  EXPECT_EQ(rte_be_to_cpu_16(udp->src_port), 53);
  EXPECT_EQ(rte_be_to_cpu_16(udp->dst_port), 33333);
  EXPECT_EQ(rte_be_to_cpu_16(hdr->total_length), m->pkt_len - kEthLen);
  auto answer = message(m, false);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->answer.size(), 1u);
  EXPECT_EQ(answer->answer[0].data, "10.96.0.30");
  EXPECT_EQ(counters.dnsAnswersA.read(), 1u);
  EXPECT_EQ(counters.serviceFlows.read(), 0u) << "no flow, no conntrack entry";
  rte_pktmbuf_free(m);
}

TEST_F(DnsStageTest, OtherNamesGoOnToTheUpstreamOrAreRefusedWithoutOne) {
  services(true);
  auto out = runAll(udpQuery("example.com"), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first.action, Action::kTransmit);
  EXPECT_EQ(out[0].first.outPort, 1) << "DNATed to the upstream pod";
  EXPECT_EQ(counters.dnsPassedOn.read(), 1u);
  EXPECT_EQ(counters.serviceFlows.read(), 1u);
  rte_pktmbuf_free(out[0].second);

  services(false);
  out = runAll(udpQuery("example.com", 33334), 0);
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  EXPECT_EQ(out[0].first.outPort, 0);
  auto answer = message(out[0].second, false);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rcode, "REFUSED");
  EXPECT_EQ(counters.dnsRefused.read(), 1u);
  rte_pktmbuf_free(out[0].second);
}

TEST_F(DnsStageTest, TcpWithoutAnUpstreamIsAnsweredStatelessly) {
  services(false);
  // SYN -> SYN-ACK with a cookie and our MSS.
  auto out = runAll(tcpSegment(0x02, 1000, 0), 0);
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  auto* hdr = rte_pktmbuf_mtod_offset(out[0].second, rte_ipv4_hdr*, kEthLen);
  auto* tcp = reinterpret_cast<rte_tcp_hdr*>(hdr + 1);
  EXPECT_EQ(tcp->tcp_flags, 0x12);
  EXPECT_EQ(rte_be_to_cpu_32(tcp->recv_ack), 1001u);
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(hdr, tcp), 0);
  const uint32_t cookie = rte_be_to_cpu_32(tcp->sent_seq);
  rte_pktmbuf_free(out[0].second);
  // The handshake's ACK: consumed.
  out = runAll(tcpSegment(0x10, 1001, cookie + 1), 0);
  EXPECT_EQ(out[0].first.action, Action::kDrop);
  EXPECT_EQ(out[0].first.drop, DropReason::kDnsTcpConsumed);
  rte_pktmbuf_free(out[0].second);
  // The query (2-byte length, message) -> the answer, all acknowledged, with FIN.
  const auto q = dns::buildQuery("web.backend.svc.cluster.local", dns::kTypeA, 7);
  Bytes framed = {static_cast<uint8_t>(q.size() >> 8), static_cast<uint8_t>(q.size())};
  framed.insert(framed.end(), q.begin(), q.end());
  out = runAll(tcpSegment(0x18, 1001, cookie + 1, framed), 0);
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  hdr = rte_pktmbuf_mtod_offset(out[0].second, rte_ipv4_hdr*, kEthLen);
  tcp = reinterpret_cast<rte_tcp_hdr*>(hdr + 1);
  EXPECT_EQ(tcp->tcp_flags, 0x19) << "ACK PSH FIN";
  EXPECT_EQ(rte_be_to_cpu_32(tcp->sent_seq), cookie + 1);
  EXPECT_EQ(rte_be_to_cpu_32(tcp->recv_ack), 1001u + framed.size());
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(hdr, tcp), 0);
  auto answer = message(out[0].second, true);
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->answer.size(), 1u);
  EXPECT_EQ(answer->answer[0].data, "10.96.0.30");
  rte_pktmbuf_free(out[0].second);
  // Not our connection (wrong cookie): reset.
  out = runAll(tcpSegment(0x18, 1001, cookie + 5000000, framed), 0);
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  tcp = rte_pktmbuf_mtod_offset(out[0].second, rte_tcp_hdr*, kEthLen + kIpLen);
  EXPECT_EQ(tcp->tcp_flags, 0x04);
  EXPECT_EQ(counters.dnsTcpResets.read(), 1u);
  rte_pktmbuf_free(out[0].second);
  // A query split over two segments cannot be answered statelessly: reset.
  out = runAll(tcpSegment(0x18, 1001, cookie + 1, Bytes(framed.begin(), framed.begin() + 10)), 0);
  tcp = rte_pktmbuf_mtod_offset(out[0].second, rte_tcp_hdr*, kEthLen + kIpLen);
  EXPECT_EQ(tcp->tcp_flags, 0x04);
  rte_pktmbuf_free(out[0].second);
}

TEST_F(DnsStageTest, TcpWithAnUpstreamGoesToIt) {
  services(true);
  auto out = runAll(tcpSegment(0x02, 1000, 0), 0);
  ASSERT_EQ(out[0].first.action, Action::kTransmit);
  EXPECT_EQ(out[0].first.outPort, 1) << "the SYN is DNATed to the upstream";
  rte_pktmbuf_free(out[0].second);
}

}  // namespace
}  // namespace nodeplane::testing
