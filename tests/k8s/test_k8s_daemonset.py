"""The deployment as shipped, on a real Kubernetes node: the image of configs/k8s/Dockerfile is
built here (tools/nplab/image.py: debootstrap, the runtime stage's packages, this build's
binaries), imported into both lab nodes' containerd, and configs/k8s/ is applied with kubectl.
The DaemonSet's pod then runs on each node as the kubelet runs it: hostNetwork, privileged, a hugepages
emptyDir (2 MB pages are reserved on the machine for it), the bootstrap init container writing
the node config and the CNI config from the Node object and copying the CNI binaries onto the
node, the daemon's readiness and liveness probes on its HTTP endpoint, the agent reading the API
server with the ServiceAccount's own token.

The nodes are joined over the lab's underlay (lab0 on each, the kernel's address on it): the
daemons' af_packet uplinks share it with the kernel, VXLAN runs between them. What differs from
a production cluster is only the ConfigMap's values, each named in LAB_CONFIG below. The lab's
reasons to skip are those of tests/k8s/k8s_support.py; an image that cannot be built here
fails."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from k8s_support import client_pod, http_get, reaches_api_server, wait_for, web_per_node

from nplab.image import ImageError, build_image
from nplab.k8s import NODE_IP, K8sLab, LabError, LabUnavailable
from nplab.k8s import wait_for as lab_wait_for
from nplab.lab import REPO

K8S = REPO / "configs/k8s"
SYSTEM = "nodeplane-system"
NS = "np-ds"
NODES = {"k8slab-node1": NODE_IP, "k8slab-node2": "10.200.0.2"}
HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
# Each node's pod asks for 1 GiB of 2 MB pages; the two nodes share the machine's pool (the lab
# enforces no hugetlb limits) and each kubelet sees all of it as its capacity.
PAGES = 1280

# The ConfigMap's values a node of this lab needs instead of the shipped ones: (shipped line,
# the lab's, why).
LAB_CONFIG = [
    ("    uplink = net_af_packet0,iface=eth0", "    uplink = net_af_packet0,iface=lab0",
     "the lab nodes' interface (their addresses, 10.200.0.x, stay the kernel's)"),
    ("    workers = 1", "    workers = 1\n    idle-sleep-us = 100",
     "two shared cores: the worker sleeps when idle instead of holding one"),
    ("    # cluster-dns = 10.96.0.10", "    cluster-dns = 10.96.0.10",
     "kubelet's clusterDNS; the lab has no kube-dns Service to find it by"),
    ('  # kubernetes-service-host: "192.168.50.10"', f'  kubernetes-service-host: "{NODE_IP}"',
     "the lab's API server"),
    ('  # kubernetes-service-port: "6443"', '  kubernetes-service-port: "6443"', ""),
]

WORKLOAD = web_per_node(NS) + client_pod(NS, "client", "k8slab-node1")


def lab_configmap():
    text = (K8S / "03-configmap.yaml").read_text()
    for shipped, lab, _ in LAB_CONFIG:
        assert text.count(shipped) == 1, f"03-configmap.yaml no longer has {shipped!r}"
        text = text.replace(shipped, lab)
    return text


@pytest.fixture(scope="module")
def image():
    try:
        return build_image(log=lambda line: print(line, flush=True))
    except ImageError as e:
        pytest.fail(f"the image of configs/k8s/Dockerfile cannot be built: {e}")


@pytest.fixture(scope="module")
def lab(image):
    pages = int(HUGEPAGES.read_text())
    k = K8sLab(nodes=2)
    try:
        if pages < PAGES:  # before the kubelet starts: it reads the capacity then
            HUGEPAGES.write_text(str(PAGES))
            assert int(HUGEPAGES.read_text()) >= 512, "cannot reserve 1 GiB of 2 MB pages"
        try:
            k.setup()
        except LabUnavailable as e:
            pytest.skip(f"the Kubernetes lab cannot start here: {e}")
        k.leftovers(NS)
        for node in (1, 2):
            r = subprocess.run([k.vars["CTR"], "--node", str(node), "images", "import",
                                str(image[0])], text=True, capture_output=True, timeout=300)
            assert r.returncode == 0, f"ctr import on node {node}: {r.stdout}{r.stderr}"
        k.kubectl("apply", "-f", K8S / "00-namespace.yaml", "-f", K8S / "01-l7rule-crd.yaml",
                  "-f", K8S / "01-mcs-serviceexport-crd.yaml", "-f", K8S / "02-rbac.yaml")
        k.kubectl("apply", "-f", "-", input=lab_configmap())
        k.kubectl("apply", "-f", K8S / "04-daemonset.yaml")
        yield k
    finally:
        try:
            if k.vars and not os.environ.get("NODEPLANE_K8S_KEEP"):
                k.kubectl("-n", SYSTEM, "delete", "daemonset", "nodeplane", "--ignore-not-found",
                          "--wait=true", "--timeout=60s", check=False)
        finally:
            k.stop()
            if pages < PAGES and not os.environ.get("NODEPLANE_K8S_KEEP"):
                HUGEPAGES.write_text(str(pages))


def daemon_pods(k):
    """The DaemonSet's pods by node name."""
    pods = json.loads(k.kubectl("-n", SYSTEM, "get", "pods", "-l",
                                "app.kubernetes.io/name=nodeplane", "-o", "json").stdout)["items"]
    return {p["spec"].get("nodeName"): p for p in pods}


