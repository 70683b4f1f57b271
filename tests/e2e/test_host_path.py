"""The host path end to end: the node's own kernel and its pods reach each other through
nodeplane (`--host-interface`), as kubelet probes, hostNetwork clients and pods talking to the
API server on the node's address need.

One node namespace whose kernel holds the node address on ul0 (as a real node's NIC does) runs
nodeplane with an af_packet uplink on ul0 and the host path np0 / np0-dp. Clients in the node
namespace are the node's kernel; a TCP server there stands for the API server."""

import json
import time

import pytest

from nplab import Lab
from nplab.lab import REPO, run

NODE_IP = "192.168.50.10"
NODE2_IP = "192.168.50.11"
API_PORT = 6443
PROBE = str(REPO / "tools/nplab/probe.py")


@pytest.fixture(scope="module")
def node():
    with Lab("h") as lab:
        ns = lab.add_node_netns("node-host", f"{NODE_IP}/24")  # the node kernel's address
        d = lab.daemon("node-host", f"{NODE_IP}/24", "10.244.1.0/24", netns=ns,
                       uplink="net_af_packet_ul,iface=ul0", cluster_cidr="10.244.0.0/16",
                       service_cidr="10.96.0.0/12", extra_args=["--host-interface", "np0"])
        d.exec(["ip", "link", "set", "lo", "up"])
        web = lab.add_pod(d, "app", "web")
        client = lab.add_pod(d, "app", "client")
        web.serve(http=[8080], tcp=[9000])
        # The "API server": a TCP echo server in the node's own namespace on the node address.
        lab.popen(["ip", "netns", "exec", d.netns, "/usr/bin/python3", PROBE, "serve", "--name",
                   "node/api", "--tcp", str(API_PORT), "--http", "10250"])
        deadline = time.time() + 10
        while time.time() < deadline:
            if d.exec(["ss", "-Htln", f"sport = :{API_PORT}"], check=False).stdout.strip():
                break
            time.sleep(0.05)
        d.set_service("app", "web", "10.96.0.40",
                      [{"name": "http", "port": 80, "targetPort": 8080}], [web])
        d.set_service("default", "kubernetes", "10.96.0.1",
                      [{"name": "https", "port": 443, "targetPort": API_PORT}], [{"ip": NODE_IP}])
        d.set_service("app", "web-np", "10.96.0.41",
                      [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}], [web],
                      type="NodePort")
        outside = lab.add_node_netns("outside", "192.168.50.99/24")
        # A second node like the first: the node addresses reach each other's pods and kernels
        # through the overlay and the host paths.
        ns2 = lab.add_node_netns("node-host2", f"{NODE2_IP}/24")
        d2 = lab.daemon("node-host2", f"{NODE2_IP}/24", "10.244.2.0/24", netns=ns2,
                        uplink="net_af_packet_ul,iface=ul0", cluster_cidr="10.244.0.0/16",
                        service_cidr="10.96.0.0/12", extra_args=["--host-interface", "np0"])
        d2.exec(["ip", "link", "set", "lo", "up"])
        for a, b in ((d, d2), (d2, d)):
            a.set_node(b)
            a.set_node(a)
        remote = lab.add_pod(d2, "app", "remote")
        remote.serve(http=[8080], tcp=[9000])
        for x in (d, d2):
            x.set_service("app", "remote-only", "10.96.0.42",
                          [{"name": "http", "port": 80, "targetPort": 8080}], [remote])
        yield {"lab": lab, "d": d, "web": web, "client": client, "outside": outside, "d2": d2,
               "remote": remote}


def node_curl(d, url, timeout=3):
    r = d.exec(["curl", "-sS", "--max-time", str(timeout), url], check=False, timeout=timeout + 5)
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def test_host_interface_and_routes(node):
    d = node["d"]
    links = json.loads(d.exec(["ip", "-j", "link", "show"]).stdout)
    names = {link["ifname"] for link in links}
    assert {"np0", "np0-dp"} <= names
    routes = d.exec(["ip", "route", "show", "dev", "np0"]).stdout
    assert "10.244.0.0/16 via 169.254.1.1" in routes and f"src {NODE_IP}" in routes, routes
    assert "10.96.0.0/12 via 169.254.1.1" in routes, routes
    ports = d.call("ports")["ports"]
    assert [p["role"] for p in ports].count("host") == 1
    assert d.call("status")["hostInterface"] == "np0"


def test_node_reaches_pod_like_a_kubelet_probe(node):
    d, web = node["d"], node["web"]
    assert node_curl(d, f"http://{web.ip}:8080/healthz") == "app/web"
    r = d.exec(["ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", web.ip], check=False)
    assert r.returncode == 0, r.stdout


def test_pod_reaches_node_address(node):
    r = node["client"].probe("tcp", NODE_IP, str(API_PORT), "--bytes", "200000")
    assert r.returncode == 0, r.stdout + r.stderr


def test_pod_reaches_kubernetes_default_service(node):
    # 10.96.0.1:443 -> the API server on the node's own address.
    r = node["client"].probe("tcp", "10.96.0.1", "443", "--bytes", "100000")
    assert r.returncode == 0, r.stdout + r.stderr


