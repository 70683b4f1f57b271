#!/usr/bin/env python3
"""make demo-k8s: the seed's cluster (configs/demo-cluster) as real Kubernetes objects on the lab of
../shared/k8s-lab, two nodes, with nodeplane as CNI and Service proxy on both.

The seed's Node objects become the lab's two nodes (node-cpu -> k8slab-node1, node-gpu ->
k8slab-node2); its Namespaces, Pods, Services and NetworkPolicies are applied with kubectl as
written (the L7 rule through the project's CRD), except that every container runs the lab's
busybox httpd on its containerPort (answering "<namespace>/<pod>") since the lab has no
registry. The kube-dns pod and Service are left out: cluster DNS is the data plane's
job (its own issue). The scheduler, kubelets, containerd, nodeplane-cni, the agents and the
daemons do the rest. Traffic between every pair of pods and to every Service goes through
`kubectl exec`, before and after the NetworkPolicies. Everything is removed on exit.

Run as root after `make`: /usr/bin/python3 tools/demo_k8s.py"""

import copy
import json
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nplab.k8s import K8sLab, LabError, wait_for  # noqa: E402
from nplab.lab import build_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "configs/demo-cluster"
NODES = {"node-cpu": "k8slab-node1", "node-gpu": "k8slab-node2"}
UPLINK = "net_af_packet0,iface=lab0"


def load(name):
    objects = []
    for doc in yaml.safe_load_all((CLUSTER / name).read_text()):
        if doc:
            objects.extend(doc.get("items", []) if doc.get("kind") == "List" else [doc])
    return objects


def is_dns(obj):
    labels = obj["metadata"].get("labels", {})
    return labels.get("k8s-app") == "kube-dns" or obj["metadata"]["name"] == "kube-dns"


def as_lab_pod(pod):
    """The seed's pod with the lab's busybox serving HTTP on each containerPort."""
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    spec["nodeName"] = NODES[spec["nodeName"]]
    spec["terminationGracePeriodSeconds"] = 1
    who = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    for c in spec["containers"]:
        ports = [p["containerPort"] for p in c.get("ports", []) if p.get("protocol", "TCP") == "TCP"]
        c["image"], c["imagePullPolicy"] = "k8slab.local/busybox:1.35", "Never"
        if ports:
            serve = "; ".join(f"httpd -p {p} -h /tmp/www" for p in ports)
            c["command"] = ["sh", "-c", f"mkdir -p /tmp/www; echo {who} > /tmp/www/index.html; "
                                        f"{serve}; exec sleep 100000"]
        else:
            c["command"] = ["sleep", "100000"]
    return pod


def apply(k, objects):
    k.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": objects}))


def fetch(k, pod, ip, port):
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    container = pod["spec"]["containers"][0]["name"]
    r = k.kubectl("-n", ns, "exec", name, "-c", container, "--", "sh", "-c",
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port} "
                  "| tail -n 1", check=False, timeout=30)
    return r.stdout.strip()


def matrix(k, pods, services):
    """Every pod to every other pod's first port and to every Service: the answer or '-'."""
    targets = []
    for p in pods:
        ports = [pt["containerPort"] for c in p["spec"]["containers"] for pt in c.get("ports", [])]
        if ports:
            status = json.loads(k.kubectl("-n", p["metadata"]["namespace"], "get", "pod",
                                          p["metadata"]["name"], "-o", "json").stdout)
            targets.append((f"{p['metadata']['namespace']}/{p['metadata']['name']}",
                            status["status"]["podIP"], ports[0]))
    for s in services:
        ip = k.kubectl("-n", s["metadata"]["namespace"], "get", "service", s["metadata"]["name"],
                       "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        port = s["spec"]["ports"][0]["port"]
        targets.append((f"svc {s['metadata']['namespace']}/{s['metadata']['name']}", ip, port))
    width = max(len(t[0]) for t in targets)
    for p in pods:
        src = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        print(f"   from {src}:")
        for name, ip, port in targets:
            if name == src:
                continue
            got = fetch(k, p, ip, port)
            print(f"      {name:{width}s} {ip}:{port:<5d} {got or '-'}")


def main():
    namespaces, pods = load("01-namespaces.yaml"), load("02-pods.yaml")
    services, policies = load("03-services.yaml"), load("04-network-policies.yaml")
    pods = [as_lab_pod(p) for p in pods if not is_dns(p)]
    services = [s for s in services if not is_dns(s)]
    print(f"== nodeplane demo on Kubernetes: {len(pods)} pods, {len(services)} services, "
          f"{len(policies)} policy objects, two lab nodes")
    k = K8sLab(nodes=2)
    try:
        k.setup()
        k.leftovers(*[n["metadata"]["name"] for n in namespaces
                      if n["metadata"]["name"] != "kube-system"])
        for node in (1, 2):
            k.install_nodeplane(node=node, uplink=UPLINK)
            print(f"   k8slab-node{node}: nodeplane and its agent up, node Ready")
        apply(k, namespaces)
        for n in namespaces:
            wait_for(f"{n['metadata']['name']}'s service account", lambda n=n: k.kubectl(
                "-n", n["metadata"]["name"], "get", "serviceaccount", "default",
                check=False).returncode == 0)
        apply(k, pods + services)
        for p in pods:
            ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
            wait_for(f"{ns}/{name} Running", lambda ns=ns, name=name: "Running" in k.kubectl(
                "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}").stdout, 180)
        print(k.kubectl("get", "pods", "-A", "-o", "wide").stdout)
        print("== every pod to every pod and Service, no NetworkPolicy")
        matrix(k, pods, services)
        apply(k, policies)
        time.sleep(3)  # the agents push the policy within their debounce
        print("== the same with the seed's NetworkPolicy and L7 rule")
        matrix(k, pods, services)
        print("== nodeplane on k8slab-node1:")
        print(k.in_node(build_dir() / "control/npctl", "--socket", "/run/nodeplane/control.sock",
                        "status", check=False).stdout)
    except LabError as e:
        sys.exit(f"demo-k8s: {e}")
    finally:
        k.stop()


if __name__ == "__main__":
    main()
