"""Two clusters linked by an unencrypted VXLAN tunnel (issue 13's second tunnel kind): each
gateway knows the other as a peer with `tunnel: vxlan` and the VNI of this pair of clusters
(not the overlay's). Pods of one reach pods of the other, TCP, UDP and bulk, both ways; on the
wire between the gateways the frames are VXLAN with that VNI; heartbeats keep both gateways
alive; bad peers are refused by field."""

import json
import time

import pytest

from nplab import Lab

EAST_IP, WEST_IP = "192.168.58.10", "192.168.58.11"
VNI = 7001


def peer(cluster_id, gateway, cidrs, **extra):
    p = {"clusterId": cluster_id, "gatewayIp": gateway, "cidrs": cidrs, "tunnel": "vxlan",
         "vni": VNI}
    p.update(extra)
    return p


WEST_AS_PEER = peer("west", WEST_IP, ["10.245.0.0/16", "10.97.0.0/16"])


@pytest.fixture(scope="module")
def link():
    with Lab("cv") as lab:
        east = lab.node("cv-east", f"{EAST_IP}/24", "10.244.1.0/24",
                        cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16",
                        extra_args=["--cluster-id", "east"])
        west = lab.node("cv-west", f"{WEST_IP}/24", "10.245.1.0/24",
                        cluster_cidr="10.245.0.0/16", service_cidr="10.97.0.0/16",
                        extra_args=["--cluster-id", "west"])
        east.call("cluster.peer.set", WEST_AS_PEER)
        west.call("cluster.peer.set", peer("east", EAST_IP, ["10.244.0.0/16", "10.96.0.0/16"]))
        client = lab.add_pod(east, "shop", "client")
        server = lab.add_pod(west, "shop", "server")
        server.serve(tcp=[7000], udp=[7001], http=[8080])
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                d.call("cluster.peers")["peers"][0]["gateways"][0]["heartbeatsReceived"] > 0
                for d in (east, west)):
            time.sleep(0.1)
        yield {"lab": lab, "east": east, "west": west, "client": client, "server": server}


def test_the_peer_is_listed_with_its_vni_and_heard(link):
    (west,) = link["east"].call("cluster.peers")["peers"]
    assert west["tunnel"] == "vxlan" and west["vni"] == VNI
    assert west["resolved"] is True and west["innerMtu"] == 1500 - 50
    assert west["outboundSpis"] == [] and west["gateways"][0]["alive"] is True


def test_pods_reach_each_other_through_vxlan_with_the_pairs_vni(link, tmp_path):
    lab, east, client, server = link["lab"], link["east"], link["client"], link["server"]
    pcap = tmp_path / "east.pcap"
    with lab.capturing(east.netns, pcap, "udp port 4789"):
        r = client.exec(["curl", "-sS", "--max-time", "5", f"http://{server.ip}:8080/whoami"])
        assert r.stdout.strip() == f"shop/server {client.ip}"
        probe = client.probe("matrix", "--timeout", "3", f"t={server.ip}:7000/tcp",
                             f"u={server.ip}:7001/udp", check=True)
        assert json.loads(probe.stdout) == {"t": True, "u": True}, probe.stdout
    lines = lab.pcap_lines(pcap)
    assert sum(f"vni {VNI}" in line for line in lines) >= 10, lines[:5]
    assert any(server.ip in line for line in lines), "unencrypted: the inner packets show"
    assert all(f"vni {VNI}" in line for line in lines if "VXLAN" in line), lines[:5]


def test_bulk_tcp_goes_through(link):
    client, server = link["client"], link["server"]
    proc = server.popen(["iperf3", "-s", "-1", "-p", "5201"])
    time.sleep(0.5)
    r = client.exec(["iperf3", "-c", server.ip, "-p", "5201", "-t", "2", "-J"], timeout=30)
    proc.wait(timeout=10)
    assert json.loads(r.stdout)["end"]["sum_received"]["bytes"] > 1_000_000


@pytest.mark.parametrize("bad, field", [
    ({k: v for k, v in WEST_AS_PEER.items() if k != "vni"}, "vni"),
    (dict(WEST_AS_PEER, vni=1), "overlay VNI"),
    (dict(WEST_AS_PEER, vni=0), "vni"),
    (dict(WEST_AS_PEER, tunnel="gre"), "tunnel"),
    (dict(WEST_AS_PEER, tunnel="esp"), "secret"),
])
def test_bad_vxlan_peers_are_refused_by_field(link, bad, field):
    east = link["east"]
    with pytest.raises(RuntimeError, match=field):
        east.call("cluster.peer.set", bad)
    (west,) = east.call("cluster.peers")["peers"]
    assert west["tunnel"] == "vxlan" and west["vni"] == VNI
