#!/usr/bin/python3
"""A real Kubernetes node (../shared/k8s-lab) with nodeplane as CNI and Service proxy: the time from
`kubectl apply` of a Deployment of N pods (busybox httpd, HTTP readiness probe) with a Service to
every pod Ready and every pod a ready endpoint of the Service's EndpointSlices. Ready means
kubelet's probe passed through nodeplane's host path, so this is the whole path a rollout takes:
scheduler, kubelet, containerd, nodeplane-cni, the daemon's attach, probes, the agent.

The same rollout on the lab's own Debian bridge CNI (bridge + host-local, kubelet's probes over
the kernel's bridge) is the baseline, measured in the same run.

Run as root from the repository (after `make`): /usr/bin/python3 perf/k8s_bench.py [--pods 50]
[--skip-bridge].
The lab is started, and purged at the end (tools/nplab/k8s.py). perf/RESULTS.md records figures.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nplab.k8s import K8sLab, wait_for  # noqa: E402

NS = "np-bench"


def deployment(replicas):
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: k8slab.local/busybox:1.35
        imagePullPolicy: Never
        command: ["sh", "-c", "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        readinessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
"""


def ready_endpoints(k):
    slices = json.loads(k.kubectl("-n", NS, "get", "endpointslices", "-l",
                                  "kubernetes.io/service-name=web", "-o", "json").stdout)
    return sum(1 for s in slices["items"] for e in s.get("endpoints") or []
               if e.get("conditions", {}).get("ready"))


def rollout(k, pods, label):
    """kubectl apply of the Deployment, then seconds to the first and every pod Ready and to every
    pod a ready endpoint."""
    k.namespace(NS)
    t0 = time.perf_counter()
    k.kubectl("apply", "-f", "-", input=deployment(pods))
    first = None
    while True:
        ready = len(k.ready_pods(NS, "app=web"))
        if ready and first is None:
            first = time.perf_counter() - t0
        if ready == pods:
            break
        if time.perf_counter() - t0 > 600:
            raise SystemExit(f"{label}: only {ready}/{pods} pods Ready after 600 s")
        time.sleep(0.5)
    all_ready = time.perf_counter() - t0
    wait_for(f"{pods} ready endpoints", lambda: ready_endpoints(k) == pods, 300, 0.5)
    endpoints = time.perf_counter() - t0
    print(f"  {label:38s} first pod Ready {first:5.1f} s, all {pods} Ready {all_ready:5.1f} s, "
          f"all in the Service's endpoints {endpoints:5.1f} s", flush=True)
    k.kubectl("delete", "namespace", NS, "--timeout=300s")
    return {"first": first, "ready": all_ready, "endpoints": endpoints}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--skip-bridge", action="store_true",
                    help="leave out the baseline (the lab's Debian bridge CNI)")
    args = ap.parse_args()
    print(f"k8s_bench: a Deployment of {args.pods} pods with an HTTP readiness probe and a "
          "Service, one lab node", flush=True)
    k = K8sLab()
    try:
        k.setup()
        k.leftovers(NS)
        k.install_nodeplane()
        ours = rollout(k, args.pods, "nodeplane (CNI + Service proxy)")
    finally:
        k.stop()
    if args.skip_bridge:
        return
    k = K8sLab(cni="bridge")
    try:
        k.setup()
        k.leftovers(NS)
        bridge = rollout(k, args.pods, "Debian bridge CNI (no Service proxy)")
    finally:
        k.stop()
    print(f"  ratio, nodeplane vs bridge: all Ready {ours['ready'] / bridge['ready']:.2f}x the "
          f"time, endpoints {ours['endpoints'] / bridge['endpoints']:.2f}x")


if __name__ == "__main__":
    main()