def all_ready(k, old_uids=()):
    pods = daemon_pods(k)
    return set(pods) == set(NODES) and all(
        ready(p) and p["metadata"]["uid"] not in old_uids for p in pods.values()) and pods


def ready(pod):
    return pod and {c["type"]: c["status"] for c in pod["status"].get("conditions", [])
                    }.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp")


def in_daemon(k, node, *cmd, check=False):
    return k.kubectl("-n", SYSTEM, "exec", daemon_pods(k)[node]["metadata"]["name"], "-c",
                     "nodeplane", "--", *cmd, check=check)


def npctl(k, *args, node="k8slab-node1"):
    r = in_daemon(k, node, "npctl", "--socket", "/run/nodeplane/control.sock", "--json", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def web_pods(k):
    return k.ready_pods(NS, "app=web")


def containers_said(k):
    """What each container of the DaemonSet's pod last printed (for a failure's message)."""
    said = []
    for node, pod in daemon_pods(k).items():
        for c, extra in (("bootstrap", []), ("nodeplane", []), ("nodeplane", ["--previous"]),
                         ("agent", [])):
            r = k.kubectl("-n", SYSTEM, "logs", pod["metadata"]["name"], "-c", c, *extra,
                          check=False)
            said.append(f"--- {node} {c} {' '.join(extra)}:\n" + "\n".join(
                (r.stdout + r.stderr).splitlines()[-15:]))
    return "\n".join(said)


def test_the_daemonset_pod_starts_from_the_image_and_turns_ready(lab):
    try:
        pods = lab_wait_for("the DaemonSet's pod Ready on both nodes (its /readyz probe)",
                            lambda: all_ready(lab), timeout=300)
    except LabError as e:
        pytest.fail(f"{e}\n{containers_said(lab)}")
    for node, pod in pods.items():
        statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
        assert set(statuses) == {"nodeplane", "agent"}
        for name, c in statuses.items():
            assert c["restartCount"] == 0, (node, name, c)
            assert c["image"].endswith("nodeplane/nodeplane:0.1.0"), c["image"]
        init = pod["status"]["initContainerStatuses"][0]
        assert init["state"]["terminated"]["exitCode"] == 0, init
        assert pod["spec"]["hostNetwork"] is True
    for number, node in enumerate(NODES, 1):
        # The bootstrap wrote the CNI config and copied the plugins; containerd found them.
        wait_for(f"{node} Ready (CNI config from the init container)", lambda: "True" in
                 lab.kubectl("get", "node", node, "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}").stdout)
        listing = lab.in_node("ls", "/opt/cni/bin", "/etc/cni/net.d", node=number).stdout.split()
        assert "nodeplane-cni" in listing and "10-nodeplane.conflist" in listing, listing


def test_the_daemon_runs_as_the_configmap_says(lab):
    pods = daemon_pods(lab)
    for number, (node, ip) in enumerate(NODES.items(), 1):
        status = npctl(lab, "status", node=node)
        text = json.dumps(status)
        cidr = f"10.244.{number - 1}.0/24"
        assert ip in text and cidr in text, status  # from the Node object
        ports = {p["role"]: p for p in npctl(lab, "ports", node=node)["ports"]}
        lab0 = lab.in_node("ip", "-o", "link", "show", "lab0", node=number).stdout
        lab0 = lab0.split("link/ether ")[1].split()[0]
        assert ports["uplink"]["driver"] == "net_af_packet", ports  # the image has the driver
        assert ports["uplink"]["mac"] == lab0, (ports["uplink"], lab0)  # the node's interface
        assert ports["host"]["name"] == "pod:nodeplane0-dp", ports  # the host path
        # EAL on the hugepages emptyDir, not --no-huge.
        maps = in_daemon(lab, node, "sh", "-c", "grep -c /dev/hugepages /proc/1/maps")
        assert int(maps.stdout.strip() or 0) > 0, maps.stdout + maps.stderr
        # The agent in its container reads the API server (at the ConfigMap's address, with the
        # ServiceAccount's token) and applies: kubernetes.default reaches the daemon.
        logs = lab.kubectl("-n", SYSTEM, "logs", pods[node]["metadata"]["name"], "-c",
                           "agent").stdout
        assert f"source: api https://{NODE_IP}:6443" in logs and "applied generation" in logs
        assert status["appliedGeneration"] >= 1, status
        services = {(s["namespace"], s["name"]): s
                    for s in npctl(lab, "services", node=node)["services"]}
        api = services[("default", "kubernetes")]
        assert api["clusterIPs"] == ["10.96.0.1"], api
        assert api["ports"][0]["backends"][0]["ip"] == NODE_IP, api
        nodes = {n["name"] for n in npctl(lab, "nodes", node=node)["nodes"]}
        assert nodes == set(NODES), nodes  # each knows the other's VTEP


def test_pods_become_ready_through_probes_and_the_service_answers(lab):
    lab.namespace(NS)
    lab.kubectl("apply", "-f", "-", input=WORKLOAD)
    pods = wait_for("both web pods Ready (probes through the host path)",
                    lambda: len(web_pods(lab)) == 2 and web_pods(lab), timeout=180)
    assert {p["spec"]["nodeName"] for p in pods} == set(NODES)
    for p in pods:
        attached = {a["ip"] for a in npctl(lab, "pods", node=p["spec"]["nodeName"])["pods"]}
        assert p["status"]["podIP"] in attached, (p["status"]["podIP"], attached)
        assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    lab.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    seen = set()
    for _ in range(16):
        out = wait_for(f"an answer from {ip}:80",
                       lambda: http_get(lab, NS, "client", ip, 80), timeout=30)
        assert out.startswith("hello-from-web-"), out
        seen.add(out)
    assert len(seen) == 2, seen  # the backend on the other node too, through the overlay
    remote = next(p for p in pods if p["spec"]["nodeName"] != "k8slab-node1")
    out = http_get(lab, NS, "client", remote["status"]["podIP"], 8080)
    assert out.startswith("hello-from-web-"), out  # pod to pod across nodes
    by_name = wait_for("web by its cluster DNS name",
                       lambda: http_get(lab, NS, "client", f"web.{NS}.svc.cluster.local", 80),
                       timeout=30)
    assert by_name.startswith("hello-from-web-"), by_name
    ok, out = reaches_api_server(lab, NS, "client")
    assert ok, out


def test_a_replaced_daemon_pod_takes_the_pods_back(lab):
    """kubectl rollout restart (an upgrade): the new pod re-attaches every pod from the state
    directory on the host; nothing of the workload restarts and the Service answers again."""
    before = {p["metadata"]["uid"] for p in daemon_pods(lab).values()}
    web = {p["spec"]["nodeName"]: p["status"]["podIP"] for p in web_pods(lab)}
    lab.kubectl("-n", SYSTEM, "rollout", "restart", "daemonset/nodeplane")
    wait_for("new DaemonSet pods Ready on both nodes", lambda: all_ready(lab, before),
             timeout=300)
    for node, ip in web.items():
        wait_for(f"the web pod of {node} in its new daemon", lambda: ip in {
            p["ip"] for p in npctl(lab, "pods", node=node)["pods"]}, timeout=60)
    ip = lab.kubectl("-n", NS, "get", "service", "web", "-o",
                     "jsonpath={.spec.clusterIP}").stdout.strip()
    out = wait_for(f"an answer from {ip}:80 after the restart",
                   lambda: http_get(lab, NS, "client", ip, 80), timeout=60)
    assert out.startswith("hello-from-web-"), out
    for p in web_pods(lab):
        assert p["status"]["containerStatuses"][0]["restartCount"] == 0, p["status"]


def watch_restarts(k, reason):
    """The agent's nodeplane_agent_watch_restarts_total by kind for one reason (its metrics
    endpoint on the node's loopback: the pod has the host's network)."""
    text = k.in_node("curl", "-sf", "http://127.0.0.1:9965/metrics").stdout
    counts = {}
    for line in text.splitlines():
        if line.startswith("nodeplane_agent_watch_restarts_total{") and \
                f'reason="{reason}"' in line:
            kind = line.split('kind="')[1].split('"')[0]
            counts[kind] = float(line.split()[-1])
    return counts


def test_the_agent_lists_again_when_the_api_server_answers_410_gone(lab):
    """A restarted API server has a new watch cache: the agent's watches resume from resource
    versions it no longer holds and get 410 Gone (as the real server sends it), list again, and
    changes made afterwards reach the daemon."""
    gone = watch_restarts(lab, "gone")
    lab.restart_api_server()
    wait_for("410 Gone answered to the agent's Service watch", lambda: watch_restarts(
        lab, "gone").get("Service", 0) > gone.get("Service", 0), timeout=120)
    lab.kubectl("-n", NS, "create", "service", "clusterip", "after-gone", "--tcp=81:8080")
    wait_for("a Service made after the relist in the daemon", lambda: any(
        s["name"] == "after-gone" for s in npctl(lab, "services")["services"]), timeout=60)


def test_del_of_a_sandbox_whose_netns_is_gone_releases_the_pod(lab):
    """containerd tears a sandbox down even when its network namespace path has gone (a node
    restart, a cleaned /var/run/netns): nodeplane-cni's DEL still detaches the pod's port and
    host-local releases the address."""
    lab.kubectl("apply", "-f", "-", input=f"""
apiVersion: v1
kind: Pod
metadata: {{name: orphan, namespace: {NS}}}
spec:
  nodeName: k8slab-node1
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: k8slab.local/busybox:1.35, imagePullPolicy: Never, command: [sleep, "100000"]}}
""")
    lab.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/orphan", "--timeout=120s")
    ip = lab.kubectl("-n", NS, "get", "pod", "orphan", "-o",
                     "jsonpath={.status.podIP}").stdout.strip()
    assert ip in {p["ip"] for p in npctl(lab, "pods")["pods"]}
    netns = [n for n in (line.split()[0] for line in lab.in_node(
        "ip", "netns", "list").stdout.splitlines())
        if f" {ip}/" in lab.in_node("ip", "netns", "exec", n, "ip", "-4", "-o", "addr",
                                   check=False).stdout]
    assert len(netns) == 1, netns
    lab.in_node("ip", "netns", "delete", netns[0])
    lab.kubectl("-n", NS, "delete", "pod", "orphan", "--timeout=60s")
    wait_for("the pod's port detached", lambda: ip not in {
        p["ip"] for p in npctl(lab, "pods")["pods"]}, timeout=30)
    leases = lab.in_node("ls", "/var/lib/cni/networks/nodeplane").stdout.split()
    assert ip not in leases, leases


def test_deleting_the_daemonset_removes_what_the_daemon_made(lab):
    lab.kubectl("delete", "namespace", NS, "--timeout=120s")
    lab.kubectl("-n", SYSTEM, "delete", "daemonset", "nodeplane", "--wait=true",
                "--timeout=90s")
    wait_for("the DaemonSet's pods gone", lambda: not daemon_pods(lab), timeout=90)
    for number in (1, 2):
        links = lab.in_node("ip", "-o", "link", "show", node=number).stdout
        assert "nodeplane0" not in links, links
        tables = lab.in_node("nft", "list", "tables", check=False, node=number).stdout
        assert "nodeplane" not in tables, tables
