"""Services end to end: nodeplane as the kube-proxy replacement of a two-node cluster.

node-cpu (c1, c4 clients; w1 backend) and node-gpu (w2, w3 backends) sit on an underlay whose
gateway (a router namespace) leads to an "outside" host; an external client sits on the underlay.
Services are pushed to both daemons as the agent will, one per behaviour under test."""

import time

import pytest

from nplab import Lab
from nplab.lab import run

CPU_IP, GPU_IP, CLIENT_IP = "192.168.50.10", "192.168.50.11", "192.168.50.99"
CPU_OVERLAY = "10.244.1.0"  # node-cpu's overlay address: the source of its SNAT inside the cluster


@pytest.fixture(scope="module")
def cluster():
    with Lab("s") as lab:
        outside = lab.router()
        kw = dict(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                  extra_args=["--underlay-gateway", "192.168.50.1"])
        cpu = lab.node("node-cpu", f"{CPU_IP}/24", "10.244.1.0/24", **kw)
        gpu = lab.node("node-gpu", f"{GPU_IP}/24", "10.244.2.0/24", **kw)
        for d, other in ((cpu, gpu), (gpu, cpu)):
            d.set_node(other)
        pods = {
            "c1": lab.add_pod(cpu, "ns-dev", "c1"),
            "c4": lab.add_pod(cpu, "ns-stg", "c4"),
            "w1": lab.add_pod(cpu, "backend", "w1"),
            "w2": lab.add_pod(gpu, "backend", "w2"),
            "w3": lab.add_pod(gpu, "backend", "w3"),
        }
        for name in ("w1", "w2", "w3"):
            pods[name].serve(http=[8080], udp=[7001])
        lab.popen(["ip", "netns", "exec", outside, "/usr/bin/python3",
                   str(lab.tmp.parent / "x")] if False else
                  ["ip", "netns", "exec", outside, "/usr/bin/python3",
                   str(__import__("nplab").lab.REPO / "tools/nplab/probe.py"), "serve", "--name",
                   "outside/host", "--http", "8080"])
        client = lab.add_node_netns("client", f"{CLIENT_IP}/24")
        time.sleep(0.5)

        w1, w2, w3 = pods["w1"], pods["w2"], pods["w3"]
        http = {"name": "http", "port": 80, "targetPort": 8080}
        dns = {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 7001}

        def svc(name, ip, ports, eps, **fields):
            for d in (cpu, gpu):
                d.set_service("backend", name, ip, ports, eps, **fields)

        svc("web", "10.96.0.30", [http, dns], [w1, w2, w3])
        svc("np-cluster", "10.96.0.31", [dict(http, nodePort=30080)], [w1, w2, w3], type="NodePort")
        svc("np-local", "10.96.0.32", [dict(http, nodePort=30081)], [w2, w3], type="NodePort",
            externalTrafficPolicy="Local")
        svc("hairpin", "10.96.0.33", [http], [w1])
        svc("empty", "10.96.0.34", [http, dns], [])
        svc("udp-move", "10.96.0.35", [dns], [w1, w2])
        svc("sticky", "10.96.0.36", [http], [w1], sessionAffinity="ClientIP",
            sessionAffinityTimeoutSeconds=3)
        svc("refusing", "10.96.0.37", [dict(dns, targetPort=7999)], [w2])
        svc("pmtu", "10.96.0.38", [dns], [w2])
        svc("ext-ip", "10.96.0.39", [http], [w2], externalIPs=["198.51.100.7"])

        yield {"lab": lab, "cpu": cpu, "gpu": gpu, "pods": pods, "client": client,
               "outside": outside, "svc": svc}


