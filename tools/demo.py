#!/usr/bin/env python3
"""make demo: the seed's cluster (configs/demo-cluster) on this machine.

Every Node object becomes a node: its own network namespace on a shared underlay (a bridge) with
a nodeplane daemon inside, its address and pod CIDR from the manifest. Every Pod becomes a network
namespace on its node, wired by nodeplane-cni exactly as a container runtime would; each serves
HTTP on its containerPort and UDP echo. The pods' addresses are written back as Pod status (the
kubelet's part), and one nodeplane-agent per node reads the manifests and that status and pushes
its node's whole desired state: the other nodes, the Services with their endpoints, and later the
NetworkPolicy and L7 rule, when their manifest appears in the directory the agents watch. Real
traffic goes between every pair of pods, to Services by name, and against the policy. Everything
is removed on exit."""

import json
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nplab import Lab, unbound  # noqa: E402
from nplab.lab import build_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "configs/demo-cluster"
CLUSTER_B = REPO / "configs/demo-cluster-b"  # the seed's second cluster (cross-cluster case)
GLOBAL_A, GLOBAL_B = "242.0.0.0/24", "242.1.0.0/24"  # Globalnet: A and B share their CIDRs
CLUSTERSET_CIDR = "10.112.0.0/24"
LINK_SECRET = "the demo's secret shared by cluster-gen and cluster-b"
CLUSTER_CIDR, SERVICE_CIDR = "10.244.0.0/16", "10.96.0.0/12"
DNS_IP = "10.96.0.10"  # the kube-dns Service
UPSTREAM_NAME = "outside.example"  # a name only the upstream (unbound in the kube-dns pod) knows


def load_objects(directory):
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            objects.extend(doc.get("items", []) if doc.get("kind") == "List" else [doc])
    return objects


def internal_ip(node):
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def pod_with_status(manifest, pod):
    """The Pod as the API server shows it once the kubelet has started it."""
    p = json.loads(json.dumps(manifest))
    p.setdefault("apiVersion", "v1")
    p.setdefault("kind", "Pod")
    p["status"] = {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                   "conditions": [{"type": "Ready", "status": "True"}]}
    return p


def wait_for(what, condition, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if condition():
                return
        except RuntimeError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}")


def check(a, b, dst_name):
    ok_ping = a.ping(b.ip, count=1, timeout=2)
    http = a.exec(["curl", "-sS", "--max-time", "3", f"http://{b.ip}:8080/"], check=False)
    ok_http = http.returncode == 0 and http.stdout.strip() == dst_name
    ok_udp = a.probe("udp", b.ip, "7001").returncode == 0
    failed = [n for n, ok in (("ping", ok_ping), ("http", ok_http), ("udp", ok_udp)) if not ok]
    return "ok" if not failed else "FAIL:" + ",".join(failed)


