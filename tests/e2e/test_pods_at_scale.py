"""Pods at node scale on nodeplane's own pod ports (no DPDK ethdev per pod).

120 pods on one node attached through nodeplane-cni as a runtime calls it (more than the
Kubernetes default of 110, and far more than the 31 an ethdev per pod allowed), every one
reached by ping and TCP from a pod on another node across the overlay; datagrams larger than the
pod MTU between pods of one node arrive (as fragments: the pod ports never reassemble); then DEL
of every pod leaves no port, link or address behind."""

import subprocess
import textwrap
import time

import pytest

from nplab import Lab
from nplab.lab import run

CPU_IP, GPU_IP = "192.168.50.10", "192.168.50.11"
PODS = 120

# One process listens on TCP 7000 in every pod's network namespace (setns per socket), so that
# 120 pods do not need 120 servers.
LISTENER = textwrap.dedent("""
    import ctypes, os, selectors, socket, sys
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    CLONE_NEWNET = 0x40000000
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    sel = selectors.DefaultSelector()
    for netns in sys.argv[1:]:
        fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
        assert libc.setns(fd, CLONE_NEWNET) == 0, ctypes.get_errno()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 7000))
        s.listen(16)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
        os.close(fd)
    libc.setns(home, CLONE_NEWNET)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "listen":
                c, _ = key.fileobj.accept()
                c.sendall(b"ok\\n")
                c.close()
""")

# From the client pod: ping and connect to every address; prints the ones that failed.
CHECKER = textwrap.dedent("""
    import concurrent.futures, socket, subprocess, sys
    def check(ip):
        ping = subprocess.run(["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", ip],
                              capture_output=True).returncode == 0
        try:
            with socket.create_connection((ip, 7000), timeout=3) as s:
                tcp = s.recv(3) == b"ok\\n"
        except OSError:
            tcp = False
        return ip, ping, tcp
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(check, sys.argv[1:]))
    bad = [r for r in results if not (r[1] and r[2])]
    print(len(results), len(bad))
    for r in bad:
        print(*r)
""")


@pytest.fixture(scope="module")
def cluster():
    with Lab("s") as lab:
        cpu = lab.node("node-cpu", f"{CPU_IP}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16")
        gpu = lab.node("node-gpu", f"{GPU_IP}/24", "10.244.2.0/24", cluster_cidr="10.244.0.0/16")
        for d, other in ((cpu, gpu), (gpu, cpu)):
            d.set_node(other)
            d.set_node(d)
        yield lab, cpu, gpu


def test_a_node_takes_more_pods_than_kubernetes_default_and_reaches_every_one(cluster):
    lab, cpu, gpu = cluster
    started = time.time()
    pods = [lab.add_pod(cpu, "scale", f"p{i}") for i in range(PODS)]
    attach_seconds = time.time() - started
    print(f"{PODS} pods attached in {attach_seconds:.1f} s")
    ports = cpu.call("ports")["ports"]
    pod_ports = [p for p in ports if p.get("role") == "pod"]
    assert len(pod_ports) == PODS
    assert all(p["driver"] == "nodeplane-pod" for p in pod_ports), pod_ports[:2]
    assert len({p["id"] for p in pod_ports}) == PODS

    listener = lab.popen(["/usr/bin/python3", "-c", LISTENER] + [p.netns for p in pods],
                         stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline().strip() == "listening"
    client = lab.add_pod(gpu, "scale", "client")
    r = client.exec(["/usr/bin/python3", "-c", CHECKER] + [p.ip for p in pods], timeout=300)
    total, failed = map(int, r.stdout.split("\n")[0].split())
    assert total == PODS and failed == 0, r.stdout


def test_datagrams_larger_than_the_pod_mtu_pass_as_fragments(cluster):
    lab, cpu, _ = cluster
    a = lab.add_pod(cpu, "frag", "a")
    b = lab.add_pod(cpu, "frag", "b")
    # ICMP of 3000 bytes over a 1450-byte MTU: three fragments each way, reassembled by the
    # receiving pod's kernel (nodeplane forwards them as they are).
    r = a.exec(["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000", b.ip], check=False)
    assert r.returncode == 0, r.stdout
    # UDP: an 8000-byte datagram.
    b.serve(udp=[7001])
    r = a.probe("udp", b.ip, "7001", "--size", "8000")
    assert r.returncode == 0, r.stdout
    drops = cpu.drops()
    assert not {k: v for k, v in drops.items() if "fragment" in k or "beyond_frame" in k}, drops


def test_del_of_every_pod_leaves_nothing_behind(cluster):
    lab, cpu, _ = cluster
    pods = [p for p in list(lab.pods) if p.daemon is cpu]
    for p in pods:
        assert lab.remove_pod(p) == 0
    ports = [p for p in cpu.call("ports")["ports"] if p.get("role") == "pod"]
    assert ports == []
    assert cpu.call("pod.list")["pods"] == []
    # No host end of any veth pair is left in the node's namespace.
    links = run(["ip", "-n", cpu.netns, "-o", "link", "show"]).stdout
    assert " np" not in links, links
