"""Multi-Cluster Services across linked clusters (issue 13): two clusters with the same CIDRs
(Globalnet), each exporting services. Each active gateway announces its exports to the other
through the tunnel every second; each node with the clusterset CIDR makes one clusterset service
per exported name, at an address of that CIDR, answered as <svc>.<ns>.svc.clusterset.local by
its DNS responder, balancing over its own cluster's endpoints first and the other clusters'
when it has none ready. A cluster that is gone has its backends dropped."""

import json
import time

import pytest

from nplab import Lab

EAST_IP, WEST_IP = "192.168.57.10", "192.168.57.11"
SECRET = "a secret the two clusters share"
DNS_IP = "10.96.0.10"
PORTS = [{"name": "http", "port": 80, "targetPort": 8080},
         {"name": "echo-udp", "protocol": "UDP", "port": 7001}]


def node(lab, name, ip, cluster_id, global_cidr):
    return lab.node(name, f"{ip}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16",
                    service_cidr="10.96.0.0/16",
                    extra_args=["--cluster-id", cluster_id, "--cluster-global-cidr", global_cidr,
                                "--clusterset-cidr", "10.112.0.0/24", "--cluster-dns", DNS_IP])


def peer(cluster_id, gateway, global_cidr):
    return {"clusterId": cluster_id, "gatewayIp": gateway, "globalCidr": global_cidr,
            "secret": SECRET}


@pytest.fixture(scope="module")
def clusters():
    with Lab("cs") as lab:
        east = node(lab, "cs-east", EAST_IP, "east", "242.0.0.0/24")
        west = node(lab, "cs-west", WEST_IP, "west", "242.1.0.0/24")
        east.call("cluster.peer.set", peer("west", WEST_IP, "242.1.0.0/24"))
        west.call("cluster.peer.set", peer("east", EAST_IP, "242.0.0.0/24"))
        web_e = lab.add_pod(east, "shop", "web-e")
        client_e = lab.add_pod(east, "shop", "client-e")
        web_w = lab.add_pod(west, "shop", "web-w")
        for web in (web_e, web_w):
            web.serve(udp=[7001], http=[8080])
        client_e.set_resolv_conf("shop", DNS_IP)
        east.set_service("shop", "web", "10.96.0.20", PORTS, [web_e])
        west.set_service("shop", "web", "10.96.0.20", PORTS, [web_w])
        west.set_service("shop", "api", "10.96.0.21", PORTS[:1], [web_w])
        for d, names in ((east, ["web"]), (west, ["web", "api"])):
            for n in names:
                d.call("cluster.export.set", {"namespace": "shop", "name": n})
        deadline = time.time() + 15
        while time.time() < deadline and len(east.call("cluster.imports")["clusterset"]) < 2:
            time.sleep(0.1)
        yield {"lab": lab, "east": east, "west": west, "web_e": web_e, "web_w": web_w,
               "client_e": client_e}


