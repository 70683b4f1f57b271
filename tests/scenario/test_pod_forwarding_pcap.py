"""Scenario: the real nodeplane binary with two pods on net_pcap vdevs. Scapy writes what pod A
sends; the daemon's output pcaps are compared packet by packet with what scapy says must come out
(docs/architecture.md, "Testing"). Malformed input is checked against the daemon's named drop counters."""

import time

import pytest
from scapy.all import ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, Raw, rdpcap, wrpcap

from nplab import Lab

A_MAC, B_MAC = "0a:00:00:00:00:0a", "0a:00:00:00:00:0b"
A_IP, B_IP = "10.244.1.2", "10.244.1.3"
GATEWAY = "169.254.1.1"
NODE_IP = "192.168.50.10"
PCAP_MAC = "02:70:63:61:70:{:02x}"  # net_pcap's MAC: "\x02pcap" + port id


def forwarded(pkt, port_mac):
    """What pod B must receive for `pkt`: new MACs, TTL - 1, header checksum redone."""
    out = Ether(dst=B_MAC, src=port_mac) / pkt[IP].copy()
    out[IP].ttl -= 1
    del out[IP].chksum
    return Ether(bytes(out))


@pytest.fixture(scope="module")
def run():
    with Lab("scn") as lab:
        d = lab.daemon("scenario", NODE_IP, "10.244.1.0/24")
        empty = lab.tmp / "empty.pcap"
        wrpcap(str(empty), [])
        # Pod B first (port 0), so pod A's packets find it.
        b = d.call("pod.attach", {"namespace": "ns-stg", "name": "b", "containerId": "cb",
                                  "ip": B_IP, "mac": B_MAC,
                                  "devargs": f"net_pcap_b,rx_pcap={empty},"
                                             f"tx_pcap={lab.tmp / 'out_b.pcap'}"})
        assert b["gatewayMac"] == PCAP_MAC.format(b["port"]), "net_pcap MAC scheme changed"
        a_port_mac = PCAP_MAC.format(b["port"] + 1)
        gw = a_port_mac

        good = [
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, ttl=64) / TCP(sport=40000, dport=80, flags="S"),
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, ttl=17) / UDP(sport=5000, dport=53) / Raw(b"q" * 30),
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, options=b"\x01\x01\x01\x00") / ICMP(id=1, seq=1),
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, proto=47) / Raw(b"\x00" * 12),
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, flags="MF", frag=0) / UDP(sport=1, dport=2) / Raw(b"f" * 24),
            Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, frag=3) / Raw(b"g" * 24),
        ]
        padded = Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP) / UDP(sport=7, dport=7) / Raw(b"p")
        padded_bytes = bytes(padded) + b"\x00" * (60 - len(padded))
        arp_request = Ether(dst="ff:ff:ff:ff:ff:ff", src=A_MAC) / ARP(
            op=1, hwsrc=A_MAC, psrc=A_IP, pdst=GATEWAY)
        echo = Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=GATEWAY) / ICMP(type=8, id=77, seq=5) / Raw(b"ping")
        expiring = Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, ttl=1) / UDP(sport=33434, dport=33434) / Raw(b"t" * 16)

        def bad_checksum():
            p = Ether(bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP) / UDP()))
            raw = bytearray(bytes(p))
            raw[24] ^= 0xff
            return bytes(raw)

        def total_length_too_big():
            raw = bytearray(bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, len=900) / UDP()))
            return bytes(raw)

        bad = {
            "ipv4_bad_checksum": bad_checksum(),
            "ipv4_total_length_beyond_frame": total_length_too_big(),
            "eth_truncated": bytes(Ether(dst=gw, src=A_MAC))[:10],
            "ipv4_truncated": bytes(Ether(dst=gw, src=A_MAC, type=0x0800)) + b"\x45\x00\x00",
            "ipv6_unsupported": bytes(Ether(dst=gw, src=A_MAC) / IPv6(dst="fd00::1") / UDP()),
            "pod_vlan_tagged": bytes(Ether(dst=gw, src=A_MAC) / Dot1Q(vlan=9) / IP(src=A_IP, dst=B_IP) / UDP()),
            "pod_source_spoofed": bytes(Ether(dst=gw, src=A_MAC) / IP(src="10.244.1.66", dst=B_IP) / UDP()),
            "no_route": bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst="198.51.100.1") / UDP()),
            "pod_unknown": bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst="10.244.1.200") / UDP()),
            "eth_dst_not_local": bytes(Ether(dst="0a:11:22:33:44:55", src=A_MAC) / IP(src=A_IP, dst=B_IP) / UDP()),
            "tcp_bad_data_offset": bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP) / TCP(dataofs=3)),
            "udp_bad_length": bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP) / UDP(len=200)),
            "ipv4_fragment_without_l4": bytes(Ether(dst=gw, src=A_MAC) / IP(src=A_IP, dst=B_IP, proto=6, flags="MF") / Raw(b"\x00" * 8)),
        }

        inputs = [bytes(p) for p in good] + [padded_bytes, bytes(arp_request), bytes(echo),
                                              bytes(expiring)] + list(bad.values())
        in_a = lab.tmp / "in_a.pcap"
        wrpcap(str(in_a), [Ether(x) if len(x) >= 14 else Raw(x) for x in inputs])

        a = d.call("pod.attach", {"namespace": "ns-dev", "name": "a", "containerId": "ca",
                                  "ip": A_IP, "mac": A_MAC,
                                  "devargs": f"net_pcap_a,rx_pcap={in_a},"
                                             f"tx_pcap={lab.tmp / 'out_a.pcap'}"})
        assert a["gatewayMac"] == a_port_mac
        deadline = time.time() + 10
        while d.counters()["rx_packets"] < len(inputs) and time.time() < deadline:
            time.sleep(0.05)
        counters, drops = d.counters(), d.drops()
        assert d.stop() == 0, d.log_text()
        yield {
            "lab": lab, "good": good, "padded": padded, "arp": arp_request, "echo": echo,
            "expiring": expiring, "bad": bad, "inputs": inputs, "counters": counters,
            "drops": drops, "a_port_mac": a_port_mac, "b_port_mac": b["gatewayMac"],
            "out_a": [bytes(p) for p in rdpcap(str(lab.tmp / "out_a.pcap"))],
            "out_b": [bytes(p) for p in rdpcap(str(lab.tmp / "out_b.pcap"))],
        }


