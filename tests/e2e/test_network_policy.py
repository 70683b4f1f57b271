"""NetworkPolicy end to end, in the layout of the upstream Kubernetes network-policy tests:
namespaces x, y and z, pods a, b and c in each, every pod serving TCP and UDP on ports 80 and 81.
The nine pods are spread over two nodes (each a nodeplane daemon, VXLAN between them), so egress
is enforced on the source's node and ingress on the destination's across the overlay.

For each policy case every pod probes every pod (81 pairs, in parallel) and the reachability
matrix is compared whole with the expected one. Policies reach the daemons as policy.apply, the
way the agent pushes them: the namespaces and pods as identities, the NetworkPolicy objects as
the API server serves them."""

import json
import subprocess
import time

import pytest

from nplab import Lab
from nplab.lab import REPO

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
# Which node each pod lives on: both nodes hold pods of every namespace.
ON_CPU = {"x/a", "x/b", "y/a", "y/c", "z/b"}
PROBE = str(REPO / "tools/nplab/probe.py")


class Cluster:
    def __init__(self, lab, cpu, gpu, pods):
        self.lab, self.cpu, self.gpu, self.pods = lab, cpu, gpu, pods
        self.names = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]

    def identities(self):
        pods = []
        for name in self.names:
            ns, p = name.split("/")
            pods.append({"namespace": ns, "name": p, "ip": self.pods[name].ip,
                         "labels": {"pod": p},
                         "ports": [{"name": f"serve-{port}-{proto.lower()}", "containerPort": port,
                                    "protocol": proto}
                                   for port in (80, 81) for proto in ("TCP", "UDP")]})
        namespaces = [{"name": ns, "labels": {"ns": ns}} for ns in NAMESPACES]
        return namespaces, pods

    def apply(self, *policies, audit=False):
        namespaces, pods = self.identities()
        args = {"namespaces": namespaces, "pods": pods, "networkPolicies": list(policies),
                "audit": audit}
        for d in (self.cpu, self.gpu):
            d.call("policy.apply", args)

    def matrix(self, port=80, proto="tcp", target=None):
        """{(src, dst): reachable} for every pair; `target(dst) -> "ip:port"` overrides where
        each destination is reached (a Service VIP)."""
        procs = {}
        for src in self.names:
            targets = []
            for dst in self.names:
                where = target(dst) if target else f"{self.pods[dst].ip}:{port}"
                targets.append(f"{dst}={where}/{proto}")
            procs[src] = subprocess.Popen(
                ["ip", "netns", "exec", self.pods[src].netns, "/usr/bin/python3", PROBE, "matrix",
                 "--timeout", "1.0"] + targets, stdout=subprocess.PIPE, text=True)
        result = {}
        for src, p in procs.items():
            out, _ = p.communicate(timeout=30)
            for dst, ok in json.loads(out).items():
                result[(src, dst)] = ok
        return result


def expect(rule):
    """The expected matrix from rule(src, dst) -> bool; a pod always reaches itself (over its
    own loopback, as upstream expects)."""
    names = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
    return {(s, d): (s == d) or rule(s, d) for s in names for d in names}


def compare(got, want):
    wrong = [k for k in want if got[k] != want[k]]
    if not wrong:
        return
    names = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]
    lines = ["reachability differs (. ok as expected, X expected allowed but blocked, "
             "! expected blocked but got through):",
             "      " + " ".join(f"{d:>4}" for d in names)]
    for s in names:
        cells = []
        for d in names:
            g, w = got[(s, d)], want[(s, d)]
            cells.append("   ." if g == w else ("   X" if w else "   !"))
        lines.append(f"{s:>5} " + " ".join(cells))
    pytest.fail("\n".join(lines))


def ns_of(name):
    return name.split("/")[0]


def meta(ns, name, **annotations):
    m = {"namespace": ns, "name": name}
    if annotations:
        m["annotations"] = annotations
    return m


def policy(ns, name, spec, **annotations):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(ns, name, **annotations), "spec": spec}


