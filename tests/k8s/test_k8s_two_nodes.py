"""Two real Kubernetes nodes (../shared/k8s-lab --nodes 2: node 2 joined to node 1 over a veth
underlay, lab0 on each) with nodeplane on both as CNI and Service proxy: each daemon's uplink is
an af_packet port on lab0, which the node's kernel keeps using (kubelet, API server), VXLAN
between them, the host path on each. Driven with kubectl only.

Skipped with the lab's reason where it cannot start (like test_k8s_node.py)."""

import json

import pytest
from k8s_support import (client_pod, http_get, reaches_api_server, started_lab, wait_for,
                          web_per_node)

NS = "np-two"

OBJECTS = (web_per_node(NS) + client_pod(NS, "client1", "k8slab-node1") +
           client_pod(NS, "client2", "k8slab-node2"))


@pytest.fixture(scope="module")
def lab():
    yield from started_lab(NS, OBJECTS, nodes=2)


def pods_by_node(k):
    pods = json.loads(k.kubectl("-n", NS, "get", "pods", "-l", "app=web", "-o", "json").stdout)
    return {p["spec"]["nodeName"]: p["status"]["podIP"] for p in pods["items"]}


def http(k, client, ip, port):
    return http_get(k, NS, client, ip, port)


def test_both_nodes_know_each_other_and_pods_become_ready(lab):
    for node in (1, 2):
        nodes = wait_for(f"node {node}'s daemon to know both nodes",
                         lambda: len(lab.npctl("nodes", node=node)["nodes"]) == 2
                         and lab.npctl("nodes", node=node)["nodes"], 60)
        assert {n["name"] for n in nodes} == {"k8slab-node1", "k8slab-node2"}
    wait_for("both web pods Ready (probes through each node's host path)",
             lambda: len(lab.ready_pods(NS, "app=web")) == 2, 180)
    wait_for("both clients Ready", lambda: len(lab.ready_pods(NS, "app!=web")) == 2, 120)
    placed = pods_by_node(lab)
    assert placed["k8slab-node1"].startswith("10.244.0.")
    assert placed["k8slab-node2"].startswith("10.244.1.")


def test_pods_reach_each_other_across_the_overlay(lab):
    remote = pods_by_node(lab)["k8slab-node2"]
    assert http(lab, "client1", remote, 8080).startswith("hello-from-web-")


def test_the_cluster_ip_answers_from_both_nodes(lab):
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    for client in ("client1", "client2"):
        seen = set()
        for _ in range(10):
            out = wait_for(f"{client} -> {ip}:80", lambda: http(lab, client, ip, 80), 30)
            assert out.startswith("hello-from-web-"), out
            seen.add(out)
        assert len(seen) == 2, (client, seen)


def test_a_pod_on_the_second_node_reaches_kubernetes_default(lab):
    # The API server is on node 1's address: through the overlay and node 1's host path.
    ok, out = reaches_api_server(lab, NS, "client2")
    assert ok, out


def test_a_node_reaches_a_pod_on_the_other_node(lab):
    remote = pods_by_node(lab)["k8slab-node2"]
    r = lab.in_node("curl", "-sS", "-m", "5", f"http://{remote}:8080/index.html", check=False)
    assert r.stdout.startswith("hello-from-web-"), r.stdout + r.stderr


def test_deleting_everything_detaches_every_pod(lab):
    lab.kubectl("delete", "namespace", NS, "--timeout=120s")
    for node in (1, 2):
        wait_for(f"node {node}: every pod port detached",
                 lambda: lab.npctl("pods", node=node)["pods"] == [], 60)
