#!/usr/bin/env python3
"""make demo: the seed's cluster (configs/demo-cluster) on this machine.

Every Node object becomes a node: its own network namespace on a shared underlay (a bridge), a
nodeplane daemon inside it with its address and pod CIDR from the manifest, and the other nodes
told to it over the control socket (as the agent will). Every Pod becomes a network namespace on
its node, wired by nodeplane-cni exactly as a container runtime would; each serves HTTP on its
containerPort and UDP echo. Then real traffic goes between every pair of pods and the
reachability table is printed. Everything is removed on exit."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nplab import Lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "configs/demo-cluster"
CLUSTER_CIDR, SERVICE_CIDR = "10.244.0.0/16", "10.96.0.0/12"


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


def check(a, b, dst_name):
    ok_ping = a.ping(b.ip, count=1, timeout=2)
    http = a.exec(["curl", "-sS", "--max-time", "3", f"http://{b.ip}:8080/"], check=False)
    ok_http = http.returncode == 0 and http.stdout.strip() == dst_name
    ok_udp = a.probe("udp", b.ip, "7001").returncode == 0
    failed = [n for n, ok in (("ping", ok_ping), ("http", ok_http), ("udp", ok_udp)) if not ok]
    return "ok" if not failed else "FAIL:" + ",".join(failed)


def main():
    objects = load_objects(CLUSTER)
    nodes = [o for o in objects if o["kind"] == "Node"]
    pods = [o for o in objects if o["kind"] == "Pod"]
    print(f"== nodeplane demo: cluster-gen, {len(nodes)} nodes, {len(pods)} pods")
    with Lab("demo") as lab:
        daemons = {}
        for n in nodes:
            name = n["metadata"]["name"]
            d = lab.node(name, f"{internal_ip(n)}/24", n["spec"]["podCIDR"],
                         cluster_cidr=CLUSTER_CIDR, service_cidr=SERVICE_CIDR)
            daemons[name] = d
            print(f"   node {name}: {internal_ip(n)}, pods {n['spec']['podCIDR']}, "
                  f"nodeplane pid {d.proc.pid}")
        for d in daemons.values():  # every daemon learns every node
            for other in daemons.values():
                d.set_node(other)

        started = {}
        for p in pods:
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            node = p["spec"]["nodeName"]
            pod = lab.add_pod(daemons[node], ns, name)
            ports = [c["containerPort"] for c in p["spec"]["containers"] for c in c.get("ports", [])]
            pod.serve(http=ports or [8080], udp=[7001])
            pod.node = node
            started[f"{ns}/{name}"] = pod
            containers = ",".join(c["name"] for c in p["spec"]["containers"])
            print(f"   pod {ns + '/' + name:16s} {pod.ip:12s} on {node} (containers {containers})")
        print()

        names = list(started)
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
        print("== not shown yet: pod-poc.ns-stg.svc.cluster.local and "
              "backend-service.backend.svc.cluster.local (Service VIPs)")
        print()
        for name, d in daemons.items():
            print(f"== {name}")
            print(d.npctl("nodes").stdout)
            print(d.npctl("workers").stdout)
            print(d.npctl("drops").stdout or "   (no drops)\n")
        checks = total + (1 if peak else 0)
        print(f"== {checks - failures} of {checks} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