def curl(pod, url, timeout=5):
    r = pod.exec(["curl", "-sS", "--max-time", str(timeout), url], check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error({r.returncode}): {r.stderr.strip()}"


def clusterset(d):
    return {s["service"]: s for s in d.call("cluster.imports")["clusterset"]}


def test_imports_and_clusterset_services_are_listed(clusters):
    east = clusters["east"].call("cluster.imports")
    assert east["clustersetCidr"] == "10.112.0.0/24" and east["domain"] == "clusterset.local"
    imports = {i["service"]: i["clusters"] for i in east["imports"]}
    assert set(imports) == {"shop/api", "shop/web"}
    (api,) = imports["shop/api"]
    assert api["clusterId"] == "west" and api["address"] == "242.1.0.3"
    assert api["ports"] == [{"name": "http", "protocol": "TCP", "port": 80}]
    assert api["lastSeenMs"] < 3500
    cs = clusterset(clusters["east"])
    assert {s["ip"] for s in cs.values()} == {"10.112.0.1", "10.112.0.2"}
    # web: the local endpoint ready, west's only serving (local first); api: west's, ready.
    assert sorted((b["cluster"], b["ready"]) for b in cs["shop/web"]["backends"]) == \
        [("east", True), ("west", False)]
    assert [(b["cluster"], b["ready"]) for b in cs["shop/api"]["backends"]] == [("west", True)]
    listed = json.loads(clusters["east"].npctl("cluster", "imports").stdout)
    assert listed["clusterset"] == east["clusterset"]


def test_a_pod_reaches_the_other_clusters_service_by_its_clusterset_name(clusters):
    client = clusters["client_e"]
    r = client.exec(["getent", "hosts", "api.shop.svc.clusterset.local"])
    assert r.stdout.split()[0] == clusterset(clusters["east"])["shop/api"]["ip"]
    assert curl(client, "http://api.shop.svc.clusterset.local/whoami") == \
        "shop/web-w 242.0.0.1"
    r = client.exec(["dig", "+short", f"@{DNS_IP}", "nothere.shop.svc.clusterset.local"])
    assert r.stdout.strip() == ""
    # npctl dns looks clusterset names up too.
    looked = clusters["east"].call("dns", {"name": "api.shop.svc.clusterset.local"})
    assert clusterset(clusters["east"])["shop/api"]["ip"] in json.dumps(looked), looked


def test_local_endpoints_first_then_the_other_clusters(clusters):
    east, client, web_e = clusters["east"], clusters["client_e"], clusters["web_e"]
    url = "http://web.shop.svc.clusterset.local/whoami"
    assert curl(client, url) == f"shop/web-e {client.ip}"
    east.set_service("shop", "web", "10.96.0.20", PORTS, [dict(ip=web_e.ip, ready=False,
                                                               serving=False)])
    try:
        deadline = time.time() + 5
        while time.time() < deadline and curl(client, url, 2) != "shop/web-w 242.0.0.1":
            time.sleep(0.2)
        assert curl(client, url) == "shop/web-w 242.0.0.1"
        probe = client.probe("udp", "web.shop.svc.clusterset.local", "7001", "--whoami")
        assert probe.stdout.strip() == "shop/web-w 242.0.0.1", probe.stdout
    finally:
        east.set_service("shop", "web", "10.96.0.20", PORTS, [web_e])
    deadline = time.time() + 5
    while time.time() < deadline and curl(client, url, 2) != f"shop/web-e {client.ip}":
        time.sleep(0.2)
    assert curl(client, url) == f"shop/web-e {client.ip}"


def test_a_headless_export_reaches_the_pods_themselves_at_global_addresses(clusters):
    """West exports a headless service of two pods (their pod addresses exist in east too): each
    ready endpoint gets a global address of west's CIDR, announced with its hostname; east's DNS
    answers <svc>.<ns>.svc.clusterset.local with both and <hostname>.<svc>... with one, and a pod
    of east reaches each pod there, seen from east's global egress address."""
    lab, east, west, client = clusters["lab"], clusters["east"], clusters["west"], \
        clusters["client_e"]
    db = [lab.add_pod(west, "shop", f"db-{i}") for i in range(2)]
    for pod in db:
        pod.serve(http=[8080])
    endpoints = [{"ip": p.ip, "nodeName": west.node_name, "hostname": p.name} for p in db]
    west.set_service("shop", "db", None, [{"name": "http", "port": 8080}], endpoints)
    r = west.call("cluster.export.set", {"namespace": "shop", "name": "db"})
    assert r["state"] == "headless (its endpoints get global addresses)", r
    (listed,) = [e for e in west.call("cluster.exports")["exports"] if e["service"] == "shop/db"]
    globals_ = {e["hostname"]: e["globalIp"] for e in listed["endpoints"]}
    assert sorted(globals_.values()) == ["242.1.0.253", "242.1.0.254"], listed
    deadline = time.time() + 10
    while time.time() < deadline and "shop/db" not in clusterset(east):
        time.sleep(0.2)
    cs = clusterset(east)["shop/db"]
    assert cs["headless"] is True and cs["ip"] is None, cs
    assert sorted(b["ip"] for b in cs["backends"]) == sorted(globals_.values()), cs
    r = client.exec(["dig", "+short", f"@{DNS_IP}", "db.shop.svc.clusterset.local"])
    assert sorted(r.stdout.split()) == sorted(globals_.values()), r.stdout
    r = client.exec(["dig", "+short", f"@{DNS_IP}", "db-1.db.shop.svc.clusterset.local"])
    assert r.stdout.split() == [globals_["db-1"]], r.stdout
    for name, ip in globals_.items():
        assert curl(client, f"http://{ip}:8080/whoami") == f"shop/{name} 242.0.0.1"
    # What such a pod opens itself leaves from its own global address (not west's egress one).
    web_global = next(e["globalIp"] for e in east.call("cluster.exports")["exports"]
                      if e["service"] == "shop/web")
    assert curl(db[0], f"http://{web_global}/whoami") == f"shop/web-e {globals_['db-0']}"
    # Gone from the service, gone from the translation, the announcement and east's DNS.
    west.set_service("shop", "db", None, [{"name": "http", "port": 8080}], endpoints[:1])
    deadline = time.time() + 10
    while time.time() < deadline and len(clusterset(east)["shop/db"]["backends"]) != 1:
        time.sleep(0.2)
    assert [b["ip"] for b in clusterset(east)["shop/db"]["backends"]] == [globals_["db-0"]]
    assert curl(client, f"http://{globals_['db-1']}:8080/whoami", timeout=2).startswith("error")
    west.call("cluster.export.delete", {"namespace": "shop", "name": "db"})


def test_an_apply_replaces_the_exports_and_a_withdrawn_one_is_forgotten(clusters):
    east, west = clusters["east"], clusters["west"]
    r = west.call("apply", {"exports": [{"namespace": "shop", "name": "web"}]})
    assert r["exportsChanged"] is True
    assert [(e["service"], e["globalIp"]) for e in west.call("cluster.exports")["exports"]] == \
        [("shop/web", "242.1.0.2")], "a kept export keeps its global address"
    deadline = time.time() + 8  # not announced for 3.5 announcement intervals
    while time.time() < deadline and "shop/api" in clusterset(east):
        time.sleep(0.1)
    assert "shop/api" not in clusterset(east)
    west.call("apply", {"exports": [{"namespace": "shop", "name": "web"},
                                    {"namespace": "shop", "name": "api"}]})
    deadline = time.time() + 5
    while time.time() < deadline and "shop/api" not in clusterset(east):
        time.sleep(0.1)
    assert curl(clusters["client_e"], "http://api.shop.svc.clusterset.local/whoami") == \
        "shop/web-w 242.0.0.1"


def test_a_cluster_that_is_gone_has_its_backends_dropped(clusters):
    east, west, client = clusters["east"], clusters["west"], clusters["client_e"]
    gone = time.time()
    west.proc.kill()
    west.proc.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline and clusters_seen(east) != set():
        time.sleep(0.05)
    dropped = time.time() - gone
    print(f"\nwest's backends dropped {dropped * 1000:.0f} ms after its gateway was killed")
    assert clusters_seen(east) == set()
    cs = clusterset(east)
    assert set(cs) == {"shop/web"}
    assert [(b["cluster"], b["ready"]) for b in cs["shop/web"]["backends"]] == [("east", True)]
    r = client.exec(["dig", "+short", f"@{DNS_IP}", "api.shop.svc.clusterset.local"])
    assert r.stdout.strip() == ""
    assert curl(client, "http://web.shop.svc.clusterset.local/whoami") == \
        f"shop/web-e {client.ip}"


def clusters_seen(d):
    return {c["clusterId"] for i in d.call("cluster.imports")["imports"] for c in i["clusters"]}