def whoami(pod, url):
    r = pod.exec(["curl", "-sS", "--max-time", "3", url], check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def from_client(env, url, timeout=3):
    r = run(["ip", "netns", "exec", env["client"], "curl", "-sS", "--max-time", str(timeout), url],
            check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error({r.returncode})"


def test_clusterip_reaches_every_backend_with_maglev_spread(cluster):
    c1 = cluster["pods"]["c1"]
    counts = {}
    n = 150
    for _ in range(n):
        name = whoami(c1, "http://10.96.0.30/")
        counts[name] = counts.get(name, 0) + 1
    assert set(counts) == {"backend/w1", "backend/w2", "backend/w3"}, counts
    # Maglev gives each backend a third of the table; connections (random source ports) follow.
    for name, k in counts.items():
        assert k >= n / 3 * 0.5, f"{name} got {k} of {n}: {counts}"
    listing = cluster["cpu"].call("service.list")
    web = next(s for s in listing["services"] if s["name"] == "web")
    shares = [b["maglevEntries"] for b in web["ports"][0]["backends"]]
    assert max(shares) - min(shares) <= 1, shares


def test_clusterip_udp(cluster):
    r = cluster["pods"]["c4"].probe("udp", "10.96.0.30", "53")
    assert r.returncode == 0, r.stdout


def test_nodeport_cluster_policy_reaches_all_backends_and_snats_remote_ones(cluster):
    seen = {}
    for _ in range(40):
        out = from_client(cluster, f"http://{CPU_IP}:30080/whoami")
        seen[out] = seen.get(out, 0) + 1
    # Local backend: the client's address is kept; remote ones see node-cpu's overlay address.
    assert f"backend/w1 {CLIENT_IP}" in seen, seen
    assert {f"backend/w2 {CPU_OVERLAY}", f"backend/w3 {CPU_OVERLAY}"} & set(seen), seen
    assert not [k for k in seen if k.startswith("error")], seen


def test_nodeport_local_policy_keeps_the_client_address(cluster):
    seen = {from_client(cluster, f"http://{GPU_IP}:30081/whoami") for _ in range(10)}
    assert seen <= {f"backend/w2 {CLIENT_IP}", f"backend/w3 {CLIENT_IP}"}, seen


def test_nodeport_local_policy_without_local_endpoint_is_dropped(cluster):
    cpu = cluster["cpu"]
    before = cpu.drops().get("service_no_local_endpoint", 0)
    assert from_client(cluster, f"http://{CPU_IP}:30081/", timeout=1).startswith("error")
    assert cpu.drops().get("service_no_local_endpoint", 0) > before


def test_external_ip_reaches_its_service(cluster):
    run(["ip", "netns", "exec", cluster["client"], "ip", "route", "replace", "198.51.100.7/32",
         "via", GPU_IP])
    assert from_client(cluster, "http://198.51.100.7/whoami") == f"backend/w2 {CLIENT_IP}"


def test_hairpin_a_pod_reaching_itself_through_its_service(cluster):
    w1 = cluster["pods"]["w1"]
    # It lands on itself; the source is node-cpu's overlay address, so the reply comes back
    # through the data plane instead of staying inside the pod.
    assert whoami(w1, "http://10.96.0.33/whoami") == f"backend/w1 {CPU_OVERLAY}"


def test_no_endpoints_refuses_at_once(cluster):
    c1 = cluster["pods"]["c1"]
    start = time.time()
    r = c1.exec(["curl", "-sS", "--max-time", "5", "http://10.96.0.34/"], check=False)
    elapsed = time.time() - start
    assert r.returncode == 7, r.stderr  # "Couldn't connect": refused, not timed out
    assert elapsed < 1.0, elapsed
    r = c1.probe("udp", "10.96.0.34", "53", "--expect-refused")
    assert r.returncode == 0 and "refused" in r.stdout, r.stdout
    drops = cluster["cpu"].drops()
    assert drops.get("service_no_endpoints", 0) >= 2


def test_port_unreachable_from_a_backend_reaches_the_client_through_the_vip(cluster):
    r = cluster["pods"]["c1"].probe("udp", "10.96.0.37", "53", "--expect-refused")
    assert r.returncode == 0 and "refused" in r.stdout, r.stdout
    assert cluster["cpu"].counters()["icmp_translated"] >= 1


def test_path_mtu_discovery_through_a_vip(cluster):
    c4 = cluster["pods"]["c4"]
    hostif = c4.result["interfaces"][0]["name"]
    c4.exec(["ip", "link", "set", "eth0", "mtu", "1500"])
    cluster["cpu"].exec(["ip", "link", "set", hostif, "mtu", "1500"])
    try:
        r = c4.probe("udp-pmtu", "10.96.0.38", "53", "--size", "1472", "--count", "10", timeout=60)
        assert r.returncode == 0 and "path_mtu=1450" in r.stdout, r.stdout
    finally:
        c4.exec(["ip", "link", "set", "eth0", "mtu", "1450"])
        cluster["cpu"].exec(["ip", "link", "set", hostif, "mtu", "1450"])


def test_udp_flow_moves_when_its_backend_is_removed(cluster):
    c1, (w1, w2) = cluster["pods"]["c1"], (cluster["pods"]["w1"], cluster["pods"]["w2"])
    first = c1.probe("udp", "10.96.0.35", "53", "--sport", "41000", "--whoami").stdout.split()[0]
    assert first in ("backend/w1", "backend/w2")
    keep = w2 if first == "backend/w1" else w1
    cluster["svc"]("udp-move", "10.96.0.35", [{"name": "dns", "protocol": "UDP", "port": 53,
                                               "targetPort": 7001}], [keep])
    second = c1.probe("udp", "10.96.0.35", "53", "--sport", "41000", "--whoami").stdout.split()[0]
    assert second == f"{keep.namespace}/{keep.name}", (first, second)


def test_session_affinity_holds_and_expires(cluster):
    c1, pods, cpu = cluster["pods"]["c1"], cluster["pods"], cluster["cpu"]
    http = {"name": "http", "port": 80, "targetPort": 8080}
    assert whoami(c1, "http://10.96.0.36/") == "backend/w1"
    # More backends arrive: the client stays with w1 while its record lasts.
    cluster["svc"]("sticky", "10.96.0.36", [http], [pods["w1"], pods["w2"], pods["w3"]],
                   sessionAffinity="ClientIP", sessionAffinityTimeoutSeconds=3)
    for _ in range(10):
        assert whoami(c1, "http://10.96.0.36/") == "backend/w1"
    records = [r for r in cpu.call("affinity")["records"] if r["service"].startswith("backend/sticky")]
    assert len(records) == 1 and records[0]["client"] == c1.ip and records[0]["timeoutMs"] == 3000
    time.sleep(4.5)  # idle past the timeout: the record ages out
    records = [r for r in cpu.call("affinity")["records"] if r["service"].startswith("backend/sticky")]
    assert not records, records
    after = {whoami(c1, "http://10.96.0.36/") for _ in range(5)}
    assert len(after) == 1, f"sticky again, to whichever backend it got: {after}"


def test_pods_leaving_the_cluster_are_masqueraded(cluster):
    c1 = cluster["pods"]["c1"]
    assert whoami(c1, "http://203.0.113.10:8080/whoami") == f"outside/host {CPU_IP}"
    assert c1.ping("203.0.113.10")
    flows = cluster["cpu"].call("flows", {"address": "203.0.113.10"})["flows"]
    assert any(f["snat"] for f in flows)


def test_flows_are_listed_and_flushed(cluster):
    cpu = cluster["cpu"]
    c1 = cluster["pods"]["c1"]
    whoami(c1, "http://10.96.0.30/")
    listed = cpu.call("flows", {"service": "backend/web"})
    assert listed["total"] >= 1
    assert all(f["service"].startswith("backend/web:") for f in listed["flows"])
    assert cpu.call("flows.flush", {"service": "backend/web"})["backendsFlushed"] >= 3
    deadline = time.time() + 5
    while time.time() < deadline and cpu.call("flows", {"service": "backend/web"})["total"]:
        time.sleep(0.1)
    assert cpu.call("flows", {"service": "backend/web"})["total"] == 0
    assert whoami(c1, "http://10.96.0.30/").startswith("backend/w")  # new flows still work


def test_service_model_errors_name_the_field_and_change_nothing(cluster):
    cpu = cluster["cpu"]
    gen = cpu.call("status")["generation"]
    cases = [
        ({"namespace": "backend", "name": "bad", "clusterIPs": ["10.200.0.1"],
          "ports": [{"port": 80}]}, "service CIDR"),
        ({"namespace": "backend", "name": "bad", "clusterIPs": ["10.96.0.30"],
          "ports": [{"port": 80}]}, "already service backend/web"),
        ({"namespace": "backend", "name": "bad", "clusterIPs": ["10.96.0.90"],
          "ports": [{"port": 80, "protocol": "SCTP"}]}, "protocol"),
        ({"namespace": "backend", "name": "bad", "clusterIPs": ["10.96.0.90"],
          "ports": [{"port": 70000}]}, "port"),
        ({"namespace": "backend", "name": "bad", "clusterIPs": ["10.96.0.90"],
          "ports": [{"port": 80}], "endpoints": [{"ip": "x"}]}, "endpoints\\[0\\].ip"),
    ]
    for args, expected in cases:
        with pytest.raises(RuntimeError, match=expected):
            cpu.call("service.set", args)
    assert cpu.call("status")["generation"] == gen
    assert whoami(cluster["pods"]["c1"], "http://10.96.0.30/").startswith("backend/w")
