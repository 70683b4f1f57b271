"""Pods on two nodeplane nodes reach each other over the VXLAN overlay nodeplane builds itself.

Each node is a network namespace with its own daemon; their uplinks (af_packet on `ul0`) meet on
a bridge, the lab's underlay. Pods are attached through nodeplane-cni on their node. The node
tables are set over the control socket, as the agent will."""

import time

import pytest

from nplab import Lab
from nplab.lab import run

CPU_IP, GPU_IP = "192.168.50.10", "192.168.50.11"


def start_capture(lab, netns, iface, pcap, capture_filter):
    """tcpdump into `pcap`, returned once it is capturing (it writes the file header then)."""
    log = open(str(pcap) + ".log", "w")
    cap = lab.popen(["ip", "netns", "exec", netns, "tcpdump", "--immediate-mode", "-Z", "root", "-U", "-n", "-i", iface,
                     "-w", str(pcap), capture_filter], stderr=log)
    deadline = time.time() + 10
    while time.time() < deadline and not (pcap.exists() and pcap.stat().st_size >= 24):
        time.sleep(0.05)
    time.sleep(0.2)
    return cap


def set_pod_mtu(pod, mtu):
    """A pod whose interface claims more than the overlay carries (both veth ends: the host end
    would otherwise drop the frames before nodeplane sees them)."""
    pod.exec(["ip", "link", "set", "eth0", "mtu", str(mtu)])
    pod.daemon.exec(["ip", "link", "set", pod.result["interfaces"][0]["name"], "mtu", str(mtu)])
    if mtu <= 1450:
        pod.exec(["ip", "route", "flush", "cache"], check=False)


@pytest.fixture(scope="module")
def cluster():
    with Lab("x") as lab:
        cpu = lab.node("node-cpu", f"{CPU_IP}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16")
        gpu = lab.node("node-gpu", f"{GPU_IP}/24", "10.244.2.0/24", cluster_cidr="10.244.0.0/16")
        for d, other in ((cpu, gpu), (gpu, cpu)):
            d.set_node(other)
            d.set_node(d)  # its own entry too, as the agent pushes every node
        pods = {
            "c1": lab.add_pod(cpu, "ns-dev", "c1"),
            "c4": lab.add_pod(cpu, "ns-stg", "c4"),
            "c5": lab.add_pod(gpu, "ns-ml", "c5"),
            "c6": lab.add_pod(gpu, "ns-ml", "c6"),
        }
        for p in pods.values():
            p.serve(tcp=[7000], udp=[7001], http=[8080])
        yield lab, cpu, gpu, pods


def test_nodes_resolve_each_other(cluster):
    _, cpu, gpu, _ = cluster
    deadline = time.time() + 5
    while time.time() < deadline:
        nodes = {n["name"]: n for n in cpu.call("node.list")["nodes"]}
        if nodes["node-gpu"]["resolved"]:
            break
        time.sleep(0.1)
    assert nodes["node-gpu"]["resolved"] and nodes["node-cpu"]["self"]
    neigh = {n["ip"]: n for n in cpu.call("neighbors")["neighbors"]}
    assert neigh[GPU_IP]["state"] == "reachable"


@pytest.mark.parametrize("src,dst", [("c1", "c5"), ("c5", "c1"), ("c4", "c6"), ("c6", "c4")])
def test_ping_across_nodes(cluster, src, dst):
    *_, pods = cluster
    assert pods[src].ping(pods[dst].ip)


@pytest.mark.parametrize("src,dst", [("c1", "c6"), ("c5", "c4")])
def test_tcp_and_udp_across_nodes(cluster, src, dst):
    *_, pods = cluster
    r = pods[src].probe("tcp", pods[dst].ip, "7000", "--bytes", "100000")
    assert r.returncode == 0, r.stdout
    r = pods[src].probe("udp", pods[dst].ip, "7001")
    assert r.returncode == 0, r.stdout


