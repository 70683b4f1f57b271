"""Gateways and the other nodes of linked clusters (issue 13): two clusters of two nodes each,
the same pod and service CIDRs (Globalnet), one gateway node per cluster. A pod on a non-gateway
node reaches the other cluster's exported Service, whose backend is on the other cluster's
non-gateway node: through its own overlay to its gateway (which translates to the global egress
address and seals), the tunnel, the far gateway (which opens, translates to the ClusterIP and
balances) and the far overlay; the replies the same way back. Both ways, TCP and UDP. A gateway
that is not a known node drops by name."""

import json
import time

import pytest

from nplab import Lab

SECRET = "a secret the two clusters share"
WEB_IP = "10.96.0.20"
DNS_IP = "10.96.0.10"
PORTS = [{"name": "http", "port": 80, "targetPort": 8080},
         {"name": "echo", "port": 7000},
         {"name": "echo-udp", "protocol": "UDP", "port": 7001}]
EAST = {"id": "east", "global": "242.0.0.0/24", "gw": "192.168.55.10", "other": "192.168.55.11"}
WEST = {"id": "west", "global": "242.1.0.0/24", "gw": "192.168.55.20", "other": "192.168.55.21"}


def cluster(lab, c):
    """A cluster's two nodes: the gateway (pod CIDR 10.244.1.0/24) and another (10.244.2.0/24)."""
    nodes = []
    for suffix, ip, pod_cidr in (("1", c["gw"], "10.244.1.0/24"),
                                 ("2", c["other"], "10.244.2.0/24")):
        nodes.append(lab.node(f"gc-{c['id'][0]}{suffix}", f"{ip}/24", pod_cidr,
                              cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16",
                              extra_args=["--cluster-id", c["id"],
                                          "--cluster-global-cidr", c["global"],
                                          "--clusterset-cidr", "10.112.0.0/24",
                                          "--cluster-dns", DNS_IP]))
    gw, other = nodes
    gw.set_node(other)
    other.set_node(gw)
    for d in nodes:
        d.call("cluster.gateways.set", {"nodes": [gw.node_name]})
    return gw, other


def as_peer(c):
    return {"clusterId": c["id"], "gatewayIp": c["gw"], "globalCidr": c["global"],
            "cidrs": ["10.244.0.0/16", "10.96.0.0/16"], "secret": SECRET}


@pytest.fixture(scope="module")
def clusters():
    with Lab("gc") as lab:
        e1, e2 = cluster(lab, EAST)
        w1, w2 = cluster(lab, WEST)
        for d in (e1, e2):
            d.call("cluster.peer.set", as_peer(WEST))
        for d in (w1, w2):
            d.call("cluster.peer.set", as_peer(EAST))
        client_e = lab.add_pod(e2, "shop", "client-e")
        web_e = lab.add_pod(e2, "shop", "web-e")
        client_w = lab.add_pod(w2, "shop", "client-w")
        web_w = lab.add_pod(w2, "shop", "web-w")
        for web in (web_e, web_w):
            web.serve(tcp=[7000], udp=[7001], http=[8080])
        for nodes, web in (((e1, e2), web_e), ((w1, w2), web_w)):
            for d in nodes:  # every node of a cluster knows its services (the agent's job)
                d.set_service("shop", "web", WEB_IP, PORTS, [web])
                d.call("cluster.export.set", {"namespace": "shop", "name": "web"})
        for d in (w1, w2):  # a name only west exports
            d.set_service("shop", "api", "10.96.0.21", PORTS[:1], [web_w])
            d.call("cluster.export.set", {"namespace": "shop", "name": "api"})
        client_e.set_resolv_conf("shop", DNS_IP)
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                d.call("cluster.peers")["peers"][0].get("resolved") for d in (e1, w1)):
            time.sleep(0.1)
        yield {"lab": lab, "e1": e1, "e2": e2, "w1": w1, "w2": w2, "client_e": client_e,
               "client_w": client_w, "web_e": web_e, "web_w": web_w}


