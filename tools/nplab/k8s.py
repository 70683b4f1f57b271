"""The Kubernetes lab of ../shared/k8s-lab driven from Python, with nodeplane installed on its node
the way the DaemonSet does it: the agent's bootstrap writes the node and CNI configs from the Node
object, nodeplane-cni goes to /opt/cni/bin, the daemon (host path on) and the agent (against the
real API server) run inside the node. Used by tests/k8s and perf/k8s_bench.py.

Everything is removed by stop(): processes by PID, then the lab's own stop.sh --purge."""

import json
import os
import subprocess
import time
from pathlib import Path

from .lab import REPO, build_dir

# Where the lab is looked for: $NODEPLANE_K8S_LAB, next to the checkout, the workplace's share.
LAB_CANDIDATES = [Path(p) for p in (os.environ.get("NODEPLANE_K8S_LAB"),
                                     REPO.parent / "shared" / "k8s-lab",
                                     "/work/shared/k8s-lab") if p]
LAB_SRC = next((p for p in LAB_CANDIDATES if (p / "setup.sh").exists()), LAB_CANDIDATES[0])
NODE = "k8slab-node1"
NODE_IP = "10.200.0.1"
SOCKET = "/run/nodeplane/control.sock"


class LabError(RuntimeError):
    pass


class LabUnavailable(LabError):
    """The lab cannot start on this machine (not present, or its own check refused: root,
    cgroup v1, static libc, the Debian archive): said with the lab's reason, never silently."""


def wait_for(what, check, timeout=120, interval=1.0):
    """Polls check() until it returns something true; raises LabError naming `what`."""
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
    raise LabError(f"timed out waiting for {what} (last: {last})")


