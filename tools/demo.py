#!/usr/bin/env python3
"""make demo: the seed's cluster (configs/demo-cluster) on this machine.

Every Node object becomes a node: its own network namespace on a shared underlay (a bridge), a
nodeplane daemon inside it with its address and pod CIDR from the manifest, and the other nodes
told to it over the control socket (as the agent will). Every Pod becomes a network namespace on
its node, wired by nodeplane-cni exactly as a container runtime would; each serves HTTP on its
containerPort and UDP echo. Then real traffic goes between every pair of pods and the
reachability table is printed. Everything is removed on exit."""

import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nplab import Lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "configs/demo-cluster"
CLUSTER_CIDR, SERVICE_CIDR = "10.244.0.0/16", "10.96.0.0/12"
DNS_IP = "10.96.0.10"  # the kube-dns Service


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


def service_args(svc, pods, started):
    """A Service manifest with its endpoints (pods of its namespace matching its selector, their
    named container ports), as service.set takes it — what the EndpointSlice controller and the
    agent will do in a cluster."""
    meta, spec = svc["metadata"], svc["spec"]
    selector = spec.get("selector", {})
    endpoints = []
    for p in pods:
        if p["metadata"]["namespace"] != meta["namespace"]:
            continue
        labels = p["metadata"].get("labels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        pod = started[f"{meta['namespace']}/{p['metadata']['name']}"]
        named = {cp["name"]: cp["containerPort"]
                 for c in p["spec"]["containers"] for cp in c.get("ports", []) if "name" in cp}
        endpoints.append({"ip": pod.ip, "nodeName": p["spec"]["nodeName"], "ready": True,
                          "ports": named})
    ports = []
    for port in spec["ports"]:
        entry = {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP"),
                 "port": port["port"], "targetPort": port.get("targetPort", port["port"])}
        if "nodePort" in port:
            entry["nodePort"] = port["nodePort"]
        ports.append(entry)
    return {"namespace": meta["namespace"], "name": meta["name"],
            "type": spec.get("type", "ClusterIP"), "clusterIPs": [spec["clusterIP"]],
            "ports": ports, "endpoints": endpoints}


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
    services = [o for o in objects if o["kind"] == "Service"]
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    l7_rules = [o for o in objects if o["kind"] == "L7Rule"]
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

        # Services, on every node (what the agent will push), and the cluster DNS behind kube-dns.
        zone = {}
        for svc in services:
            args = service_args(svc, pods, started)
            for d in daemons.values():
                d.call("service.set", args)
            name = f"{args['name']}.{args['namespace']}.svc.cluster.local."
            zone[name] = args["clusterIPs"][0]
            print(f"   service {args['namespace']}/{args['name']}: {args['clusterIPs'][0]} -> "
                  + (", ".join(e["ip"] for e in args["endpoints"]) or "(no endpoints)"))
        zone_file = lab.tmp / "zone.json"
        zone_file.write_text(json.dumps(zone))
        for pod in started.values():
            if pod.dns:
                pod.popen(["/usr/bin/python3", str(REPO / "tools/nplab/dns.py"), "--zone",
                           str(zone_file)])
        time.sleep(0.5)
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
        print()

        # NetworkPolicy and L7 rules from the manifests, with the identities selectors pick from
        # (what the agent will push), on every node.
        identities = []
        for p in pods:
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            identities.append({
                "namespace": ns, "name": name, "ip": started[f"{ns}/{name}"].ip,
                "labels": p["metadata"].get("labels", {}),
                "ports": [{k: port[k] for k in ("name", "containerPort", "protocol") if k in port}
                          for c in p["spec"]["containers"] for port in c.get("ports", [])]})
        policy_state = {"namespaces": namespaces, "pods": identities,
                        "networkPolicies": policies, "l7Rules": l7_rules}
        for d in daemons.values():
            d.call("policy.apply", policy_state)
        print(f"== network policy ({len(policies)} NetworkPolicy, {len(l7_rules)} L7Rule from "
              f"{CLUSTER.name}/04-network-policies.yaml)")
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
