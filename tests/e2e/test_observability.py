"""Observability as operators use it: Prometheus scrapes /metrics during traffic (checked by
promtool), the DaemonSet's probes ask /healthz and /readyz, and Debian's dpdk-telemetry.py lists
and runs nodeplane's own /nodeplane/ commands on the daemon's telemetry socket."""

import json
import re
import subprocess

import pytest

from nplab import Lab
from nplab.lab import REPO, run


@pytest.fixture(scope="module")
def node():
    with Lab("o") as lab:
        d = lab.node("node-obs", "192.168.50.10/24", "10.244.1.0/24",
                     cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        a = lab.add_pod(d, "app", "a")
        b = lab.add_pod(d, "app", "b")
        b.serve(http=[8080])
        yield {"lab": lab, "d": d, "a": a, "b": b, "prefix": f"{lab.prefix}-node-obs"}


def get(d, path):
    """(HTTP status, body) of the daemon's endpoint, from the node's namespace."""
    address = d.call("status")["metrics"]
    r = d.exec(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", f"http://{address}{path}"],
               check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body.strip() if path != "/metrics" else body


def metric(text, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_ready_only_once_a_desired_state_is_applied(node):
    d = node["d"]
    assert get(d, "/healthz") == (200, "ok")
    code, why = get(d, "/readyz")
    assert code == 503 and "no desired state applied" in why, (code, why)
    d.call("apply", {"generation": 1, "services": []})
    assert get(d, "/readyz") == (200, "ready")


def test_scrape_during_traffic_moves_the_counters_and_promtool_accepts_it(node):
    d, a, b = node["d"], node["a"], node["b"]
    d.call("apply", {"generation": 2, "services": []})
    code, before = get(d, "/metrics")
    assert code == 200
    for _ in range(20):
        r = a.exec(["curl", "-sS", "--max-time", "3", f"http://{b.ip}:8080/"], check=False)
        assert r.returncode == 0, r.stderr
    a.exec(["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.244.1.250"], check=False)  # no pod
    code, after = get(d, "/metrics")
    assert code == 200
    # 20 HTTP exchanges: at least 5 packets each way per exchange went through the pod ports.
    grown = (metric(after, "nodeplane_rx_packets_total")
             - metric(before, "nodeplane_rx_packets_total"))
    assert grown >= 200, grown
    pod_in = (metric(after, "nodeplane_forward_count_total", direction="ingress", port_role="pod")
              - metric(before, "nodeplane_forward_count_total", direction="ingress",
                       port_role="pod"))
    assert pod_in >= 200, pod_in
    unknown = (metric(after, "nodeplane_drop_count_total", reason="pod_unknown")
               - metric(before, "nodeplane_drop_count_total", reason="pod_unknown"))
    assert unknown == 3, unknown
    assert metric(after, "nodeplane_pods") == 2
    # The three drops are in the flow log too (npctl observe), and nothing was lost.
    assert metric(after, "nodeplane_flow_log_records_total") >= 3
    assert metric(after, "nodeplane_flow_log_lost_total") == 0
    assert metric(after, "nodeplane_apply_total", result="ok") >= 1
    checked = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=after, text=True,
                             capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dpdk_telemetry_lists_and_runs_the_nodeplane_commands(node):
    d = node["d"]
    r = subprocess.run(["/usr/bin/dpdk-telemetry.py", "-f", node["prefix"]],
                       input="/\n/nodeplane/drops\n/nodeplane/workers\n/nodeplane/conntrack\n",
                       text=True, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    replies = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    commands = replies[0]["/"]
    for c in ("/nodeplane/drops", "/nodeplane/workers", "/nodeplane/conntrack",
              "/nodeplane/dns"):
        assert c in commands, commands
    drops = replies[1]["/nodeplane/drops"]
    assert drops.get("pod_unknown", 0) >= 3, drops
    later = {x["reason"]: x["packets"] for x in d.call("drops")["drops"]}
    # The same counters as npctl drops, read a moment later: background traffic (the pods'
    # IPv6 router solicitations) may have added to them since, never taken away.
    assert all(later.get(k, 0) >= v for k, v in drops.items()), (drops, later)
    assert later["pod_unknown"] == drops["pod_unknown"], (drops, later)
    workers = replies[2]["/nodeplane/workers"]
    assert workers["worker0_rx_packets"] > 0, workers
    assert "capacity" in replies[3]["/nodeplane/conntrack"]


def test_metrics_endpoint_can_be_turned_off_and_a_taken_port_does_not_stop_the_node(node):
    lab = node["lab"]
    first = lab.node("node-obs2", "192.168.50.11/24", "10.244.2.0/24",
                     extra_args=["--metrics-address", "127.0.0.1:9964"])
    # Another daemon in the same namespace cannot have the port: it runs on, and says so.
    second = lab.daemon("node-obs3", "192.168.50.12/24", "10.244.3.0/24", netns=first.netns,
                        extra_args=["--metrics-address", "127.0.0.1:9964"])
    assert first.call("status")["metrics"] == "127.0.0.1:9964"
    assert second.call("status")["metrics"].startswith("failed:"), second.call("status")
    off = lab.daemon("node-obs4", "192.168.50.13/24", "10.244.4.0/24", netns=first.netns,
                     extra_args=["--metrics-address", "off"])
    assert off.call("status")["metrics"] == "off"
    assert run(["true"]).returncode == 0


def test_the_grafana_dashboard_asks_for_metrics_that_exist_in_valid_promql(node, tmp_path):
    dashboard = json.loads((REPO / "configs/grafana/nodeplane-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    # Syntax: promtool checks them as recording rules ($instance as Grafana would fill it in).
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel{i}", "expr": e.replace("$instance", ".*")}
        for i, e in enumerate(exprs)]}]}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    checked = subprocess.run(["/usr/bin/promtool", "check", "rules", str(tmp_path / "rules.json")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Names: every daemon metric a panel uses is in a scrape (the agent's are its own endpoint's).
    _, scrape = get(node["d"], "/metrics")
    exported = {line.split()[2] for line in scrape.splitlines() if line.startswith("# TYPE")}
    used = set(re.findall(r"\b(nodeplane_[a-z0-9_]+?)(?:_bucket)?\b(?=[{\[(\s)]|$)",
                          " ".join(exprs)))
    assert len(used) >= 15, used
    missing = {n for n in used if not n.startswith("nodeplane_agent_")} - exported
    assert not missing, missing
