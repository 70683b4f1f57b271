"""One nodeplane node and one plain Linux node with a kernel `vxlan` device exchange pod traffic
in both directions, set up exactly as the README documents it for mixed clusters.

The Linux node routes its own pod (a namespace behind a veth, kernel forwarding) and reaches
nodeplane's pod CIDR with a route via the CIDR's network address on vxlan0, a permanent neighbour
entry for that address at nodeplane's VTEP MAC, and an fdb entry for that MAC at nodeplane's
node address. nodeplane knows the Linux node from node.set with its vxlan0 MAC."""

import pytest

from nplab import Lab, Pod
from nplab.lab import run

NP_IP, KERNEL_IP = "192.168.50.10", "192.168.50.20"
NP_VTEP = "0e:4e:c0:a8:32:0a"  # nodeplane's default: 0e:4e + its node address
KERNEL_VTEP = "0e:4e:c0:a8:32:14"


def kernel_node(lab, static_neighbor=True):
    ns = lab.add_node_netns("kern", f"{KERNEL_IP}/24")
    sh = lambda *cmd: run(["ip", "netns", "exec", ns] + list(cmd))
    sh("ip", "link", "add", "vxlan0", "type", "vxlan", "id", "1", "dstport", "4789", "local",
       KERNEL_IP, "dev", "ul0", "nolearning")
    sh("ip", "link", "set", "vxlan0", "address", KERNEL_VTEP, "mtu", "1450", "up")
    sh("ip", "addr", "add", "10.244.3.0/32", "dev", "vxlan0")
    sh("ip", "route", "add", "10.244.1.0/24", "via", "10.244.1.0", "dev", "vxlan0", "onlink")
    if static_neighbor:
        sh("ip", "neigh", "add", "10.244.1.0", "lladdr", NP_VTEP, "dev", "vxlan0", "nud",
           "permanent")
        sh("bridge", "fdb", "append", NP_VTEP, "dev", "vxlan0", "dst", NP_IP)
    else:
        # No neighbour entry: the kernel asks for 10.244.1.0 inside the tunnel (flooded to the
        # all-zero fdb entry) and nodeplane answers with its VTEP MAC.
        sh("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", NP_IP)
        sh("bridge", "fdb", "append", NP_VTEP, "dev", "vxlan0", "dst", NP_IP)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    # (The lab turned TX checksum offload off on ul0: over veth nothing would finish the
    # encapsulated inner TCP checksum; a real NIC fills it in.)
    # A pod of the kernel node.
    pod_ns = lab.add_netns("kpod")
    run(["ip", "link", "add", "kp0", "netns", ns, "type", "veth", "peer", "name", "eth0",
         "netns", pod_ns])
    sh("ip", "addr", "add", "10.244.3.1/24", "dev", "kp0")
    sh("ip", "link", "set", "kp0", "up")
    run(["ip", "-n", pod_ns, "addr", "add", "10.244.3.2/24", "dev", "eth0"])
    run(["ip", "-n", pod_ns, "link", "set", "eth0", "mtu", "1450", "up"])
    run(["ip", "-n", pod_ns, "route", "add", "default", "via", "10.244.3.1"])
    return ns, Pod(lab, "kube-system", "kpod", pod_ns, "kpod", ip="10.244.3.2")


@pytest.fixture(scope="module", params=["static-neighbor", "arp-in-tunnel"])
def mixed(request):
    with Lab("k") as lab:
        np_node = lab.node("node-cpu", f"{NP_IP}/24", "10.244.1.0/24",
                           cluster_cidr="10.244.0.0/16")
        kern_ns, kpod = kernel_node(lab, static_neighbor=request.param == "static-neighbor")
        np_node.call("node.set", {"name": "node-kernel", "ip": KERNEL_IP,
                                  "podCidrs": ["10.244.3.0/24"], "vtepMac": KERNEL_VTEP})
        c1 = lab.add_pod(np_node, "ns-dev", "c1")
        c1.serve(tcp=[7000], http=[8080])
        kpod.serve(tcp=[7000], http=[8080])
        yield lab, np_node, kern_ns, c1, kpod


def test_ping_both_ways(mixed):
    _, _, _, c1, kpod = mixed
    assert kpod.ping(c1.ip, count=3), "kernel pod -> nodeplane pod"
    assert c1.ping(kpod.ip, count=3), "nodeplane pod -> kernel pod"


def test_tcp_both_ways(mixed):
    _, _, _, c1, kpod = mixed
    r = c1.probe("tcp", kpod.ip, "7000", "--bytes", str(4 << 20), "--timeout", "30", timeout=60)
    assert r.returncode == 0, r.stdout
    r = kpod.probe("tcp", c1.ip, "7000", "--bytes", str(4 << 20), "--timeout", "30", timeout=60)
    assert r.returncode == 0, r.stdout


def test_http_both_ways(mixed):
    _, _, _, c1, kpod = mixed
    r = kpod.exec(["curl", "-sS", "--max-time", "5", f"http://{c1.ip}:8080/"], check=False)
    assert r.stdout.strip() == "ns-dev/c1", r.stderr
    r = c1.exec(["curl", "-sS", "--max-time", "5", f"http://{kpod.ip}:8080/"], check=False)
    assert r.stdout.strip() == "kube-system/kpod", r.stderr


def test_the_linux_node_itself_reaches_the_pod(mixed):
    """The kernel node sources from its vxlan0 address (10.244.3.0): kubelet-style probes."""
    _, _, kern_ns, c1, _ = mixed
    r = run(["ip", "netns", "exec", kern_ns, "curl", "-sS", "--max-time", "5",
             f"http://{c1.ip}:8080/"], check=False)
    assert r.stdout.strip() == "ns-dev/c1", r.stderr


def test_no_drops_but_the_kernels_chatter(mixed):
    """Allowed: IPv6 (pods' and, flooded inside the tunnel, the kernel node's), what the kernel
    node sent before node.set made it known, and its multicast (IGMP) on the underlay: IGMP
    reports a kernel sends from 0.0.0.0 before its interface has an address count as
    ipv4_source_invalid; frames for the other hosts of the bridge as eth_dst_not_local."""
    _, np_node, *_ = mixed
    allowed = {"ipv6_unsupported", "ipv4_dst_multicast", "arp_not_answered",
               "vxlan_inner_not_ipv4_arp", "vxlan_unknown_source", "uplink_not_for_node",
               "ipv4_source_invalid", "eth_dst_not_local"}
    unexpected = {k: v for k, v in np_node.drops().items() if k not in allowed}
    assert not unexpected, unexpected