def cross_cluster(lab, daemons, started, nodes):
    """The seed's last case: pods of cluster A reach cluster B. A second cluster (one node, the
    same CIDRs) is linked to cluster-gen's gateway by an ESP tunnel with Globalnet; cluster-b's
    agent reads its ServiceExport; cluster-gen's pods reach the service by its clusterset name.
    Returns (failures, checks)."""
    objects = load_objects(CLUSTER_B)
    (node_b,) = [o for o in objects if o["kind"] == "Node"]
    b = lab.node("node-b", f"{internal_ip(node_b)}/24", node_b["spec"]["podCIDR"],
                 cluster_cidr=CLUSTER_CIDR, service_cidr=SERVICE_CIDR,
                 extra_args=["--cluster-id", "cluster-b", "--cluster-global-cidr", GLOBAL_B,
                             "--clusterset-cidr", CLUSTERSET_CIDR, "--cluster-dns", DNS_IP])
    gateway = nodes[0]["metadata"]["name"]
    gateway_ip = internal_ip(nodes[0])
    print(f"== cross-cluster: cluster-b (node-b {internal_ip(node_b)}, pods "
          f"{node_b['spec']['podCIDR']}: the same CIDRs as cluster-gen), linked to cluster-gen's "
          f"gateway {gateway} by ESP (AES-GCM) with Globalnet ({GLOBAL_A} / {GLOBAL_B})")
    pods_b = []
    for p in [o for o in objects if o["kind"] == "Pod"]:
        pod = lab.add_pod(b, p["metadata"]["namespace"], p["metadata"]["name"])
        pod.serve(http=[8080], udp=[7001])
        pods_b.append((p, pod))
        print(f"   pod {pod.namespace + '/' + pod.name:18s} {pod.ip:12s} on node-b (cluster-b)")
    watched = lab.tmp / "cluster-b"
    watched.mkdir()
    (watched / "pods-status.yaml").write_text(
        yaml.safe_dump_all([pod_with_status(p, pod) for p, pod in pods_b]))
    log = open(lab.tmp / "agent-node-b.log", "w")
    lab.popen([str(build_dir() / "control/nodeplane-agent"), "--node-name", "node-b", "--socket",
               b.socket, "--manifests", str(CLUSTER_B), str(watched)], stderr=log)
    common = {"secret": LINK_SECRET, "cidrs": [CLUSTER_CIDR, SERVICE_CIDR]}
    for d in daemons.values():
        d.call("cluster.gateways.set", {"nodes": [gateway]})
        d.call("cluster.peer.set", dict(common, clusterId="cluster-b",
                                        gatewayIp=internal_ip(node_b), globalCidr=GLOBAL_B))
    b.call("cluster.peer.set", dict(common, clusterId="cluster-gen", gatewayIp=gateway_ip,
                                    globalCidr=GLOBAL_A))
    for name, d in daemons.items():
        wait_for(f"{name}'s import of orders/orders", lambda d=d: any(
            s["service"] == "orders/orders" for s in d.call("cluster.imports")["clusterset"]))
    exports = b.call("cluster.exports")["exports"]
    for e in exports:
        print(f"   cluster-b exports {e['service']} (its ServiceExport, read by its agent) at "
              f"global address {e['globalIp']} -> ClusterIP {e['clusterIp']}")
    cs = {s["service"]: s for s in daemons[gateway].call("cluster.imports")["clusterset"]}
    print(f"   cluster-gen imports it: orders.orders.svc.clusterset.local -> "
          f"{cs['orders/orders']['ip']} (clusterset CIDR {CLUSTERSET_CIDR}), on every node")
    failures = total = 0
    for client in ("frontend/pod-a", "ns-ml/c5"):
        if client not in started:
            continue
        pod = started[client]
        r = pod.exec(["curl", "-sS", "--max-time", "5",
                      "http://orders.orders.svc.clusterset.local/whoami"], check=False)
        answered = r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"
        ok = answered == "orders/orders-1 " + daemons[gateway].call(
            "cluster.exports")["globalEgressIp"]
        failures += not ok
        total += 1
        print(f"   {client:16s} (on {pod.node}) curl http://orders.orders.svc.clusterset.local/"
              f"whoami -> {answered:28s} {'ok' if ok else 'FAIL'}")
    peers = daemons[gateway].call("cluster.peers")["peers"][0]
    print(f"   {gateway}: peer cluster-b via {peers['gatewayIp']}, SPIs out "
          f"{peers['outboundSpis']}, inner MTU {peers['innerMtu']}; esp_sealed "
          f"{daemons[gateway].counters()['esp_sealed']}, esp_opened "
          f"{daemons[gateway].counters()['esp_opened']}")
    print("   (the far pod sees cluster-gen's global egress address: both clusters use "
          "10.244.0.0/16)")
    print()
    return failures, total