class K8sLab:
    def __init__(self, state_dir=None, cni="none", nodes=1):
        """cni: "none" (nodeplane is installed by install_nodeplane) or "bridge" (the lab's own
        Debian bridge + host-local, a baseline for benchmarks). nodes: 1 or 2 (the second joined
        over a veth underlay, lab0 on each)."""
        self.state = Path(state_dir or os.environ.get("NODEPLANE_K8S_LAB_DIR")
                          or f"/tmp/np-k8s-lab-{os.getpid()}")
        self.env = dict(os.environ, K8S_LAB_DIR=str(self.state), K8S_LAB_CNI=cni,
                        K8S_LAB_NODES=str(nodes))
        self.procs = []
        self.vars = {}

    def setup(self):
        if not (LAB_SRC / "setup.sh").exists():
            raise LabUnavailable("the k8s lab is in none of " +
                                 ", ".join(str(p) for p in LAB_CANDIDATES) +
                                 " (set NODEPLANE_K8S_LAB)")
        for attempt in (1, 2):
            r = subprocess.run([str(LAB_SRC / "setup.sh")], env=self.env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
            if r.returncode == 0:
                break
            # Once more from an empty state directory (a half-made node namespace does not heal).
            subprocess.run([str(LAB_SRC / "stop.sh"), "--purge"], env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        if r.returncode != 0:
            # Nothing of nodeplane runs yet: the lab itself cannot start on this machine.
            fatal = [line for line in r.stderr.splitlines() if "FATAL" in line]
            raise LabUnavailable("the k8s lab did not start: " +
                                 (fatal[-1] if fatal else r.stderr[-2000:]))
        self.vars = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def restart_api_server(self):
        """Kills kube-apiserver (by its PID, as a crash would: a graceful stop waits out the
        open watches for a minute) and lets the lab's setup.sh start it again: a new watch
        cache, which answers watches from older resource versions with 410 Gone."""
        pidfile = self.state / "lab/pids/kube-apiserver.pid"
        pid = int(pidfile.read_text())
        os.kill(pid, 9)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        r = subprocess.run([str(LAB_SRC / "setup.sh")], env=self.env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        if r.returncode != 0:
            raise LabError("kube-apiserver did not start again: " + r.stderr[-2000:])

    def leftovers(self, *namespaces):
        """What a kept lab (NODEPLANE_K8S_KEEP) still runs from an earlier run: stopped by PID."""
        for pidfile in sorted((self.state / "lab/pids").glob("nodeplane*.pid"), reverse=True):
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text()), 15)
                    time.sleep(2)
                except (ProcessLookupError, ValueError):
                    pass
                pidfile.unlink()
        for ns in namespaces:
            self.kubectl("delete", "namespace", ns, "--ignore-not-found", "--timeout=120s")

    def in_node(self, *cmd, check=True, timeout=60, input=None, node=1):
        r = subprocess.run([self.vars["IN_NODE"], "--node", str(node)] + [str(c) for c in cmd],
                           env=self.env,
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

    def start(self, name, *cmd, node=1):
        """A process inside a node (pid recorded for stop.sh too); its log in the state dir."""
        log = open(self.state / f"{name}.log", "w")
        p = subprocess.Popen([self.vars["IN_NODE"], "--node", str(node)] + [str(c) for c in cmd],
                             env=self.env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        (self.state / "lab/pids" / f"{name}.pid").write_text(str(p.pid))
        self.procs.append(p)
        return p

    def npctl(self, *args, node=1):
        r = self.in_node(build_dir() / "control/npctl", "--socket", SOCKET, "--json", *args,
                         check=False, node=node)
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
        if (LAB_SRC / "stop.sh").exists() and self.state.exists():
            subprocess.run([str(LAB_SRC / "stop.sh"), "--purge"], env=self.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    def agent_kubeconfig(self):
        """A kubeconfig with a token of the project's own ServiceAccount, bound by
        configs/k8s/02-rbac.yaml: the agent reads the API server with exactly those rights."""
        path = self.state / "nodeplane-agent.kubeconfig"
        if path.exists():
            return path
        import yaml
        k8s = REPO / "configs/k8s"
        self.kubectl("apply", "-f", str(k8s / "00-namespace.yaml"), "-f",
                     str(k8s / "01-l7rule-crd.yaml"), "-f",
                     str(k8s / "01-mcs-serviceexport-crd.yaml"), "-f", str(k8s / "02-rbac.yaml"))
        token = self.kubectl("-n", "nodeplane-system", "create", "token", "nodeplane",
                             "--duration", "24h").stdout.strip()
        admin = yaml.safe_load(Path(self.vars["KUBECONFIG"]).read_text())
        cluster = dict(admin["clusters"][0]["cluster"])
        ca = cluster.pop("certificate-authority", None)
        if ca:  # absolute, since this file lives elsewhere
            cluster["certificate-authority"] = str(Path(self.vars["KUBECONFIG"]).parent / ca)
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "nodeplane",
            "clusters": [{"name": "lab", "cluster": cluster}],
            "users": [{"name": "nodeplane", "user": {"token": token}}],
            "contexts": [{"name": "nodeplane",
                          "context": {"cluster": "lab", "user": "nodeplane"}}]}))
        return path

    def install_nodeplane(self, node=1, workers=1, uplink=None):
        """nodeplane as a node's CNI and Service proxy, as the DaemonSet installs it. uplink: the
        daemon's --uplink (two nodes: "net_af_packet0,iface=lab0", shared with the kernel)."""
        name = f"k8slab-node{node}"
        kubeconfig = self.agent_kubeconfig()
        suffix = "" if node == 1 else f"-n{node}"
        self.in_node("mkdir", "-p", "/opt/cni/bin", "/etc/cni/net.d", "/run/nodeplane", node=node)
        self.in_node("cp", build_dir() / "control/nodeplane-cni", "/opt/cni/bin/nodeplane-cni",
                     node=node)
        # The DaemonSet's bootstrap step: node config and CNI config from the Node object.
        template = self.state / f"nodeplane{suffix}.conf.template"
        template.write_text("cluster-cidr = 10.244.0.0/16\nservice-cidr = 10.96.0.0/16\n"
                            "host-interface = nodeplane0\ncontrol-socket = /run/nodeplane/"
                            f"control.sock\nstate-dir = /run/nodeplane\nworkers = {workers}\n"
                            "idle-sleep-us = 100\nmbufs = 8191\nconntrack-max = 65536\n"
                            # kubelet's clusterDNS: answered by the workers (the lab has no
                            # kube-dns Service to find it by)
                            "cluster-dns = 10.96.0.10\n" +
                            (f"uplink = {uplink}\n" if uplink else ""))
        mtu = "1450" if uplink else "1500"  # room for VXLAN between nodes
        self.in_node(build_dir() / "control/nodeplane-agent", "--kubeconfig",
                     kubeconfig, "--node-name", name, "--node-config-template",
                     template, "--write-node-config", "/run/nodeplane/node.conf",
                     "--write-cni-config", "/etc/cni/net.d/10-nodeplane.conflist", "--cni-mtu",
                     mtu, node=node)
        self.start(f"nodeplane{suffix}", build_dir() / "daemon/nodeplane", "--config",
                   "/run/nodeplane/node.conf", "--", "--no-huge", "-m", "384", "--no-pci",
                   "--file-prefix", f"npk8s{os.getpid()}n{node}", node=node)
        wait_for("the daemon's control socket", lambda: self.npctl("status", node=node),
                 timeout=30)
        self.start(f"nodeplane-agent{suffix}", build_dir() / "control/nodeplane-agent",
                   "--kubeconfig", kubeconfig, "--node-name", name, "--socket",
                   SOCKET, "--debounce-ms", "100", node=node)
        wait_for(f"{name} to be Ready", lambda: "True" in self.kubectl(
            "get", "node", name, "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout)

    def namespace(self, name):
        self.kubectl("create", "namespace", name)
        wait_for("the default service account", lambda: self.kubectl(
            "-n", name, "get", "serviceaccount", "default", check=False).returncode == 0)

    def ready_pods(self, namespace, selector):
        pods = json.loads(self.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o",
                                       "json").stdout)
        return [p for p in pods["items"]
                if {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
                .get("Ready") == "True"]
