"""nodeplane on a real Kubernetes node: the lab of ../shared/k8s-lab (API server, scheduler,
controller manager, kubelet, containerd; v1.28.7, offline) with nodeplane as its CNI and
kube-proxy replacement (no kube-proxy runs), driven with kubectl only.

The daemon and the agent run inside the lab's node namespace the way the DaemonSet runs them
(hostNetwork): the agent's bootstrap writes the CNI config from the Node object, the agent reads
the real API server, nodeplane-cni is called by containerd from /opt/cni/bin, and the host path
(--host-interface) carries kubelet's probes into the pods.

The lab needs root, cgroup v1 and the Debian archive (for its packages). Where it is absent or
its own checks refuse the machine, the suite is skipped with the lab's reason in the summary;
once the lab runs, every failure is a failure."""

import json
import re
import time

import pytest
from k8s_support import http_get, reaches_api_server, started_lab, wait_for

from nplab.k8s import NODE_IP

NS = "np-e2e"

WEB = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{rollingUpdate: {{maxUnavailable: 0, maxSurge: 1}}}}
  template:
    metadata: {{labels: {{app: web}}, annotations: {{rev: "1"}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: k8slab.local/busybox:1.35
        imagePullPolicy: Never
        command: ["sh", "-c", "echo hello-from-$(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 1}}
        livenessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 2,
                        failureThreshold: 3}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NS}, labels: {{app: client}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: k8slab.local/busybox:1.35
    imagePullPolicy: Never
    command: ["sleep", "100000"]
"""


@pytest.fixture(scope="module")
def lab():
    yield from started_lab(NS, WEB)


def ready_pods(k, selector):
    return k.ready_pods(NS, selector)


def http_from_client(k, ip, port, timeout=5):
    return http_get(k, NS, "client", ip, port, timeout=timeout)


def test_pods_get_nodeplane_addresses_and_become_ready_through_probes(lab):
    pods = wait_for("both web pods Ready (kubelet httpGet probes through the host path)",
                    lambda: len(ready_pods(lab, "app=web")) == 2 and ready_pods(lab, "app=web"),
                    timeout=180)
    attached = {p["ip"] for p in lab.npctl("pods")["pods"]}
    for p in pods:
        assert p["status"]["podIP"].startswith("10.244.0."), p["status"]
        assert p["status"]["podIP"] in attached, (p["status"]["podIP"], attached)
        assert p["status"]["containerStatuses"][0]["restartCount"] == 0  # liveness never failed
    wait_for("the client pod Ready", lambda: ready_pods(lab, "app=client"), timeout=120)


def test_endpointslices_fill_and_the_service_answers_by_cluster_ip(lab):
    wait_for("2 ready endpoints", lambda: len([
        e for s in json.loads(lab.kubectl("-n", NS, "get", "endpointslices", "-l",
                                          "kubernetes.io/service-name=web", "-o",
                                          "json").stdout)["items"]
        for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]) == 2)
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    seen = set()
    for _ in range(12):
        out = wait_for(f"an answer from {ip}:80", lambda: http_from_client(lab, ip, 80), 30)
        assert out.startswith("hello-from-web-"), out
        seen.add(out)
    assert len(seen) == 2, seen  # both backends answer


def test_a_pod_reaches_kubernetes_default(lab):
    ok, out = reaches_api_server(lab, NS, "client")
    assert ok, out


def test_cluster_dns_by_name_through_the_resolv_conf_kubelet_wrote(lab):
    # nameserver 10.96.0.10, search np-e2e.svc.cluster.local ..., ndots:5: the workers answer.
    lab.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    r = lab.kubectl("-n", NS, "exec", "client", "--", "nslookup", f"web.{NS}.svc.cluster.local",
                    check=False)
    assert ip in r.stdout, r.stdout + r.stderr
    # By its short name through the search path (busybox nc resolves with the C library).
    out = http_from_client(lab, "web", 80)
    assert out.startswith("hello-from-web-"), out
    looked_up = lab.npctl("dns", f"web.{NS}.svc.cluster.local")
    assert looked_up and [rr["data"] for rr in looked_up["answer"]] == [ip], looked_up


def test_the_node_reaches_a_pod_and_the_cluster_ip(lab):
    pod_ip = ready_pods(lab, "app=web")[0]["status"]["podIP"]
    r = lab.in_node("curl", "-sS", "-m", "5", f"http://{pod_ip}:8080/index.html", check=False)
    assert r.stdout.startswith("hello-from-web-"), r.stdout + r.stderr
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    r = lab.in_node("curl", "-sS", "-m", "5", f"http://{ip}/index.html", check=False)
    assert r.stdout.startswith("hello-from-web-"), r.stdout + r.stderr


def test_the_node_reaches_the_node_port_on_its_own_address(lab):
    r = lab.in_node("curl", "-sS", "-m", "5", f"http://{NODE_IP}:30080/index.html", check=False)
    assert r.stdout.startswith("hello-from-web-"), r.stdout + r.stderr


def test_network_policy_default_deny_then_allow(lab):
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    lab.kubectl("apply", "-f", "-", input=f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-all, namespace: {NS}}}
spec: {{podSelector: {{}}, policyTypes: [Ingress]}}
""")
    wait_for("default deny in force", lambda: http_from_client(lab, ip, 80, timeout=2) == "", 30)
    time.sleep(4)  # probes keep passing: the node always reaches its pods
    assert len(ready_pods(lab, "app=web")) == 2
    lab.kubectl("apply", "-f", "-", input=f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-client, namespace: {NS}}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]}}]
""")
    wait_for("the allow rule in force",
             lambda: http_from_client(lab, ip, 80).startswith("hello-from-web-"), 30)
    lab.kubectl("-n", NS, "delete", "networkpolicy", "deny-all", "allow-client")


def test_rolling_update_loses_no_request(lab):
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    lab.kubectl("-n", NS, "patch", "deployment", "web", "-p",
                '{"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}}')
    failures, answers = 0, 0
    deadline = time.time() + 120
    while time.time() < deadline:
        out = http_from_client(lab, ip, 80, timeout=3)
        answers += 1
        failures += 0 if out.startswith("hello-from-web-") else 1
        status = lab.kubectl("-n", NS, "rollout", "status", "deployment/web", "--timeout=1s",
                             check=False)
        if status.returncode == 0:
            break
    assert status.returncode == 0, "the rollout did not finish"
    assert failures == 0, f"{failures} of {answers} requests failed during the rollout"


def test_deleting_everything_leaves_nothing_behind(lab):
    lab.kubectl("delete", "namespace", NS, "--timeout=120s")
    wait_for("every pod port detached", lambda: lab.npctl("pods")["pods"] == [], 60)
    names = [link["ifname"] for link in json.loads(lab.in_node("ip", "-j", "link").stdout)]
    assert not [n for n in names if re.fullmatch(r"np[0-9a-f]{13}", n)], names