def test_curl_across_nodes_and_namespaces(cluster):
    *_, pods = cluster
    r = pods["c4"].exec(["curl", "-sS", "--max-time", "5", f"http://{pods['c5'].ip}:8080/"],
                        check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ns-ml/c5", r.stderr


def test_large_tcp_transfer_across_nodes(cluster):
    *_, pods = cluster
    r = pods["c1"].probe("tcp", pods["c5"].ip, "7000", "--bytes", str(16 << 20), "--timeout", "60",
                         timeout=90)
    assert r.returncode == 0, r.stdout


def test_ttl_is_decremented_once_per_node(cluster):
    *_, pods = cluster
    r = pods["c1"].exec(["ping", "-n", "-c", "1", "-W", "2", pods["c5"].ip])
    assert "ttl=62" in r.stdout, r.stdout  # c5's 64, minus node-gpu, minus node-cpu


def test_the_wire_carries_vxlan_with_flow_entropy(cluster):
    """Outer packets as the RFC and the kernel expect them: UDP 4789, VNI 1, DF, no UDP checksum,
    source port from the inner flow (different flows, different ports)."""
    lab, cpu, gpu, pods = cluster
    pcap = lab.tmp / "ul0.pcap"
    # Captured where it arrives: af_packet sends with PACKET_QDISC_BYPASS, past the sender's taps.
    cap = start_capture(lab, gpu.netns, "ul0", pcap, "udp port 4789")
    for port in (7000, 8080):
        pods["c1"].exec(["curl", "-s", "--max-time", "3", f"http://{pods['c5'].ip}:{port}/"],
                        check=False)
    pods["c1"].ping(pods["c5"].ip, count=1)
    time.sleep(0.5)
    cap.terminate()
    cap.wait()
    from scapy.all import IP, UDP, rdpcap
    from scapy.layers.vxlan import VXLAN
    out = [p for p in rdpcap(str(pcap)) if p[IP].src == CPU_IP]
    assert out, "no VXLAN captured: " + open(str(pcap) + ".log").read()
    for p in out:
        assert p[UDP].dport == 4789 and p[UDP].chksum == 0
        assert p[IP].flags.DF and p[IP].dst == GPU_IP
        assert p[VXLAN].vni == 1 and p[VXLAN].flags & 0x08
        assert 49152 <= p[UDP].sport <= 65535
        inner = p[VXLAN].payload
        assert inner.src == "0e:4e:c0:a8:32:0a" and inner.dst == "0e:4e:c0:a8:32:0b"
    assert len({p[UDP].sport for p in out}) >= 2, "flows share one source port"


def test_df_larger_than_the_overlay_gets_fragmentation_needed(cluster):
    *_, pods = cluster
    c1 = pods["c1"]
    r = c1.exec(["ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", pods["c5"].ip],
                check=False)
    # The pod's own MTU (1450) stops it first: nodeplane's CNI leaves room for VXLAN.
    assert "message too long" in (r.stdout + r.stderr).lower() or "mtu = 1450" in r.stdout


def test_path_mtu_discovery_through_the_overlay(cluster):
    """A pod whose interface claims 1500 bytes (misconfigured, or a host path) sends DF datagrams
    too big for the tunnel: nodeplane answers ICMP fragmentation-needed with MTU 1450 and the
    sender's kernel converges: the transfer completes at 1450."""
    _, cpu, _, pods = cluster
    c4 = pods["c4"]
    set_pod_mtu(c4, 1500)
    try:
        before = cpu.drops().get("fragmentation_needed", 0)
        r = c4.probe("udp-pmtu", pods["c6"].ip, "7001", "--size", "1472", "--count", "20",
                     timeout=60)
        assert r.returncode == 0, r.stdout
        assert "path_mtu=1450" in r.stdout, r.stdout
        assert cpu.drops().get("fragmentation_needed", 0) > before
        r = c4.exec(["ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", pods["c6"].ip],
                    check=False)
        assert "mtu = 1450" in r.stdout.lower() or "message too long" in (r.stdout + r.stderr)
    finally:
        set_pod_mtu(c4, 1450)


def test_oversized_without_df_is_fragmented_by_the_node(cluster):
    """Without DF a too-large inner packet is fragmented (inner IPv4 fragments, each encapsulated);
    the receiving pod reassembles."""
    _, cpu, _, pods = cluster
    c1 = pods["c1"]
    set_pod_mtu(c1, 1500)
    try:
        before = cpu.counters().get("fragments_sent", 0)
        assert c1.exec(["ping", "-n", "-c", "2", "-W", "2", "-M", "dont", "-s", "1472",
                        pods["c6"].ip], check=False).returncode == 0
        assert cpu.counters().get("fragments_sent", 0) >= before + 4
    finally:
        set_pod_mtu(c1, 1450)


def test_syn_mss_is_clamped_to_the_overlay(cluster):
    """A pod with a 1500-byte MTU announces MSS 1460; the peer must see at most 1410."""
    lab, _, gpu, pods = cluster
    c1 = pods["c1"]
    set_pod_mtu(c1, 1500)
    pcap = lab.tmp / "syn.pcap"
    peer = pods["c6"]
    cap = start_capture(lab, peer.netns, "eth0", pcap, "tcp[tcpflags] & tcp-syn != 0")
    try:
        assert c1.probe("tcp", peer.ip, "7000").returncode == 0
    finally:
        set_pod_mtu(c1, 1450)
        time.sleep(0.3)
        cap.terminate()
        cap.wait()
    from scapy.all import TCP, rdpcap
    syns = [p for p in rdpcap(str(pcap)) if p[TCP].flags == "S"]
    assert syns
    mss = dict(syns[0][TCP].options)["MSS"]
    assert mss == 1410, mss


def test_packets_wait_for_arp_instead_of_being_dropped(cluster):
    """A new node's endpoint is unresolved when the first packet arrives: it is held, not lost."""
    lab, cpu, gpu, pods = cluster
    # Forget node-gpu and learn it again: its neighbour entry starts incomplete.
    cpu.call("node.delete", {"name": "node-gpu"})
    assert not pods["c1"].ping(pods["c5"].ip, count=1, timeout=1)
    cpu.set_node(gpu)
    r = pods["c1"].exec(["ping", "-n", "-c", "1", "-W", "3", pods["c5"].ip], check=False)
    assert r.returncode == 0, "the first packet after node.set must arrive"
    assert cpu.counters()["punted"] >= 1


def test_unknown_sources_and_bad_vxlan_are_counted(cluster):
    """Frames on the underlay from outside the cluster: each bad class on its own counter."""
    lab, cpu, _, pods = cluster
    from scapy.all import IP, UDP, Ether, Raw
    from scapy.layers.vxlan import VXLAN
    cpu_mac = run(["ip", "-n", cpu.netns, "-br", "link", "show", "ul0"]).stdout.split()[2]
    intruder = lab.add_node_netns("intruder", "192.168.50.99/24")
    inner = Ether(dst="0e:4e:c0:a8:32:0a", src="02:00:00:00:00:99") / IP(
        src="10.244.2.50", dst=pods["c1"].ip) / UDP(sport=1, dport=7001) / Raw(b"x")
    outer = Ether(dst=cpu_mac) / IP(src="192.168.50.11", dst=CPU_IP)
    frames = {
        "vxlan_unknown_source": Ether(dst=cpu_mac) / IP(src="192.168.50.99", dst=CPU_IP) /
        UDP(sport=50000, dport=4789) / VXLAN(vni=1) / inner,
        "vxlan_unknown_vni": outer / UDP(sport=50000, dport=4789) / VXLAN(vni=7) / inner,
        "vxlan_no_i_bit": outer / UDP(sport=50000, dport=4789) / VXLAN(vni=1, flags=0) / inner,
        "vxlan_truncated": outer / UDP(sport=50000, dport=4789) / Raw(b"\x08\x00\x00"),
        "vxlan_inner_truncated": outer / UDP(sport=50000, dport=4789) / VXLAN(vni=1) / Raw(b"\x00" * 10),
        "vxlan_inner_not_ipv4_arp": outer / UDP(sport=50000, dport=4789) / VXLAN(vni=1) /
        Ether(dst="0e:4e:c0:a8:32:0a", type=0x86dd) / Raw(b"\x60" + b"\x00" * 39),
        "vxlan_inner_dst_mac": outer / UDP(sport=50000, dport=4789) / VXLAN(vni=1) /
        Ether(dst="0a:0b:0c:0d:0e:0f") / inner.payload,
        # Longer than the datagram is caught by the generic UDP check; shorter is VXLAN's own.
        "vxlan_bad_udp_length": outer / UDP(sport=50000, dport=4789, len=30) / VXLAN(vni=1) / inner,
        "uplink_not_for_node": Ether(dst=cpu_mac) / IP(src="192.168.50.99", dst="192.168.50.77") /
        UDP(dport=4789),
        "host_path_unavailable": Ether(dst=cpu_mac) / IP(src="192.168.50.99", dst=CPU_IP) /
        UDP(sport=5, dport=22),
    }
    before = cpu.drops()
    script = lab.tmp / "send.py"
    import pickle
    (lab.tmp / "frames.pkl").write_bytes(pickle.dumps([bytes(f) for f in frames.values()]))
    script.write_text("import pickle,sys\nfrom scapy.all import Ether, sendp\n"
                      f"frames = pickle.load(open('{lab.tmp / 'frames.pkl'}','rb'))\n"
                      "sendp([Ether(f) for f in frames], iface='ul0', verbose=False)\n")
    run(["ip", "netns", "exec", intruder, "/usr/bin/python3", str(script)])
    time.sleep(0.5)
    after = cpu.drops()
    for reason in frames:
        assert after.get(reason, 0) > before.get(reason, 0), f"{reason} not counted: {after}"


def test_node_answers_ping_on_its_underlay_address(cluster):
    lab, cpu, _, _ = cluster
    ns = lab.add_node_netns("pinger", "192.168.50.98/24")
    assert run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", CPU_IP],
               check=False).returncode == 0


