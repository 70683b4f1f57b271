// Every reason a packet leaves the data plane without being transmitted, from one table.
// The same table feeds the enum, the counters, npctl and the control protocol
// (docs/architecture.md, "Named drop reasons"). Reasons are never renumbered on the wire: clients
// see names, not numbers.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace nodeplane {

// X(enumerator, counter name, help)
#define NP_FOREACH_DROP_REASON(X)                                                                  \
  X(kNone, "none", "not dropped")                                                                  \
  X(kEthTruncated, "eth_truncated", "frame shorter than its Ethernet/802.1Q header")               \
  X(kEthVlanTooDeep, "eth_vlan_too_deep", "more than two 802.1Q/802.1ad tags")                     \
  X(kEthertypeUnsupported, "ethertype_unsupported", "neither IPv4 nor ARP (e.g. LLDP)")            \
  X(kEthDstNotLocal, "eth_dst_not_local", "unicast frame not addressed to the port's MAC")         \
  X(kHeadersNotContiguous, "headers_not_contiguous", "headers span mbuf segments")                 \
  X(kIpv6Unsupported, "ipv6_unsupported", "IPv6 is not supported yet")                             \
  X(kArpMalformed, "arp_malformed", "ARP not Ethernet/IPv4 or shorter than 28 bytes")              \
  X(kArpNotAnswered, "arp_not_answered",                                                           \
    "ARP reply, gratuitous ARP or probe for the pod's own address: consumed")                      \
  X(kIpv4Truncated, "ipv4_truncated", "shorter than a 20-byte IPv4 header")                        \
  X(kIpv4BadVersion, "ipv4_bad_version", "IPv4 ethertype but version is not 4")                    \
  X(kIpv4BadIhl, "ipv4_bad_ihl", "IHL below 5")                                                    \
  X(kIpv4IhlBeyondPacket, "ipv4_ihl_beyond_packet", "IHL points past the end of the frame")        \
  X(kIpv4BadTotalLength, "ipv4_bad_total_length", "total length below the header length")          \
  X(kIpv4TotalLengthBeyondFrame, "ipv4_total_length_beyond_frame",                                 \
    "total length larger than the frame")                                                          \
  X(kIpv4BadChecksum, "ipv4_bad_checksum", "IPv4 header checksum wrong")                           \
  X(kIpv4FragmentWithoutL4, "ipv4_fragment_without_l4",                                            \
    "first fragment too short for its L4 header, or a fragment overlapping it (RFC 1858)")         \
  X(kIpv4SourceInvalid, "ipv4_source_invalid",                                                     \
    "source is zero, multicast or broadcast (any port, in tunnels too)")                           \
  X(kIpv4DstMulticast, "ipv4_dst_multicast", "multicast and broadcast are not routed")             \
  X(kIpv4TtlExpired, "ipv4_ttl_expired", "TTL ran out; ICMP time-exceeded sent (rate-limited)")    \
  X(kTcpTruncated, "tcp_truncated", "TCP header shorter than 20 bytes or its data offset")         \
  X(kTcpBadDataOffset, "tcp_bad_data_offset", "TCP data offset below 5")                           \
  X(kUdpTruncated, "udp_truncated", "UDP header shorter than 8 bytes")                             \
  X(kUdpBadLength, "udp_bad_length", "UDP length below 8 or beyond the IPv4 payload")              \
  X(kIcmpTruncated, "icmp_truncated", "ICMP header shorter than 8 bytes")                          \
  X(kSctpTruncated, "sctp_truncated", "SCTP common header shorter than 12 bytes")                  \
  X(kPodVlanTagged, "pod_vlan_tagged", "802.1Q-tagged frame from a pod")                           \
  X(kPodSourceSpoofed, "pod_source_spoofed", "source IPv4 is not the sending pod's address")       \
  X(kPodFrameTruncated, "pod_frame_truncated",                                                     \
    "frame from a pod cut short: larger than a ring frame, and its socket's queue full")           \
  X(kPodRxNoMbuf, "pod_rx_no_mbuf", "frame from a pod dropped for want of mbufs")                  \
  X(kPodVnetGsoUnsupported, "pod_vnet_gso_unsupported",                                            \
    "virtio-net header: a GSO type other than TCPv4, unknown flags, or TSO without NEEDS_CSUM")    \
  X(kPodVnetGsoWithoutSize, "pod_vnet_gso_without_size",                                           \
    "virtio-net header: a GSO type with gso_size 0")                                               \
  X(kPodVnetHeaderBeyondPacket, "pod_vnet_hdr_len_beyond_packet",                                  \
    "virtio-net header: hdr_len past the end of the packet")                                       \
  X(kPodVnetChecksumBeyondPacket, "pod_vnet_csum_beyond_packet",                                   \
    "virtio-net header: csum_start/csum_offset past the packet, or not TCP's or UDP's offset")     \
  X(kPodTxRefused, "pod_tx_refused",                                                               \
    "packet to a pod its kernel refused (sendmmsg error other than a full socket)")                \
  X(kGsoTooManySegments, "gso_too_many_segments",                                                  \
    "TCP super-packet that segments into more packets than one transmit takes (tiny gso_size)")    \
  X(kGsoNoMbuf, "gso_no_mbuf", "TCP super-packet not segmented for want of mbufs")                 \
  X(kOffloadHeadersUnreadable, "offload_headers_unreadable",                                       \
    "packet with offloads whose headers are not IPv4/TCP|UDP in its first segment")                \
  X(kGatewayUnsupported, "gateway_unsupported",                                                    \
    "to the gateway address but not an ICMP echo request")                                         \
  X(kNoRoute, "no_route", "destination outside every known prefix")                                \
  X(kPodUnknown, "pod_unknown", "destination in this node's pod CIDR but no such pod")             \
  X(kPortNotServed, "port_not_served", "received on a port that has no role in the snapshot")      \
  X(kUplinkVlanTagged, "uplink_vlan_tagged", "802.1Q-tagged frame on the uplink (untagged only)")  \
  X(kUplinkNotForNode, "uplink_not_for_node", "IPv4 on the uplink not addressed to this node")     \
  X(kHostPathUnavailable, "host_path_unavailable",                                                 \
    "traffic for the node itself other than ping/VXLAN; no host path to hand it to")               \
  X(kUplinkForHostKernel, "uplink_for_host_kernel",                                                \
    "for the node's address on a shared uplink: the node's kernel takes its own copy")             \
  X(kSourceIsNode, "source_is_node",                                                               \
    "from the uplink or a tunnel with this node's own address as source (spoofed: policy lets "    \
    "the node reach its pods)")                                                                    \
  X(kHostSourceNotNode, "host_source_not_node",                                                    \
    "from the host port with a source other than the node's address (no way back)")                \
  X(kHostNoRoute, "host_no_route",                                                                 \
    "from the host port to outside the cluster (not routed back out without "                      \
    "--host-default-route)")                                                                       \
  X(kVxlanOuterFragment, "vxlan_outer_fragment", "fragmented VXLAN datagram (not reassembled)")    \
  X(kVxlanBadUdpLength, "vxlan_bad_udp_length", "outer UDP length disagrees with the IPv4 length") \
  X(kVxlanTruncated, "vxlan_truncated", "shorter than a VXLAN header")                             \
  X(kVxlanNoIBit, "vxlan_no_i_bit", "VXLAN flags without the I (valid VNI) bit")                   \
  X(kVxlanUnknownVni, "vxlan_unknown_vni", "VXLAN network identifier not ours")                    \
  X(kVxlanUnknownSource, "vxlan_unknown_source", "outer source is not a known node's endpoint")    \
  X(kVxlanInnerTruncated, "vxlan_inner_truncated", "inner Ethernet or IPv4/ARP header cut short")  \
  X(kVxlanInnerNotIpv4, "vxlan_inner_not_ipv4_arp", "inner frame neither IPv4 nor ARP")            \
  X(kVxlanInnerDstMac, "vxlan_inner_dst_mac", "inner frame not addressed to our VTEP MAC")         \
  X(kVxlanInnerArpNotOurs, "vxlan_inner_arp_not_ours",                                             \
    "inner ARP not a request for an address of this node's pod CIDR")                              \
  X(kOverlayLoop, "overlay_loop", "arrived from the overlay, routed back into it")                 \
  X(kFragmentationNeeded, "fragmentation_needed",                                                  \
    "larger than the overlay MTU with DF set; ICMP fragmentation-needed sent (rate-limited)")      \
  X(kFragmentationFailed, "fragmentation_failed", "could not fragment an oversized packet")        \
  X(kEncapNoHeadroom, "encap_no_headroom", "no room in front of the packet for VXLAN headers")     \
  X(kNeighborUnresolved, "neighbor_unresolved", "the underlay next hop did not answer ARP")        \
  X(kClusterLinkUnresolved, "cluster_link_unresolved",                                             \
    "for another cluster, whose gateway's MAC is not known yet (never sent unsealed)")             \
  X(kEspEncapFailed, "esp_encap_failed", "could not be sealed for another cluster (no room)")      \
  X(kEspUnknownSpi, "esp_unknown_spi",                                                             \
    "ESP to this node with an SPI of no SA (from a peer gateway: perhaps a new generation)")       \
  X(kEspGenerationRefused, "esp_generation_refused",                                               \
    "ESP naming a new SA generation that did not open with the peer's secret (control thread)")    \
  X(kEspGenerationStale, "esp_generation_stale",                                                   \
    "ESP naming an SA generation older than the one learned, or too far from this clock "          \
    "(control)")                                                                                   \
  X(kEspReplayed, "esp_replayed", "ESP replayed, behind the anti-replay window, or malformed")     \
  X(kEspBadIcv, "esp_bad_icv", "ESP whose integrity check failed (wrong key or altered)")          \
  X(kClusterGatewayUnknown, "cluster_gateway_unknown",                                             \
    "for another cluster, but this cluster's gateway node is not a known node")                    \
  X(kHeartbeatMalformed, "heartbeat_malformed",                                                    \
    "to the heartbeat port but not a heartbeat of a watched gateway (control thread)")             \
  X(kGlobalAddressUnknown, "global_address_unknown",                                               \
    "to a global address (Globalnet) that is neither this cluster's egress nor an export")         \
  X(kGlobalSourceUntranslated, "global_source_untranslated",                                       \
    "for a Globalnet peer from an address with no global one (never sent untranslated)")           \
  X(kNeighborQueueFull, "neighbor_queue_full", "too many packets already waiting for ARP")         \
  X(kPuntQueueFull, "punt_queue_full", "the control thread's queue from this worker was full")     \
  X(kServiceNoEndpoints, "service_no_endpoints",                                                   \
    "service without a usable endpoint: refused (TCP RST / ICMP port-unreachable, rate-limited)")  \
  X(kServiceNoLocalEndpoint, "service_no_local_endpoint",                                          \
    "traffic policy Local and no endpoint on this node")                                           \
  X(kServiceUnknown, "service_unknown", "to a service-CIDR address and port no service has")       \
  X(kConntrackFull, "conntrack_full",                                                              \
    "connection table full of established flows: nothing evictable")                               \
  X(kConntrackInvalid, "conntrack_invalid", "a TCP segment that cannot open a tracked flow")       \
  X(kMasqueradeNoPort, "masquerade_no_port",                                                       \
    "every SNAT source port towards that destination is taken (per backend: npctl services)")      \
  X(kMasqueradeUnsupported, "masquerade_unsupported",                                              \
    "leaving the cluster but not TCP, UDP or ICMP echo (or a later fragment): not translatable")   \
  X(kFragmentUntracked, "fragment_untracked",                                                      \
    "a later fragment to a service or the node: fragments are not reassembled yet")                \
  X(kPolicyDeniedEgress, "policy_denied_egress",                                                   \
    "the source pod's NetworkPolicies allow no such egress")                                       \
  X(kPolicyDeniedIngress, "policy_denied_ingress",                                                 \
    "the destination pod's NetworkPolicies allow no such ingress")                                 \
  X(kL7Denied, "l7_denied", "an L7 rule reset the flow (TCP RST both ways); later segments too")   \
  X(kL7OutOfOrder, "l7_out_of_order",                                                              \
    "client segment beyond the next byte the L7 scanner expects: dropped so it is resent in "      \
    "order")                                                                                       \
  X(kL7NoState, "l7_no_flow_state",                                                                \
    "no free L7 stream state for a flow L7 rules cover (--l7-flows)")                              \
  X(kL7WrongWorker, "l7_wrong_worker",                                                             \
    "client segment of an L7-scanned flow seen by a worker other than the flow's owner")           \
  X(kTxQueueFull, "tx_queue_full", "the output queue did not accept the packet")                   \
  X(kDnsTcpConsumed, "dns_tcp_consumed",                                                           \
    "cluster DNS over TCP, no upstream: a bare ACK or RST the stateless responder consumed")       \
  X(kUnclaimed, "unclaimed", "no stage decided the packet's fate (a bug: please report)")

enum class DropReason : uint8_t {
#define NP_DROP_ENUM(id, name, help) id,
  NP_FOREACH_DROP_REASON(NP_DROP_ENUM)
#undef NP_DROP_ENUM
};

struct DropReasonInfo {
  DropReason id;
  std::string_view name;
  std::string_view help;
};

inline constexpr std::array kDropReasons = {
#define NP_DROP_INFO(id, name, help) DropReasonInfo{DropReason::id, name, help},
    NP_FOREACH_DROP_REASON(NP_DROP_INFO)
#undef NP_DROP_INFO
};

inline constexpr size_t kDropReasonCount = kDropReasons.size();

constexpr const DropReasonInfo& dropReasonInfo(DropReason r) {
  return kDropReasons[static_cast<size_t>(r)];
}

std::optional<DropReason> dropReasonByName(std::string_view name);

}  // namespace nodeplane