def test_every_input_packet_was_received(run):
    assert run["counters"]["rx_packets"] == len(run["inputs"])


def test_pod_b_receives_exactly_the_forwarded_packets(run):
    expected = [bytes(forwarded(p, run["b_port_mac"])) for p in run["good"]]
    expected.append(bytes(forwarded(run["padded"], run["b_port_mac"])))  # padding stripped
    assert run["out_b"] == expected


def test_pod_a_gets_arp_reply_echo_reply_and_time_exceeded(run):
    out = [Ether(p) for p in run["out_a"]]
    assert len(out) == 3, [o.summary() for o in out]
    arp, echo, icmp_err = out
    assert arp[ARP].op == 2 and arp[ARP].psrc == GATEWAY and arp[ARP].hwsrc == run["a_port_mac"]
    assert arp[ARP].pdst == A_IP and arp[ARP].hwdst == A_MAC and arp.dst == A_MAC

    assert echo[IP].src == GATEWAY and echo[IP].dst == A_IP
    assert echo[ICMP].type == 0 and echo[ICMP].id == 77 and echo[ICMP].seq == 5
    assert bytes(echo[ICMP].payload) == b"ping"
    check = echo.copy()
    del check[IP].chksum, check[ICMP].chksum
    assert bytes(Ether(bytes(check))) == bytes(echo), "echo reply checksums"

    assert icmp_err.dst == A_MAC and icmp_err.src == run["a_port_mac"]
    assert icmp_err[IP].src == NODE_IP and icmp_err[IP].dst == A_IP
    assert icmp_err[ICMP].type == 11 and icmp_err[ICMP].code == 0
    quoted = bytes(icmp_err[ICMP].payload)
    assert quoted == bytes(run["expiring"][IP]), "quotes the whole original datagram"
    check = icmp_err.copy()
    del check[IP].chksum, check[ICMP].chksum
    assert bytes(Ether(bytes(check))) == bytes(icmp_err), "ICMP error checksums"


def test_every_malformed_packet_lands_on_its_own_counter(run):
    drops = run["drops"]
    for reason in run["bad"]:
        assert drops.get(reason, 0) >= 1, f"{reason} not counted: {drops}"
    assert drops.get("ipv4_ttl_expired") == 1
    total_dropped = sum(drops.values())
    assert total_dropped == len(run["bad"]) + 1  # + the expiring packet
