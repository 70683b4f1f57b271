"""nodeplane on a real Kubernetes node: the lab of ../shared/k8s-lab (API server, scheduler,
controller manager, kubelet, containerd; v1.28.7, offline) with nodeplane as its CNI and
kube-proxy replacement (no kube-proxy runs), driven with kubectl only.

The daemon and the agent run inside the lab's node namespace the way the DaemonSet runs them
(hostNetwork): the agent's bootstrap writes the CNI config from the Node object, the agent reads
the real API server, nodeplane-cni is called by containerd from /opt/cni/bin, and the host path
(--host-interface) carries kubelet's probes into the pods.

The lab needs root and cgroup v1; when it cannot start the suite fails with the lab's own FATAL
line (it never skips)."""

import json
import re
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_SRC = Path(os.environ.get("NODEPLANE_K8S_LAB", REPO.parent / "shared" / "k8s-lab"))
BUILD = Path(os.environ.get("NODEPLANE_BUILD_DIR", REPO / "build"))
STATE = Path(os.environ.get("NODEPLANE_K8S_LAB_DIR", f"/tmp/np-k8s-lab-{os.getpid()}"))
NODE = "k8slab-node1"
NODE_IP = "10.200.0.1"
NS = "np-e2e"
SOCKET = "/run/nodeplane/control.sock"

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


class K8sLab:
    def __init__(self):
        self.env = dict(os.environ, K8S_LAB_DIR=str(STATE))
        self.procs = []
        self.vars = {}

    def setup(self):
        if not (LAB_SRC / "setup.sh").exists():
            pytest.fail(f"the k8s lab is not at {LAB_SRC} (set NODEPLANE_K8S_LAB)")
        r = subprocess.run([str(LAB_SRC / "setup.sh")], env=self.env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if r.returncode != 0:
            fatal = [line for line in r.stderr.splitlines() if "FATAL" in line]
            pytest.fail("the k8s lab did not start: " + (fatal[-1] if fatal else r.stderr[-2000:]))
        self.vars = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def leftovers(self):
        """What a kept lab (NODEPLANE_K8S_KEEP) still runs from an earlier run: stopped by PID."""
        for name in ("nodeplane-agent", "nodeplane"):
            pidfile = STATE / "lab/pids" / f"{name}.pid"
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text()), 15)
                    time.sleep(2)
                except (ProcessLookupError, ValueError):
                    pass
                pidfile.unlink()
        self.kubectl("delete", "namespace", NS, "--ignore-not-found", "--timeout=120s")

    def in_node(self, *cmd, check=True, timeout=60, input=None):
        r = subprocess.run([self.vars["IN_NODE"]] + [str(c) for c in cmd], env=self.env,
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd}: exit {r.returncode}: {r.stdout} {r.stderr}")
        return r

    def kubectl(self, *args, check=True, timeout=120, input=None):
        r = subprocess.run([self.vars["KUBECTL"]] + list(args), env=self.env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout} {r.stderr}")
        return r

    def start(self, name, *cmd):
        """A process inside the node (pid recorded for stop.sh too); its log in the state dir."""
        log = open(STATE / f"{name}.log", "w")
        p = subprocess.Popen([self.vars["IN_NODE"]] + [str(c) for c in cmd], env=self.env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (STATE / "lab/pids" / f"{name}.pid").write_text(str(p.pid))
        self.procs.append(p)
        return p

    def npctl(self, *args):
        r = self.in_node(BUILD / "control/npctl", "--socket", SOCKET, "--json", *args, check=False)
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None

    def stop(self):
        if os.environ.get("NODEPLANE_K8S_KEEP"):  # debugging: leave the lab up
            return
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if (LAB_SRC / "stop.sh").exists() and STATE.exists():
            subprocess.run([str(LAB_SRC / "stop.sh"), "--purge"], env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def wait_for(what, check, timeout=120, interval=1.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            last = e
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last})")


@pytest.fixture(scope="module")
def lab():
    k = K8sLab()
    try:
        k.setup()
        k.leftovers()
        k.in_node("mkdir", "-p", "/opt/cni/bin", "/etc/cni/net.d", "/run/nodeplane")
        k.in_node("cp", BUILD / "control/nodeplane-cni", "/opt/cni/bin/nodeplane-cni")
        # The DaemonSet's bootstrap step: node config and CNI config from the Node object.
        template = STATE / "nodeplane.conf.template"
        template.write_text("cluster-cidr = 10.244.0.0/16\nservice-cidr = 10.96.0.0/16\n"
                            "host-interface = nodeplane0\ncontrol-socket = /run/nodeplane/"
                            "control.sock\nstate-dir = /run/nodeplane\nworkers = 1\n"
                            "idle-sleep-us = 100\nmbufs = 8191\nconntrack-max = 65536\n")
        k.in_node(BUILD / "control/nodeplane-agent", "--kubeconfig", k.vars["KUBECONFIG"],
                  "--node-name", NODE, "--node-config-template", template,
                  "--write-node-config", "/run/nodeplane/node.conf", "--write-cni-config",
                  "/etc/cni/net.d/10-nodeplane.conflist", "--cni-mtu", "1500")
        k.start("nodeplane", BUILD / "daemon/nodeplane", "--config", "/run/nodeplane/node.conf",
                "--", "--no-huge", "-m", "384", "--no-pci", "--file-prefix",
                f"npk8s{os.getpid()}")
        wait_for("the daemon's control socket", lambda: k.npctl("status"), timeout=30)
        k.start("nodeplane-agent", BUILD / "control/nodeplane-agent", "--kubeconfig",
                k.vars["KUBECONFIG"], "--node-name", NODE, "--socket", SOCKET,
                "--debounce-ms", "100")
        wait_for("the node to be Ready", lambda: "True" in k.kubectl(
            "get", "node", NODE, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout)
        k.kubectl("create", "namespace", NS)
        wait_for("the default service account", lambda: k.kubectl(
            "-n", NS, "get", "serviceaccount", "default", check=False).returncode == 0)
        k.kubectl("apply", "-f", "-", input=WEB)
        yield k
    finally:
        k.stop()


def ready_pods(k, selector):
    pods = json.loads(k.kubectl("-n", NS, "get", "pods", "-l", selector, "-o", "json").stdout)
    out = []
    for p in pods["items"]:
        cond = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if cond.get("Ready") == "True":
            out.append(p)
    return out


def http_from_client(k, ip, port, timeout=5):
    r = k.kubectl("-n", NS, "exec", "client", "--", "sh", "-c",
                  f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w {timeout} {ip} {port} "
                  "| tail -n 1", check=False, timeout=timeout + 30)
    return r.stdout.strip()


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
    # Plain HTTP to the API server's TLS port: Go's TLS server answers it with a 400 of its own,
    # so an answer proves the whole path (ClusterIP -> the API server on the node address, back).
    r = lab.kubectl("-n", NS, "exec", "client", "--", "sh", "-c",
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.96.0.1 443",
                    check=False, timeout=40)
    assert "HTTP request to an HTTPS server" in r.stdout, r.stdout + r.stderr


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
