"""nodeplane-agent end to end: manifests in a watched directory, one agent per node pushing the
node's whole desired state to its daemon; what changes in the files reaches the daemons, bad
objects are skipped (the rest applies), objects a daemon refuses are left out, and a restarted
daemon gets everything again. npctl trace follows a packet through the real stages."""

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from nplab import Lab
from nplab.lab import run

CPU_IP, GPU_IP = "192.168.50.10", "192.168.50.11"


def node(name, ip, cidr):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}]}}


def pod(p, labels, node_name, port=8080):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": p.namespace, "name": p.name, "labels": labels,
                         "uid": "0000", "resourceVersion": "1"},
            "spec": {"nodeName": node_name, "containers": [
                {"name": "c", "image": "x", "ports": [{"name": "http", "containerPort": port,
                                                       "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": p.ip, "podIPs": [{"ip": p.ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def service(ns, name, ip, selector, target="http"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "selector": selector,
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                "targetPort": target}]}}


def write(path, objects):
    path.write_text(yaml.safe_dump_all(objects))


def wait_for(what, condition, timeout=15):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if condition():
                return
        except Exception as e:  # the daemon may be restarting
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def services_of(d):
    return {f"{s['namespace']}/{s['name']}": s for s in d.call("service.list")["services"]}


@pytest.fixture(scope="module")
def cluster():
    with Lab("a") as lab:
        kw = dict(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        cpu = lab.node("node-cpu", f"{CPU_IP}/24", "10.244.1.0/24", **kw)
        gpu = lab.node("node-gpu", f"{GPU_IP}/24", "10.244.2.0/24", **kw)
        client = lab.add_pod(cpu, "web", "client")
        w1 = lab.add_pod(gpu, "web", "w1")
        w2 = lab.add_pod(cpu, "web", "w2")
        for w in (w1, w2):
            w.serve(http=[8080])
        manifests = lab.tmp / "manifests"
        manifests.mkdir()
        write(manifests / "00-nodes.yaml", [node("node-cpu", CPU_IP, "10.244.1.0/24"),
                                            node("node-gpu", GPU_IP, "10.244.2.0/24")])
        write(manifests / "01-namespaces.yaml",
              [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}])
        write(manifests / "02-pods.yaml", [pod(client, {"app": "client"}, "node-cpu"),
                                           pod(w1, {"app": "web"}, "node-gpu"),
                                           pod(w2, {"app": "web2"}, "node-cpu")])
        write(manifests / "03-services.yaml",
              [service("web", "web", "10.96.0.40", {"app": "web"}),
               service("web", "web2", "10.96.0.41", {"app": "web2"})])
        agents = {d.node_name: lab.agent(d, "--manifests", str(manifests)) for d in (cpu, gpu)}
        for d in (cpu, gpu):
            wait_for(f"{d.node_name}'s first apply",
                     lambda d=d: len(services_of(d)) == 2 and len(d.call("node.list")["nodes"]) == 2)
        yield lab, cpu, gpu, client, w1, w2, manifests, agents


def test_the_agent_pushes_nodes_services_and_endpoints(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    svc = services_of(cpu)["web/web"]
    assert [b["ip"] for b in svc["ports"][0]["backends"]] == [w1.ip]
    assert svc["ports"][0]["backends"][0]["port"] == 8080  # targetPort "http", the pod's port
    assert cpu.call("status")["appliedGeneration"] >= 1
    r = client.exec(["curl", "-sS", "--max-time", "3", "http://10.96.0.40/"], check=False)
    assert r.stdout.strip() == "web/w1", r.stderr


def test_trace_follows_a_packet_through_the_real_stages(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    flows_before = cpu.call("conntrack")["entries"]
    out = cpu.call("trace", {"from": "web/client", "dst": "10.96.0.40", "dport": 80})
    stages = {s["stage"]: s for s in out["stages"]}
    assert stages["services+policy"]["packet"]["dst"] == w1.ip
    assert stages["services+policy"]["packet"]["dport"] == 8080
    assert stages["route"]["action"] == "transmit"
    assert stages["route"]["to"] == "uplink"
    assert stages["route"]["packet"]["vxlan"]["outerDst"] == GPU_IP
    assert out["verdict"] == "transmitted to uplink"
    assert cpu.call("conntrack")["entries"] == flows_before, "a trace creates no flow"
    # A drop names its reason; npctl prints the table.
    out = cpu.call("trace", {"from": "web/client", "dst": "10.96.0.99", "dport": 80})
    assert out["verdict"] == "dropped: service_unknown"
    text = cpu.npctl("trace", "--from", "web/client", "--dst", "10.96.0.41", "--dport", "80").stdout
    assert "transmitted to pod web/w2" in text and "services+policy" in text, text


def test_changes_in_the_files_reach_the_daemons(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    generation = cpu.call("status")["appliedGeneration"]
    write(manifests / "03-services.yaml", [service("web", "web", "10.96.0.40", {"app": "web"})])
    for d in (cpu, gpu):
        wait_for("web2 to be swept", lambda d=d: set(services_of(d)) == {"web/web"})
    assert cpu.call("status")["appliedGeneration"] > generation
    write(manifests / "03-services.yaml",
          [service("web", "web", "10.96.0.40", {"app": "web"}),
           service("web", "web2", "10.96.0.41", {"app": "web2"})])
    for d in (cpu, gpu):
        wait_for("web2 back", lambda d=d: set(services_of(d)) == {"web/web", "web/web2"})


def test_service_exports_reach_the_daemons(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    write(manifests / "05-exports.yaml", [
        {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
         "metadata": {"namespace": "web", "name": "web"}}])

    def exported(d):
        return [(e["service"], e["clusterIp"], e["state"]) for e in d.call("cluster.exports")["exports"]]
    for d in (cpu, gpu):
        wait_for("the export", lambda d=d: exported(d) == [("web/web", "10.96.0.40", "active")])
    (manifests / "05-exports.yaml").unlink()
    for d in (cpu, gpu):
        wait_for("the export swept", lambda d=d: exported(d) == [])


def test_bad_objects_are_skipped_and_the_rest_applies(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    (manifests / "10-broken.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    write(manifests / "11-bad.yaml", [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "web", "name": "badport"},
         "spec": {"clusterIP": "10.96.0.42", "ports": [{"port": "eighty"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"namespace": "web", "name": "badop"},
         "spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Maybe"}]}}},
        service("web", "good", "10.96.0.43", {"app": "web"})])
    for d in (cpu, gpu):
        wait_for("the good service", lambda d=d: "web/good" in services_of(d))
    assert "web/badport" not in services_of(cpu)
    log = Path(agents["node-cpu"].log_path).read_text()
    assert "10-broken.yaml" in log and "YAML error" in log, log[-3000:]
    assert "service web/badport: field 'spec.ports[0].port': must be a number, not string" in log
    assert "networkpolicy web/badop: field 'spec.podSelector.matchExpressions[0].operator'" in log
    (manifests / "10-broken.yaml").unlink()
    (manifests / "11-bad.yaml").unlink()
    for d in (cpu, gpu):
        wait_for("good gone", lambda d=d: "web/good" not in services_of(d))


def test_objects_the_daemon_refuses_are_left_out(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    # Outside the service CIDR: well-formed, but the daemon refuses it.
    write(manifests / "12-refused.yaml", [service("web", "outside", "192.0.2.10", {"app": "web"}),
                                          service("web", "fine", "10.96.0.44", {"app": "web"})])
    for d in (cpu, gpu):
        wait_for("the fine service", lambda d=d: "web/fine" in services_of(d))
    assert "web/outside" not in services_of(cpu)
    log = Path(agents["node-cpu"].log_path).read_text()
    assert "leaving out service web/outside" in log, log[-3000:]
    (manifests / "12-refused.yaml").unlink()
    for d in (cpu, gpu):
        wait_for("fine gone", lambda d=d: "web/fine" not in services_of(d))


def test_a_restarted_daemon_gets_the_whole_state_again(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    assert cpu.stop() == 0
    cpu.start()
    wait_for("the re-push", lambda: set(services_of(cpu)) == {"web/web", "web/web2"} and
             len(cpu.call("node.list")["nodes"]) == 2, timeout=20)
    wait_for("traffic again", lambda: client.exec(
        ["curl", "-sS", "--max-time", "2", "http://10.96.0.40/"], check=False).stdout.strip() ==
        "web/w1", timeout=20)


def test_the_agent_counts_what_it_did_on_its_metrics_endpoint(cluster):
    lab, cpu, gpu, client, w1, w2, manifests, agents = cluster
    log = Path(agents["node-cpu"].log_path).read_text()
    m = re.search(r"metrics: http://(127\.0\.0\.1:\d+)/metrics", log)
    assert m, log[-2000:]
    text = run(["curl", "-sS", f"http://{m.group(1)}/metrics"]).stdout

    def value(name, **labels):
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                got = dict(re.findall(r'(\w+)="([^"]*)"', line))
                if all(got.get(k) == v for k, v in labels.items()):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert value("nodeplane_agent_applies_total", result="ok") >= 1, text
    assert value("nodeplane_agent_applies_total", result="refused") >= 1, text  # web/outside
    assert value("nodeplane_agent_skipped_objects_total", kind="service") >= 1, text  # badport
    assert value("nodeplane_agent_events_total", kind="all", type="LIST") >= 1, text
    assert value("nodeplane_agent_generation") == cpu.call("status")["appliedGeneration"]
    checked = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