def curl(pod, url, timeout=5):
    r = pod.exec(["curl", "-sS", "--max-time", str(timeout), url], check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error({r.returncode})"


def test_roles_are_shown(clusters):
    e1, e2 = clusters["e1"].call("cluster.peers"), clusters["e2"].call("cluster.peers")
    assert e1["role"] == "gateway" and e1["activeGateway"] == "gc-e1"
    assert e2["role"] == "via-gateway" and e2["activeGateway"] == "gc-e1"
    assert e2["gateways"] == ["gc-e1"]
    assert "resolved" not in e2["peers"][0], "a node that is not the gateway has no link"


def test_non_gateway_pods_reach_the_other_clusters_non_gateway_backend_both_ways(clusters):
    for client, far, far_name, egress in ((clusters["client_e"], "242.1.0.2", "shop/web-w",
                                           "242.0.0.1"),
                                          (clusters["client_w"], "242.0.0.2", "shop/web-e",
                                           "242.1.0.1")):
        assert curl(client, f"http://{far}/whoami") == f"{far_name} {egress}"
        probe = client.probe("matrix", "--timeout", "3", f"t={far}:7000/tcp",
                             f"u={far}:7001/udp", check=True)
        assert json.loads(probe.stdout) == {"t": True, "u": True}, probe.stdout
    e1, e2, w1 = clusters["e1"], clusters["e2"], clusters["w1"]
    # The translations happen on the gateways only; the other nodes pass sources unchanged.
    assert e1.counters()["global_egress_flows"] >= 2
    assert e2.counters()["global_egress_flows"] == 0 and e2.counters()["masquerade_flows"] == 0
    assert w1.counters()["global_ingress_translated"] > 0
    assert e2.counters().get("esp_sealed", 0) == 0


def test_a_gateway_that_is_not_a_known_node_drops_by_name(clusters):
    e2, client = clusters["e2"], clusters["client_e"]
    before = e2.drops().get("cluster_gateway_unknown", 0)
    e2.call("cluster.gateways.set", {"nodes": ["gc-nowhere"]})
    try:
        assert curl(client, "http://242.1.0.2/", timeout=2).startswith("error")
        assert e2.drops().get("cluster_gateway_unknown", 0) > before
    finally:
        e2.call("cluster.gateways.set", {"nodes": ["gc-e1"]})
    assert curl(client, "http://242.1.0.2/") == "shop/web-w"


@pytest.mark.parametrize("args, field", [
    ({"nodes": "gc-e1"}, "nodes"),
    ({"nodes": ["gc-e1", "gc-e1"]}, "given twice"),
    ({"nodes": ["Not A Name"]}, "not a node name"),
    ({"nodes": [7]}, "nodes"),
    ({"node": ["gc-e1"]}, "node"),
])
def test_bad_gateway_lists_are_refused_by_field(clusters, args, field):
    e2 = clusters["e2"]
    with pytest.raises(RuntimeError, match=field):
        e2.call("cluster.gateways.set", args)
    assert e2.call("cluster.peers")["gateways"] == ["gc-e1"]


def test_a_non_gateway_node_learns_the_imports_from_its_gateway(clusters):
    e2, client = clusters["e2"], clusters["client_e"]
    deadline = time.time() + 10
    while time.time() < deadline and "shop/api" not in {
            s["service"] for s in e2.call("cluster.imports")["clusterset"]}:
        time.sleep(0.1)
    cs = {s["service"]: s for s in e2.call("cluster.imports")["clusterset"]}
    assert [(b["cluster"], b["ready"]) for b in cs["shop/api"]["backends"]] == [("west", True)]
    # Its pods resolve and reach the other cluster's service by its clusterset name: the DNAT
    # here, the global egress SNAT on the gateway.
    assert curl(client, "http://api.shop.svc.clusterset.local/whoami") == "shop/web-w 242.0.0.1"
    # And its own cluster's endpoints first for a name both export.
    assert curl(client, "http://web.shop.svc.clusterset.local/whoami") == \
        f"shop/web-e {client.ip}"


def test_a_pod_of_the_other_clusters_non_gateway_node_by_its_global_address(clusters):
    """West exports a headless service whose pod runs on west's non-gateway node: east's pod on
    its non-gateway node resolves it by its clusterset name and reaches the pod itself at its
    global address (translated to the pod on west's gateway, then west's overlay; the reply
    back through the gateway, translated to that global address)."""
    lab, w1, w2, e2, client = (clusters[k] for k in ("lab", "w1", "w2", "e2", "client_e"))
    db = lab.add_pod(w2, "shop", "db-0")
    db.serve(http=[8080])
    for d in (w1, w2):
        d.set_service("shop", "db", None, [{"name": "http", "port": 8080}],
                      [{"ip": db.ip, "nodeName": w2.node_name, "hostname": "db-0"}])
        d.call("cluster.export.set", {"namespace": "shop", "name": "db"})
    (listed,) = [e for e in w1.call("cluster.exports")["exports"] if e["service"] == "shop/db"]
    (endpoint,) = listed["endpoints"]
    deadline = time.time() + 10
    while time.time() < deadline and "shop/db" not in {
            s["service"] for s in e2.call("cluster.imports")["clusterset"]}:
        time.sleep(0.1)
    r = client.exec(["dig", "+short", f"@{DNS_IP}", "db-0.db.shop.svc.clusterset.local"])
    assert r.stdout.split() == [endpoint["globalIp"]], r.stdout
    assert db.ip.startswith("10.244.2."), "an address of east's own e2 pod CIDR too"
    assert curl(client, f"http://{endpoint['globalIp']}:8080/whoami") == "shop/db-0 242.0.0.1"
