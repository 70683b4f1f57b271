"""Pods keep TSO and checksum offload on: TCP super-packets (64 KiB) cross nodeplane whole, through
a ClusterIP (DNAT, conntrack), through a NetworkPolicy (and an L7 rule's scanning), and across
the overlay (segmented by nodeplane on the way out, coalesced again before the receiving pod).
Every transfer is echoed back and compared byte for byte, and the receiving kernels count no
checksum error."""

import json

import pytest

from nplab import Lab

CPU_IP, GPU_IP = "192.168.50.10", "192.168.50.11"
BYTES = 12_000_000


def policy(ns, name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name}, "spec": spec}


@pytest.fixture(scope="module")
def cluster():
    with Lab("o") as lab:
        kw = dict(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        cpu = lab.node("node-cpu", f"{CPU_IP}/24", "10.244.1.0/24", **kw)
        gpu = lab.node("node-gpu", f"{GPU_IP}/24", "10.244.2.0/24", **kw)
        cpu.set_node(gpu)
        gpu.set_node(cpu)
        pods = {
            "client": lab.add_pod(cpu, "x", "client"),
            "other": lab.add_pod(cpu, "x", "other"),
            "local": lab.add_pod(cpu, "x", "local"),
            "remote": lab.add_pod(gpu, "x", "remote"),
        }
        for name in ("local", "remote"):
            pods[name].serve(tcp=[7000])
        port = {"name": "echo", "port": 80, "targetPort": 7000}
        for d in (cpu, gpu):
            d.set_service("x", "echo-local", "10.96.0.50", [port], [pods["local"]])
            d.set_service("x", "echo-remote", "10.96.0.51", [port], [pods["remote"]])
        yield lab, cpu, gpu, pods


def csum_errors(pod):
    out = pod.exec(["nstat", "-az", "TcpInCsumErrors"]).stdout
    return int(out.split("TcpInCsumErrors")[1].split()[0])


def transfer(pod, host, port):
    r = pod.probe("tcp", host, str(port), "--bytes", str(BYTES), "--timeout", "60", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr


def delta(daemon, before, *names):
    now = daemon.counters()
    return {n: now[n] - before[n] for n in names}


def test_pods_keep_their_offloads(cluster):
    *_, pods = cluster
    features = pods["client"].exec(["ethtool", "-k", "eth0"]).stdout
    assert "tcp-segmentation-offload: on" in features
    assert "tx-checksumming: on" in features


def test_super_packets_cross_one_node_whole(cluster):
    _, cpu, _, pods = cluster
    before = cpu.counters()
    transfer(pods["client"], pods["local"].ip, 7000)
    d = delta(cpu, before, "rx_packets", "rx_bytes", "gso_super_packets")
    # Frames of the MTU would average under 1,500 bytes; TSO's average far more.
    assert d["rx_bytes"] / d["rx_packets"] > 4000, d
    assert d["gso_super_packets"] == 0, d  # nothing between two pods needs segmenting
    assert csum_errors(pods["local"]) == 0 and csum_errors(pods["client"]) == 0


def test_super_packets_are_segmented_and_coalesced_across_the_overlay(cluster):
    _, cpu, gpu, pods = cluster
    cpu_before, gpu_before = cpu.counters(), gpu.counters()
    transfer(pods["client"], pods["remote"].ip, 7000)
    sent = delta(cpu, cpu_before, "gso_super_packets", "gso_segments", "gro_super_packets")
    back = delta(gpu, gpu_before, "gso_super_packets", "gro_super_packets", "gro_segments")
    assert sent["gso_super_packets"] > 0 and sent["gso_segments"] > sent["gso_super_packets"]
    # Each node coalesces what the wire brings for its pod: the data one way, the echo back.
    assert back["gro_super_packets"] > 0 and back["gro_segments"] > back["gro_super_packets"]
    assert sent["gro_super_packets"] > 0
    assert cpu.drops().get("gso_no_mbuf", 0) == 0
    assert csum_errors(pods["remote"]) == 0 and csum_errors(pods["client"]) == 0


@pytest.mark.parametrize("vip", ["10.96.0.50", "10.96.0.51"])
def test_super_packets_through_a_cluster_ip(cluster, vip):
    _, cpu, _, pods = cluster
    before = cpu.counters()
    transfer(pods["client"], vip, 80)
    d = delta(cpu, before, "service_flows", "rx_packets", "rx_bytes", "gso_super_packets")
    assert d["service_flows"] >= 1
    if vip == "10.96.0.50":  # the backend on this node: super-packets both ways
        assert d["rx_bytes"] / d["rx_packets"] > 4000, d
    else:  # on the other node: translated whole, segmented after
        assert d["gso_super_packets"] > 0, d
    assert csum_errors(pods["client"]) == 0


def test_super_packets_through_a_network_policy(cluster):
    _, cpu, gpu, pods = cluster
    identities = {
        "namespaces": [{"name": "x", "labels": {"ns": "x"}}],
        "pods": [{"namespace": "x", "name": name, "ip": p.ip, "labels": {"app": name},
                  "ports": [{"name": "echo", "containerPort": 7000, "protocol": "TCP"}]}
                 for name, p in pods.items()],
    }
    allow = policy("x", "echo-from-client", {
        "podSelector": {"matchLabels": {"app": "remote"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": 7000}]}]})
    allow_local = policy("x", "echo-from-client-local", {
        "podSelector": {"matchLabels": {"app": "local"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": 7000}]}]})
    try:
        for d in (cpu, gpu):
            d.call("policy.apply", dict(identities, networkPolicies=[allow, allow_local]))
        # In force: a pod the policy does not name is refused.
        r = pods["other"].probe("tcp", pods["remote"].ip, "7000", "--timeout", "1")
        assert r.returncode != 0, r.stdout
        for target in (pods["remote"].ip, pods["local"].ip, "10.96.0.51"):
            transfer(pods["client"], target, 80 if target.startswith("10.96.") else 7000)
        allowed = cpu.counters()["policy_flows_allowed"] + gpu.counters()["policy_flows_allowed"]
        assert allowed >= 3
    finally:
        for d in (cpu, gpu):
            d.call("policy.apply", dict(identities, networkPolicies=[]))
    assert csum_errors(pods["remote"]) == 0 and csum_errors(pods["local"]) == 0


def test_no_unexplained_drops(cluster):
    _, cpu, gpu, _ = cluster
    expected = {"ipv6_unsupported", "policy_denied_ingress", "arp_not_answered", "pod_unknown",
                "ipv4_source_invalid", "eth_dst_not_local"}
    for d in (cpu, gpu):
        unexpected = {k: v for k, v in d.drops().items() if k not in expected}
        assert not unexpected, json.dumps(unexpected)
