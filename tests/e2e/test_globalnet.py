"""Globalnet (issue 13): two clusters with the SAME pod and service CIDRs (10.244.0.0/16,
10.96.0.0/16 — the defaults most clusters keep), linked by nodeplane's encrypted tunnel, each with
a global CIDR of its own. A pod of one reaches the other's exported Service at its global address,
TCP, UDP and bulk, both ways; the far pod sees the near cluster's global egress address, never a
pod address that also exists on its side; nothing but ESP is on the wire; an address nobody
exported is dropped by name; an export made before its Service becomes reachable once the Service
exists, and stops when withdrawn; bad peers and exports are refused by field."""

import json
import subprocess
import time

import pytest

from nplab import Lab

EAST_IP, WEST_IP = "192.168.54.10", "192.168.54.11"
EAST_GLOBAL, WEST_GLOBAL = "242.0.0.0/24", "242.1.0.0/24"
SECRET = "a secret the two clusters share"
WEB_IP = "10.96.0.20"  # the same ClusterIP in both clusters
PORTS = [{"name": "http", "port": 80, "targetPort": 8080},
         {"name": "echo", "port": 7000},
         {"name": "echo-udp", "protocol": "UDP", "port": 7001},
         {"name": "iperf", "port": 5201}]


def peer(cluster_id, gateway, global_cidr, **extra):
    p = {"clusterId": cluster_id, "gatewayIp": gateway, "globalCidr": global_cidr,
         "cidrs": ["10.244.0.0/16", "10.96.0.0/16"], "secret": SECRET}
    p.update(extra)
    return p


def node(lab, name, ip, cluster_id, global_cidr):
    return lab.node(name, f"{ip}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16",
                    service_cidr="10.96.0.0/16",
                    extra_args=["--cluster-id", cluster_id, "--cluster-global-cidr", global_cidr])


@pytest.fixture(scope="module")
def clusters():
    with Lab("gn") as lab:
        east = node(lab, "gn-east", EAST_IP, "east", EAST_GLOBAL)
        west = node(lab, "gn-west", WEST_IP, "west", WEST_GLOBAL)
        east.call("cluster.peer.set", peer("west", WEST_IP, WEST_GLOBAL))
        west.call("cluster.peer.set", peer("east", EAST_IP, EAST_GLOBAL))
        # Each cluster: its web server first, then a client (the same addresses on both sides).
        web_e = lab.add_pod(east, "shop", "web-e")
        client_e = lab.add_pod(east, "shop", "client-e")
        web_w = lab.add_pod(west, "shop", "web-w")
        client_w = lab.add_pod(west, "shop", "client-w")
        assert web_e.ip == web_w.ip and client_e.ip == client_w.ip, "overlapping pod addresses"
        for web in (web_e, web_w):
            web.serve(tcp=[7000], udp=[7001], http=[8080])
        east.set_service("shop", "web", WEB_IP, PORTS, [web_e])
        west.set_service("shop", "web", WEB_IP, PORTS, [web_w])
        exported = {d.node_name: d.call("cluster.export.set", {"namespace": "shop", "name": "web"})
                    for d in (east, west)}
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                d.call("cluster.peers")["peers"][0].get("resolved") for d in (east, west)):
            time.sleep(0.1)
        yield {"lab": lab, "east": east, "west": west, "web_e": web_e, "web_w": web_w,
               "client_e": client_e, "client_w": client_w,
               "east_web": exported["gn-east"]["globalIp"],
               "west_web": exported["gn-west"]["globalIp"]}