def test_node_reaches_cluster_ip(node):
    assert node_curl(node["d"], "http://10.96.0.40/") == "app/web"


def test_policy_never_stands_between_node_and_its_pods(node):
    d, web, client = node["d"], node["web"], node["client"]
    pods = [{"namespace": "app", "name": p.name, "ip": p.ip, "labels": {"app": p.name}}
            for p in (web, client)]
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": "app", "name": "deny-all-ingress"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    d.call("policy.apply", {"namespaces": [{"name": "app", "labels": {}}], "pods": pods,
                            "networkPolicies": [deny]})
    try:
        r = client.exec(["curl", "-sS", "--max-time", "2", f"http://{web.ip}:8080/"], check=False)
        assert r.returncode != 0, "default deny did not take effect between pods"
        assert node_curl(d, f"http://{web.ip}:8080/") == "app/web"  # the probe still passes
        assert node_curl(d, "http://10.96.0.40/") == "app/web"
    finally:
        d.call("policy.apply", {"namespaces": [{"name": "app", "labels": {}}], "pods": pods,
                                "networkPolicies": []})


def snmp(d, proto, field):
    """A counter of the node kernel's /proc/net/snmp (its namespace's)."""
    lines = [line.split() for line in d.exec(["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith(proto + ":")]
    return int(lines[1][lines[0].index(field)])


def forwarded_by_kernel(d):
    return snmp(d, "Ip", "ForwDatagrams")


def test_pod_frames_never_reach_the_node_kernel(node):
    """The pods' gateway MAC is not the host veth's, so the node's kernel (ip_forward=1, as on
    every Kubernetes node) drops pod frames instead of routing them untranslated."""
    d, client, web = node["d"], node["client"], node["web"]
    d.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    try:
        host_if = client.result["interfaces"][0]["name"]
        host_mac = json.loads(d.exec(["ip", "-j", "link", "show", host_if]).stdout)[0]["address"]
        client.ping("169.254.1.1")
        gateway = json.loads(client.exec(["ip", "-j", "neigh", "show", "169.254.1.1"]).stdout)
        assert gateway and gateway[0]["lladdr"] != host_mac, (host_mac, gateway)
        before = forwarded_by_kernel(d)
        assert client.probe("tcp", web.ip, "9000", "--bytes", "100000").returncode == 0
        assert node_curl(d, "http://10.96.0.40/") == "app/web"
        assert forwarded_by_kernel(d) == before
    finally:
        d.exec(["sysctl", "-qw", "net.ipv4.ip_forward=0"])


def test_the_kernel_leaves_node_ports_to_nodeplane(node):
    """The node's kernel shares ul0 with nodeplane (af_packet) and holds the node address: without
    the uplink guard it answers a NodePort's SYN with a RST before nodeplane's SYN-ACK."""
    d = node["d"]
    assert d.call("status")["uplinkGuard"] == "installed on ul0"
    resets = snmp(d, "Tcp", "OutRsts")
    for _ in range(5):
        r = run(["ip", "netns", "exec", node["outside"], "curl", "-sS", "--max-time", "3",
                 f"http://{NODE_IP}:30080/"], check=False)
        assert r.stdout.strip() == "app/web", r.stdout + r.stderr
    assert snmp(d, "Tcp", "OutRsts") == resets


def test_the_node_reaches_a_node_port_on_its_own_address(node):
    # The kernel would deliver node-address:30080 locally; the redirect sends it to the ClusterIP.
    d = node["d"]
    assert node_curl(d, f"http://{NODE_IP}:30080/") == "app/web", d.log_text()[-3000:]


def test_the_node_reaches_a_pod_on_another_node(node):
    assert node_curl(node["d"], f"http://{node['remote'].ip}:8080/") == "app/remote"
    # ... and a ClusterIP whose only backend is there.
    assert node_curl(node["d"], "http://10.96.0.42/") == "app/remote"


PEER_SERVER = r"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 10251))
s.listen()
c, peer = s.accept()
c.sendall(peer[0].encode())
c.close()
"""

PEER_CLIENT = r"""
import socket, sys
print(socket.create_connection((sys.argv[1], 10251), timeout=5).recv(64).decode())
"""


def test_a_pod_reaches_another_nodes_kernel_unmasqueraded(node):
    """A pod on node 2 to a server on node 1's own address (as to an API server): through the
    overlay and node 1's host path, so node 1's kernel sees the pod's own address."""
    d, remote = node["d"], node["remote"]
    server = node["lab"].popen(["ip", "netns", "exec", d.netns, "/usr/bin/python3", "-c",
                                PEER_SERVER])
    deadline = time.time() + 10
    while time.time() < deadline and not d.exec(["ss", "-Htln", "sport = :10251"]).stdout:
        time.sleep(0.05)
    r = remote.exec(["/usr/bin/python3", "-c", PEER_CLIENT, NODE_IP], check=False)
    server.wait(timeout=10)
    assert r.stdout.strip() == remote.ip, r.stdout + r.stderr


def test_no_unexplained_drops(node):
    for d in (node["d"], node["d2"]):
        drops = {k: v for k, v in d.drops().items() if v}
        assert "host_path_unavailable" not in drops, drops
        assert "host_source_not_node" not in drops, drops