@pytest.fixture(scope="module")
def cluster():
    with Lab("p") as lab:
        kw = dict(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        cpu = lab.node("node-cpu", "192.168.50.10/24", "10.244.1.0/24", **kw)
        gpu = lab.node("node-gpu", "192.168.50.11/24", "10.244.2.0/24", **kw)
        cpu.set_node(gpu)
        gpu.set_node(cpu)
        pods = {}
        for ns in NAMESPACES:
            for p in PODS:
                name = f"{ns}/{p}"
                pods[name] = lab.add_pod(cpu if name in ON_CPU else gpu, ns, p)
        for pod in pods.values():
            pod.serve(tcp=[80, 81], udp=[80, 81])
        c = Cluster(lab, cpu, gpu, pods)
        c.apply()  # identities, no policy: everything allowed, flows tracked from now on
        yield c


def test_no_policy_everything_reaches_everything(cluster):
    compare(cluster.matrix(), expect(lambda s, d: True))


def test_default_deny_ingress(cluster):
    cluster.apply(policy("x", "deny-ingress", {"podSelector": {}}))
    compare(cluster.matrix(), expect(lambda s, d: ns_of(d) != "x"))
    # The denials were counted against the policy on the nodes that hold x's pods.
    listed = [p for d in (cluster.cpu, cluster.gpu) for p in d.call("policy.list")["policies"]]
    assert sum(p["denied"] for p in listed if p["name"] == "deny-ingress") > 0


def test_default_deny_all(cluster):
    cluster.apply(policy("x", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    compare(cluster.matrix(), expect(lambda s, d: ns_of(s) != "x" and ns_of(d) != "x"))
    compare(cluster.matrix(81, "udp"), expect(lambda s, d: ns_of(s) != "x" and ns_of(d) != "x"))


def test_allow_from_namespace(cluster):
    cluster.apply(policy("x", "from-y", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    compare(cluster.matrix(), expect(lambda s, d: d != "x/a" or ns_of(s) == "y"))


def test_allow_from_pod_in_namespace(cluster):
    cluster.apply(policy("x", "from-y-b", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                                   {"key": "ns", "operator": "In", "values": ["y", "z"]}]},
                               "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    compare(cluster.matrix(), expect(lambda s, d: d != "x/a" or s in ("y/b", "z/b")))


def test_ip_block_with_except(cluster):
    yb = cluster.pods["y/b"].ip
    cluster.apply(policy("x", "cidr", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{yb}/32"]}}]}]}))
    compare(cluster.matrix(), expect(lambda s, d: d != "x/a" or s != "y/b"))


def test_named_port(cluster):
    cluster.apply(policy("x", "named", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}))
    compare(cluster.matrix(80), expect(lambda s, d: True))
    compare(cluster.matrix(81), expect(lambda s, d: d != "x/a"))
    compare(cluster.matrix(80, "udp"), expect(lambda s, d: d != "x/a"))


def test_end_port_range(cluster):
    cluster.apply(policy("x", "range", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"ports": [{"protocol": "TCP", "port": 81, "endPort": 90}]}]}))
    compare(cluster.matrix(80), expect(lambda s, d: d != "x/a"))
    compare(cluster.matrix(81), expect(lambda s, d: True))


def test_egress_to_cidr(cluster):
    yb = cluster.pods["y/b"].ip
    cluster.apply(policy("x", "egress-cidr", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": f"{yb}/32"}}]}]}))
    compare(cluster.matrix(), expect(lambda s, d: s != "x/a" or d == "y/b"))


def test_policies_add_up(cluster):
    from_y = policy("x", "from-y", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
    from_zc = policy("x", "from-z-c", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}},
                               "podSelector": {"matchLabels": {"pod": "c"}}}]}]})
    cluster.apply(from_y, from_zc)
    compare(cluster.matrix(), expect(lambda s, d: d != "x/a" or ns_of(s) == "y" or s == "z/c"))


def test_audit_mode_reports_and_passes(cluster):
    cluster.apply(policy("x", "deny-ingress", {"podSelector": {}}, **{"nodeplane.io/audit": "true"}))
    compare(cluster.matrix(), expect(lambda s, d: True))
    listed = [p for d in (cluster.cpu, cluster.gpu) for p in d.call("policy.list")["policies"]]
    assert sum(p["auditDenied"] for p in listed) > 0
    log = cluster.cpu.call("policy.log", {"limit": 1000})["records"]
    assert any(r["event"] == "audit-deny-ingress" and r.get("policy") == "x/deny-ingress" for r in log)


def test_policy_update_while_traffic_flows(cluster):
    """A client keeps a TCP connection busy to x/a while the policy changes under it: allowed,
    then revoked (the connection stalls: its packets are dropped from the next one on), then the
    policy is removed (new connections work again)."""
    from_y = policy("x", "from-y", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})
    from_z = policy("x", "from-y", {  # the same policy, updated
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]})
    cluster.apply(from_y)
    xa = cluster.pods["x/a"].ip
    # A long-lived echo conversation from y/b (node-gpu) to x/a (node-cpu), across the overlay,
    # 20 exchanges a second.
    client = subprocess.Popen(
        ["ip", "netns", "exec", cluster.pods["y/b"].netns, "/usr/bin/python3", "-c", f"""
import socket, sys, time
s = socket.create_connection(("{xa}", 80), timeout=2)
s.settimeout(0.5)
ok = 0
end = time.time() + 6
while time.time() < end:
    try:
        s.sendall(b"x" * 10)
        if s.recv(64):
            ok += 1
            print("ok", round(time.time(), 2), flush=True)
    except OSError:
        print("stall", round(time.time(), 2), flush=True)
    time.sleep(0.05)
"""], stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    t_update = time.time()
    cluster.apply(from_z)
    compare(cluster.matrix(), expect(lambda s, d: d != "x/a" or ns_of(s) == "z"))
    out, _ = client.communicate(timeout=30)
    before = [float(l.split()[1]) for l in out.splitlines() if l.startswith("ok") and float(l.split()[1]) < t_update]
    after = [float(l.split()[1]) for l in out.splitlines() if l.startswith("ok") and float(l.split()[1]) > t_update + 0.2]
    assert len(before) > 10, out
    assert not after, f"the revoked connection kept working:\n{out}"
    cluster.apply()
    compare(cluster.matrix(), expect(lambda s, d: True))


def test_service_vip_is_judged_against_the_backend(cluster):
    xa = cluster.pods["x/a"]
    for d in (cluster.cpu, cluster.gpu):
        d.set_service("x", "svc-a", "10.96.0.50", [{"name": "http", "port": 8080, "targetPort": 80}],
                      [xa])
    cluster.apply(policy("x", "from-y", {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}],
                     "ports": [{"port": "serve-80-tcp"}]}]}))
    # Every pod reaches x/a through the VIP (the others directly): only y's pods get through, and
    # x/a itself (a pod reaching itself through its Service, hairpinned, is never isolated).
    got = cluster.matrix(target=lambda dst: "10.96.0.50:8080" if dst == "x/a"
                         else f"{cluster.pods[dst].ip}:80")
    compare(got, expect(lambda s, d: d != "x/a" or ns_of(s) == "y"))
    for d in (cluster.cpu, cluster.gpu):
        d.call("service.delete", {"namespace": "x", "name": "svc-a"})