def curl(pod, url, timeout=5):
    r = pod.exec(["curl", "-sS", "--max-time", str(timeout), url], check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error({r.returncode})"


def test_exports_get_the_first_free_global_address_and_are_listed(clusters):
    assert clusters["east_web"] == "242.0.0.2" and clusters["west_web"] == "242.1.0.2"
    listed = clusters["east"].call("cluster.exports")
    assert listed["globalCidr"] == EAST_GLOBAL and listed["globalEgressIp"] == "242.0.0.1"
    assert listed["exports"] == [{"service": "shop/web", "globalIp": "242.0.0.2",
                                  "clusterIp": WEB_IP, "state": "active", "endpoints": []}]
    (west,) = clusters["east"].call("cluster.peers")["peers"]
    assert west["globalCidr"] == WEST_GLOBAL
    # npctl: exporting again keeps the address; the listing is the same JSON.
    again = json.loads(clusters["east"].npctl("cluster", "export", "shop/web").stdout)
    assert again["globalIp"] == "242.0.0.2" and again["state"] == "active"
    assert json.loads(clusters["east"].npctl("cluster", "exports").stdout) == listed
    bad = clusters["east"].npctl("cluster", "export", "web", check=False)
    assert bad.returncode == 2 and "not NS/NAME" in bad.stderr


def test_pods_reach_the_other_clusters_service_by_its_global_address_both_ways(clusters):
    for client, far_web, far_name, near_egress in (
            (clusters["client_e"], clusters["west_web"], "shop/web-w", "242.0.0.1"),
            (clusters["client_w"], clusters["east_web"], "shop/web-e", "242.1.0.1")):
        # The far pod sees this cluster's global egress address, not the client's pod address
        # (which is also a pod address over there).
        assert curl(client, f"http://{far_web}/whoami") == f"{far_name} {near_egress}"
        probe = client.probe("matrix", "--timeout", "3", f"t={far_web}:7000/tcp",
                             f"u={far_web}:7001/udp", check=True)
        assert json.loads(probe.stdout) == {"t": True, "u": True}, probe.stdout
        r = client.probe("udp", far_web, "7001", "--whoami", check=True)
        assert r.stdout.strip() == f"{far_name} {near_egress}"
    east, west = clusters["east"], clusters["west"]
    for d in (east, west):
        c = d.counters()
        assert c["global_egress_flows"] >= 3 and c["global_ingress_translated"] > 0
        assert c["global_egress_translated"] > 0, c


def test_the_wire_carries_only_esp_and_bulk_tcp_goes_through(clusters, tmp_path):
    lab, east, client, web = clusters["lab"], clusters["east"], clusters["client_e"], \
        clusters["web_w"]
    pcap = tmp_path / "east.pcap"
    with lab.capturing(east.netns, pcap):
        server = web.popen(["iperf3", "-s", "-1", "-p", "5201"])
        time.sleep(0.5)
        r = client.exec(["iperf3", "-c", clusters["west_web"], "-p", "5201", "-t", "2", "-J"],
                        timeout=30)
        server.wait(timeout=10)
    result = json.loads(r.stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000, result["end"]
    lines = lab.pcap_lines(pcap)
    assert sum(f"{WEST_IP} > {EAST_IP}" in line for line in lines) >= 10, lines[:5]
    for line in lines:
        assert "ESP(spi=" in line, line
    assert not any(p in line for line in lines for p in ("10.244.", "10.96.", "242."))


def test_an_address_nobody_exported_is_dropped_by_name(clusters):
    client, west = clusters["client_e"], clusters["west"]
    before = west.drops().get("global_address_unknown", 0)
    assert curl(client, "http://242.1.0.77/", timeout=2).startswith("error")
    assert west.drops().get("global_address_unknown", 0) > before
    # A cluster-local address of the other cluster is not routed there at all (it is ours too).
    assert curl(client, f"http://{clusters['web_w'].ip}:8080/whoami", timeout=3) == \
        f"shop/web-e {client.ip}"


def test_an_export_before_its_service_works_once_it_exists_and_stops_when_withdrawn(clusters):
    east, west, client = clusters["east"], clusters["west"], clusters["client_e"]
    made = west.call("cluster.export.set", {"namespace": "shop", "name": "late",
                                            "globalIp": "242.1.0.50"})
    try:
        assert made["globalIp"] == "242.1.0.50" and made["state"] == "no such service"
        assert curl(client, "http://242.1.0.50/", timeout=2).startswith("error")
        west.set_service("shop", "late", "10.96.0.21", PORTS[:1], [clusters["web_w"]])
        (late,) = [e for e in west.call("cluster.exports")["exports"]
                   if e["service"] == "shop/late"]
        assert late["state"] == "active" and late["clusterIp"] == "10.96.0.21"
        assert curl(client, "http://242.1.0.50/whoami") == "shop/web-w 242.0.0.1"
    finally:
        west.call("cluster.export.delete", {"namespace": "shop", "name": "late"})
    assert curl(client, "http://242.1.0.50/", timeout=2).startswith("error")
    assert all(e["service"] != "shop/late" for e in west.call("cluster.exports")["exports"])
    west.call("service.delete", {"namespace": "shop", "name": "late"})
    assert east.counters()["esp_sealed"] > 0


@pytest.mark.parametrize("op, args, field", [
    ("cluster.peer.set", {k: v for k, v in peer("west", WEST_IP, WEST_GLOBAL).items()
                          if k != "globalCidr"}, "globalCidr: required"),
    ("cluster.peer.set", peer("west", WEST_IP, "242.0.0.128/25"),
     "overlaps this cluster's global CIDR"),
    ("cluster.peer.set", peer("west", WEST_IP, "10.96.0.0/24"), "service CIDR"),
    ("cluster.peer.set", peer("west", WEST_IP, "242.1.0.1/24"), "globalCidr"),
    ("cluster.export.set", {"namespace": "shop", "name": "db", "globalIp": "242.1.0.9"},
     "globalIp: 242.1.0.9 is not a free address"),
    ("cluster.export.set", {"namespace": "shop", "name": "db", "globalIp": "242.0.0.2"},
     "is service shop/web's"),
    ("cluster.export.set", {"namespace": "shop", "name": "db", "globalIp": "242.0.0.1"},
     "globalIp"),
    ("cluster.export.set", {"namespace": "Shop!", "name": "db"}, "namespace"),
    ("cluster.export.set", {"namespace": "shop", "name": 7}, "name"),
    ("cluster.export.delete", {"namespace": "shop", "name": "never"}, "not exported"),
])
def test_bad_peers_and_exports_are_refused_by_field_and_change_nothing(clusters, op, args,
                                                                      field):
    east = clusters["east"]
    with pytest.raises(RuntimeError, match=field):
        east.call(op, args)
    (west,) = east.call("cluster.peers")["peers"]
    assert west["globalCidr"] == WEST_GLOBAL
    assert [e["service"] for e in east.call("cluster.exports")["exports"]] == ["shop/web"]
    assert curl(clusters["client_e"], f"http://{clusters['west_web']}/") == "shop/web-w"


def test_a_daemon_refuses_a_global_cidr_that_overlaps_its_own(clusters, tmp_path):
    from nplab.lab import build_dir
    r = subprocess.run([str(build_dir() / "daemon/nodeplane"), "--node-name", "x", "--node-ip",
                        "192.168.54.20", "--pod-cidr", "10.244.1.0/24", "--cluster-id", "x",
                        "--cluster-global-cidr", "10.244.0.0/16", "--", "--no-huge"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "cluster-global-cidr" in r.stderr + r.stdout and "--pod-cidr" in r.stderr + r.stdout