def main():
    objects = load_objects(CLUSTER)
    nodes = [o for o in objects if o["kind"] == "Node"]
    pods = [o for o in objects if o["kind"] == "Pod"]
    services = [o for o in objects if o["kind"] == "Service"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    l7_rules = [o for o in objects if o["kind"] == "L7Rule"]
    print(f"== nodeplane demo: cluster-gen, {len(nodes)} nodes, {len(pods)} pods")
    with Lab("demo") as lab:
        daemons = {}
        for n in nodes:
            name = n["metadata"]["name"]
            d = lab.node(name, f"{internal_ip(n)}/24", n["spec"]["podCIDR"],
                         cluster_cidr=CLUSTER_CIDR, service_cidr=SERVICE_CIDR,
                         extra_args=["--cluster-id", "cluster-gen", "--cluster-global-cidr",
                                     GLOBAL_A, "--clusterset-cidr", CLUSTERSET_CIDR])
            daemons[name] = d
            print(f"   node {name}: {internal_ip(n)}, pods {n['spec']['podCIDR']}, "
                  f"nodeplane pid {d.proc.pid}")
        started = {}
        for p in pods:
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            node = p["spec"]["nodeName"]
            pod = lab.add_pod(daemons[node], ns, name)
            pod.node = node
            pod.dns = p["metadata"].get("labels", {}).get("k8s-app") == "kube-dns"
            if not pod.dns:
                ports = [c["containerPort"] for c in p["spec"]["containers"]
                         for c in c.get("ports", [])]
                pod.serve(http=ports or [8080], udp=[7001])
            pod.set_resolv_conf(ns, DNS_IP)
            started[f"{ns}/{name}"] = pod
            containers = ",".join(c["name"] for c in p["spec"]["containers"])
            print(f"   pod {ns + '/' + name:18s} {pod.ip:12s} on {node} (containers {containers})")

        # The kubelet's part: pod status with the addresses the CNI plugin gave them, in a
        # directory the agents watch beside the manifests.
        watched = lab.tmp / "cluster"
        watched.mkdir()
        (watched / "pods-status.yaml").write_text(yaml.safe_dump_all(
            [pod_with_status(p, started[f"{p['metadata']['namespace']}/{p['metadata']['name']}"])
             for p in pods]))
        manifests = [str(CLUSTER / f) for f in ("00-nodes.yaml", "01-namespaces.yaml",
                                                "02-pods.yaml", "03-services.yaml")]
        agent = str(build_dir() / "control/nodeplane-agent")
        for name, d in daemons.items():
            log = open(lab.tmp / f"agent-{name}.log", "w")
            proc = lab.popen([agent, "--node-name", name, "--socket", d.socket, "--manifests",
                              *manifests, str(watched)], stderr=log)
            print(f"   nodeplane-agent for {name}: pid {proc.pid}, manifests "
                  f"{CLUSTER.name}/0[0-3]-*.yaml + pod status")
        for name, d in daemons.items():
            wait_for(f"{name}'s agent", lambda d=d: d.call("status")["appliedGeneration"] > 0 and
                     len(d.call("service.list")["services"]) == len(services) and
                     len(d.call("node.list")["nodes"]) == len(nodes))
        for svc in daemons[nodes[0]["metadata"]["name"]].call("service.list")["services"]:
            backends = sorted({b["ip"] for port in svc["ports"] for b in port["backends"]})
            print(f"   service {svc['namespace']}/{svc['name']}: {svc['clusterIPs'][0]} -> "
                  + (", ".join(backends) or "(no endpoints)"))

        # Cluster DNS: every node's workers answer the cluster domain themselves (no pod, no
        # conntrack); the kube-dns pod runs a real upstream (Debian's unbound) for other names.
        for pod in started.values():
            if pod.dns:
                conf_dir = lab.tmp / f"unbound-{pod.name}"
                conf_dir.mkdir()
                conf = unbound.config(conf_dir, pod.ip, stub_zones=[("cluster.local", DNS_IP)],
                                      auth_data=[f"{UPSTREAM_NAME}. 5 IN A 192.0.2.80"])
                pod.popen(unbound.command(conf))
                print(f"   cluster DNS: {DNS_IP} answered by each node's workers; upstream for "
                      f"other names: unbound in {pod.namespace}/{pod.name} ({pod.ip})")
        time.sleep(1.0)
        print()

        names = [n for n, p in started.items() if not p.dns]
        width = max(len(n) for n in names) + 2
        print("== reachability (row = client, column = server; ping / HTTP :8080 / UDP echo)")
        print("   same node: through the node's data plane; other node: VXLAN between the two")
        print(" " * width + "".join(n.ljust(width) for n in names))
        failures = total = 0
        for src in names:
            row = src.ljust(width)
            for dst in names:
                if src == dst:
                    row += "-".ljust(width)
                    continue
                cell = check(started[src], started[dst], dst)
                total += 1
                failures += cell != "ok"
                row += cell.ljust(width)
            print(row)
        print()

        # Intra-pod: containers of one pod share its network namespace (seed: c7 <-> c8).
        peak = started.get("ns-ml/pod-peak")
        if peak:
            r = peak.exec(["curl", "-sS", "--max-time", "3", "http://127.0.0.1:8080/"],
                          check=False)
            intra = "ok" if r.stdout.strip() == "ns-ml/pod-peak" else "FAIL"
            print(f"== intra-pod c8 -> c7 via localhost:8080 in ns-ml/pod-peak: {intra}")
            failures += intra != "ok"
        print()
        print("== services by name (cluster DNS through the kube-dns VIP, then the service VIP)")
        service_checks = [
            ("ns-dev/c3", "pod-poc.ns-stg.svc.cluster.local", "ns-stg/c4"),
            ("ns-dev/c1", "pod-poc.ns-stg", "ns-stg/c4"),
            ("ns-stg/c4", "pod-poc", "ns-stg/c4"),
            ("ns-ml/c5", "pod-poc.ns-stg.svc.cluster.local", "ns-stg/c4"),
            ("frontend/pod-a", "backend-service.backend.svc.cluster.local", "backend/pod-b"),
        ]
        dns_before = {n: d.counters() for n, d in daemons.items()}
        for client, host, expected in service_checks:
            if client not in started:
                continue
            pod = started[client]
            r = pod.exec(["curl", "-sS", "--max-time", "3", f"http://{host}/"], check=False)
            answered = r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"
            ok = answered == expected
            failures += not ok
            total += 1
            print(f"   {client:16s} curl http://{host + '/':45s} -> {answered:14s}"
                  f" {'ok' if ok else 'FAIL'}")
        # A name outside the cluster domain: passed on to the upstream behind the Service.
        c1 = started.get("ns-dev/c1")
        if c1:
            r = c1.exec(["dig", "+short", "+time=2", "+tries=2", UPSTREAM_NAME], check=False)
            ok = r.stdout.strip() == "192.0.2.80"
            failures += not ok
            total += 1
            print(f"   {'ns-dev/c1':16s} dig {UPSTREAM_NAME:41s} -> {r.stdout.strip() or 'none':14s}"
                  f" {'ok' if ok else 'FAIL'} (answered by the upstream)")
        answered = sum(d.counters()[k] - dns_before[n][k] for n, d in daemons.items()
                       for k in ("dns_answers_a", "dns_nxdomain", "dns_nodata"))
        print(f"   the workers answered {answered} cluster DNS queries themselves "
              f"(A, NXDOMAIN of search-path tries, NODATA for AAAA)")
        print()

        f, t = cross_cluster(lab, daemons, started, nodes)
        failures += f
        total += t

        # NetworkPolicy and an L7 rule: their manifest appears in the directory the agents watch.
        shutil.copy(CLUSTER / "04-network-policies.yaml", watched)
        for name, d in daemons.items():
            wait_for(f"{name}'s policy", lambda d=d: len(d.call("policy.list")["policies"]) ==
                     len(policies) and len(d.call("policy.list")["l7"]["rules"]) ==
                     sum(len(r["spec"]["rules"]) for r in l7_rules) if d.node_name == "node-gpu"
                     else len(d.call("policy.list")["policies"]) == len(policies))
        print(f"== network policy ({len(policies)} NetworkPolicy, {len(l7_rules)} L7Rule: "
              f"04-network-policies.yaml copied where the agents watch, applied by them)")
        policy_checks = [
            ("frontend/pod-a", "http://backend-service.backend.svc.cluster.local/", "backend/pod-b"),
            ("frontend/pod-a", "http://backend-service.backend.svc.cluster.local/api/orders",
             "backend/pod-b"),
            ("ns-dev/c1", "http://backend-service.backend.svc.cluster.local/", "timeout"),
            ("ns-ml/c5", f"http://{started['backend/pod-b'].ip}:8080/", "timeout"),
            ("frontend/pod-a", "http://backend-service.backend.svc.cluster.local/admin", "reset"),
            ("ns-dev/c3", "http://pod-poc.ns-stg.svc.cluster.local/", "ns-stg/c4"),
        ]
        for client, url, expected in policy_checks:
            r = started[client].exec(["curl", "-sS", "--max-time", "2", url], check=False)
            if r.returncode == 0:
                answered = r.stdout.strip()
            elif r.returncode == 28:
                answered = "timeout"
            elif r.returncode == 56:
                answered = "reset"
            else:
                answered = f"error {r.returncode}"
            ok = answered == expected
            failures += not ok
            total += 1
            print(f"   {client:16s} curl {url:58s} -> {answered:14s} {'ok' if ok else 'FAIL'}")
        print()
        gpu = daemons.get("node-gpu")
        if gpu:
            print("== node-gpu: npctl policies; npctl policy log")
            print(gpu.npctl("policies").stdout)
            print(gpu.npctl("policy", "log").stdout)
        for name, d in daemons.items():
            print(f"== {name}")
            print(d.npctl("nodes").stdout)
            print(d.npctl("services").stdout)
            print(d.npctl("workers").stdout)
            print(d.npctl("drops").stdout or "   (no drops)\n")
        checks = total + (1 if peak else 0)
        print(f"== {checks - failures} of {checks} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