def test_node_table_rejects_bad_entries_and_keeps_the_good_state(cluster):
    _, cpu, _, pods = cluster
    bad = [
        ({"name": "x1", "ip": "192.168.50.30", "podCidrs": ["10.244.1.0/25"]}, "overlaps"),
        ({"name": "x2", "ip": "192.168.50.11", "podCidrs": ["10.244.9.0/24"]}, "already belongs"),
        ({"name": "x3", "ip": "192.168.50.31", "podCidrs": ["10.245.0.0/24"]}, "cluster CIDR"),
        ({"name": "x4", "ip": "192.168.50.32", "podCidrs": ["10.244.2.128/25"]}, "node-gpu"),
        ({"name": "x5", "ip": "300.1.1.1", "podCidrs": ["10.244.9.0/24"]}, "'ip'"),
        ({"name": "x6", "ip": "192.168.50.33", "podCidrs": ["10.244.9.1/24"]}, "podCidrs"),
    ]
    for args, expected in bad:
        with pytest.raises(RuntimeError, match=expected):
            cpu.call("node.set", args)
    assert pods["c1"].ping(pods["c5"].ip)


def test_no_unexplained_drops(cluster):
    _, cpu, gpu, _ = cluster
    expected = {"ipv6_unsupported", "fragmentation_needed", "no_route", "pod_unknown",
                "ipv4_dst_multicast", "arp_not_answered", "uplink_not_for_node",
                "host_path_unavailable", "vxlan_unknown_source", "vxlan_unknown_vni",
                "vxlan_no_i_bit", "vxlan_truncated", "vxlan_inner_truncated",
                "vxlan_inner_not_ipv4_arp", "vxlan_inner_dst_mac", "vxlan_bad_udp_length",
                # the underlay bridge's chatter: IGMP reports from 0.0.0.0 (an interface
                # without an address yet), frames for the other hosts of the bridge
                "ipv4_source_invalid", "eth_dst_not_local"}
    for d in (cpu, gpu):
        unexpected = {k: v for k, v in d.drops().items() if k not in expected}
        assert not unexpected, (d.node_name, unexpected)
