"""Masquerade on an uplink the node's kernel shares (af_packet on its own interface, its address
on it, a default route): replies to masqueraded pod flows reach the kernel too. From the kernel's
ephemeral range, the kernel has no socket for them and answers each with a RST that kills the
connection at the far end; nodeplane therefore takes SNAT ports above that range (61000-65535)
on such an uplink, and the uplink guard keeps the kernel from seeing their replies."""

import time

import pytest

from nplab import Lab
from nplab.lab import REPO, run

NODE_IP = "192.168.50.10"
OUTSIDE = "203.0.113.10"


def snmp(d, proto, field):
    lines = [line.split() for line in d.exec(["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith(proto + ":")]
    return int(lines[1][lines[0].index(field)])


@pytest.fixture(scope="module")
def world():
    with Lab("m") as lab:
        outside = lab.router()
        lab.popen(["ip", "netns", "exec", outside, "/usr/bin/python3",
                   str(REPO / "tools/nplab/probe.py"), "serve", "--name", "outside/host",
                   "--http", "8080"])
        time.sleep(0.5)
        yield {"lab": lab, "outside": outside}


def masquerading_node(lab, name, node_ip, pod_cidr, pod_name, extra=()):
    ns = lab.add_node_netns(name, f"{node_ip}/24")  # the kernel's address on the shared uplink
    run(["ip", "-n", ns, "route", "add", "default", "via", "192.168.50.1"])
    d = lab.daemon(name, f"{node_ip}/24", pod_cidr, netns=ns, uplink="net_af_packet_ul,iface=ul0",
                   cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                   extra_args=["--underlay-gateway", "192.168.50.1", *extra])
    pod = lab.add_pod(d, "app", pod_name)
    return d, pod


def fetch(pod, times):
    out = []
    for _ in range(times):
        r = pod.exec(["curl", "-sS", "--max-time", "3", f"http://{OUTSIDE}:8080/whoami"],
                     check=False)
        out.append(r.stdout.strip() if r.returncode == 0 else f"error {r.returncode}")
    return out


def test_masqueraded_flows_take_ports_the_kernel_leaves_alone(world):
    d, pod = masquerading_node(world["lab"], "node-m1", NODE_IP, "10.244.1.0/24", "c1")
    status = d.call("status")
    assert status["snatPorts"] == "61000-65535", status
    assert status["uplinkGuard"] == "installed on ul0", status
    resets = snmp(d, "Tcp", "OutRsts")
    assert fetch(pod, 10) == [f"outside/host {NODE_IP}"] * 10
    assert snmp(d, "Tcp", "OutRsts") == resets, "the kernel answered replies of masqueraded flows"
    # reply "203.0.113.10:8080 -> 192.168.50.10:PORT": the SNAT port is the reply's destination.
    ports = {int(f["reply"].rsplit(":", 1)[1])
             for f in d.call("flows", {"address": OUTSIDE})["flows"] if f["snat"]}
    assert ports and all(61000 <= p <= 65535 for p in ports), ports


def test_in_the_kernels_range_the_kernel_resets_them(world):
    # The control: the same node with the kernel's own range. Its kernel sees every SYN-ACK of a
    # masqueraded connection and, having no socket for it, sends a RST.
    d, pod = masquerading_node(world["lab"], "node-m2", "192.168.50.11", "10.244.2.0/24",
                               "c2", extra=["--snat-ports", "32768-60999"])
    assert d.call("status")["snatPorts"] == "32768-60999"
    resets = snmp(d, "Tcp", "OutRsts")
    fetch(pod, 5)
    assert snmp(d, "Tcp", "OutRsts") > resets
