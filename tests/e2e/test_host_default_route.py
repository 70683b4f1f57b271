"""A node whose only NIC is nodeplane's uplink (a PCI NIC bound to DPDK; here an af_packet port on
a veth that has no kernel address, with the kernel kept off it entirely): `--host-default-route`
puts the node address on the host interface with the kernel's default route, so the node's own
traffic (SSH, the kubelet to the API server, image pulls) goes in and out through nodeplane.

The underlay's router (192.168.50.1) leads to an "outside" host (203.0.113.10). The node's
kernel reaches it with the node address, the outside and the router reach servers on the node's
kernel, and the pods keep their paths: masqueraded out, a NodePort answered by nodeplane (not
reset by the kernel), the node's probes into pods."""

import time

import pytest

from nplab import Lab
from nplab.lab import REPO, run

NODE_IP = "192.168.50.10"
OUTSIDE = "203.0.113.10"
PROBE = str(REPO / "tools/nplab/probe.py")


def serve(lab, netns, name, http=None, tcp=None):
    args = ["ip", "netns", "exec", netns, "/usr/bin/python3", PROBE, "serve", "--name", name]
    if http:
        args += ["--http", str(http)]
    if tcp:
        args += ["--tcp", str(tcp)]
    lab.popen(args)


def wait_listening(exec_, port):
    deadline = time.time() + 10
    while time.time() < deadline:
        if exec_(["ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def node():
    with Lab("r") as lab:
        outside = lab.router()
        serve(lab, outside, "outside/host", http=8080)
        d = lab.node("node-dr", f"{NODE_IP}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16",
                     service_cidr="10.96.0.0/12",
                     extra_args=["--underlay-gateway", "192.168.50.1", "--host-interface", "np0",
                                 "--host-default-route"])
        d.exec(["ip", "link", "set", "lo", "up"])
        # A server of the node's own kernel on the node address (sshd, the kubelet's 10250).
        serve(lab, d.netns, "node/kernel", http=10250)
        wait_listening(d.exec, 10250)
        web = lab.add_pod(d, "app", "web")
        web.serve(http=[8080])
        d.set_service("app", "web", "10.96.0.40",
                      [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}],
                      [web], type="NodePort")
        yield {"lab": lab, "d": d, "web": web, "outside": outside}


def curl(run_in, url, timeout=3):
    r = run_in(["curl", "-sS", "--max-time", str(timeout), url], check=False,
               timeout=timeout + 5)
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def in_netns(netns):
    return lambda cmd, check=True, timeout=60: run(["ip", "netns", "exec", netns] + cmd,
                                                  check=check, timeout=timeout)


def test_the_node_address_and_default_route_are_the_host_interfaces(node):
    d = node["d"]
    addrs = d.exec(["ip", "-4", "-o", "addr", "show"]).stdout
    assert f"{NODE_IP}/32" in addrs and "np0" in addrs, addrs
    assert "ul0" not in addrs, addrs  # the uplink is nodeplane's alone
    default = d.exec(["ip", "route", "show", "default"]).stdout
    assert "via 169.254.1.1 dev np0" in default and f"src {NODE_IP}" in default, default
    status = d.call("status")
    assert status["hostDefaultRoute"] is True, status
    assert status["uplinkGuard"].startswith("installed on ul0 (all of it"), status
    assert status["snatPorts"] == "61000-65535", status  # the kernel's own ports stay its own


def test_the_node_reaches_the_outside_with_its_own_address(node):
    d = node["d"]
    for _ in range(5):
        assert curl(d.exec, f"http://{OUTSIDE}:8080/whoami") == f"outside/host {NODE_IP}"
    assert d.exec(["ping", "-c", "2", "-W", "2", OUTSIDE], check=False).returncode == 0
    # Not masqueraded: the kernel's connections keep their own ports, tracked by nobody.
    assert not [f for f in d.call("flows", {"address": OUTSIDE})["flows"] if f["snat"]]


def test_the_outside_and_the_router_reach_the_nodes_kernel(node):
    outside = in_netns(node["outside"])
    for _ in range(5):
        assert curl(outside, f"http://{NODE_IP}:10250/whoami") == f"node/kernel {OUTSIDE}"
    router = in_netns(f"{node['lab'].prefix}-router")
    assert curl(router, f"http://{NODE_IP}:10250/whoami") == "node/kernel 192.168.50.1"
    assert router(["ping", "-c", "2", "-W", "2", NODE_IP], check=False).returncode == 0


def test_pods_keep_their_paths(node):
    d, web = node["d"], node["web"]
    # Out of the cluster, masqueraded to the node address above the kernel's ports.
    assert curl(web.exec, f"http://{OUTSIDE}:8080/whoami") == f"outside/host {NODE_IP}"
    ports = {int(f["reply"].rsplit(":", 1)[1])
             for f in d.call("flows", {"address": OUTSIDE})["flows"] if f["snat"]}
    assert ports and all(61000 <= p <= 65535 for p in ports), ports
    # A NodePort from outside: nodeplane's answer, not a RST from the kernel.
    outside = in_netns(node["outside"])
    for _ in range(5):
        assert curl(outside, f"http://{NODE_IP}:30080/whoami").startswith("app/web "), \
            "NodePort from outside"
    # The node's probe into its pod.
    assert curl(d.exec, f"http://{web.ip}:8080/whoami").startswith("app/web ")
