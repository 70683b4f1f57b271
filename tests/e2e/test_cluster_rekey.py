"""Scheduled rekeying of the encrypted link between two clusters' gateways: with
--cluster-rekey-seconds 2 each gateway begins a new generation of SAs every two seconds, sends
heartbeats with it for a second (the other gateway learns it from them), then seals its data with
it. A steady UDP stream across the link through several rekeys in both directions loses
nothing, and the wire carries ESP of several generations (SPIs naming them)."""

import json
import time

import pytest

from nplab import Lab

EAST_IP, WEST_IP = "192.168.54.10", "192.168.54.11"
SECRET = "a secret the two clusters share"


def peer(cluster_id, gateway, cidrs):
    return {"clusterId": cluster_id, "gatewayIp": gateway, "cidrs": cidrs, "secret": SECRET}


@pytest.fixture(scope="module")
def link():
    with Lab("rk") as lab:
        args = ["--cluster-rekey-seconds", "2"]
        east = lab.node("gw-east", f"{EAST_IP}/24", "10.244.1.0/24",
                        cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16",
                        extra_args=["--cluster-id", "east", *args])
        west = lab.node("gw-west", f"{WEST_IP}/24", "10.245.1.0/24",
                        cluster_cidr="10.245.0.0/16", service_cidr="10.97.0.0/16",
                        extra_args=["--cluster-id", "west", *args])
        east.call("cluster.peer.set", peer("west", WEST_IP, ["10.245.0.0/16", "10.97.0.0/16"]))
        west.call("cluster.peer.set", peer("east", EAST_IP, ["10.244.0.0/16", "10.96.0.0/16"]))
        client = lab.add_pod(east, "shop", "client")
        server = lab.add_pod(west, "shop", "server")
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                d.call("cluster.peers")["peers"][0].get("inboundGeneration") for d in (east, west)):
            time.sleep(0.1)
        yield {"lab": lab, "east": east, "west": west, "client": client, "server": server}


def generations(d):
    p = d.call("cluster.peers")["peers"][0]
    return p["outboundGeneration"], p["inboundGeneration"]


def test_a_stream_through_several_rekeys_loses_nothing(link, tmp_path):
    lab, east, west = link["lab"], link["east"], link["west"]
    client, server = link["client"], link["server"]
    before = {n: generations(d) for n, d in (("east", east), ("west", west))}
    started = {n: d.counters()["esp_generations_started"] for n, d in (("east", east),
                                                                        ("west", west))}
    srv = server.popen(["iperf3", "-s", "-1", "-p", "5203"])
    time.sleep(0.5)
    pcap = tmp_path / "west.pcap"
    # 8 s at 1 Mbit/s of 200-byte datagrams (625 a second), and back the other way (-R would
    # share the direction; two streams check both gateways' rekeys).
    with lab.capturing(west.netns, pcap):
        r = client.exec(["iperf3", "-c", server.ip, "-p", "5203", "-u", "-b", "1M", "-l", "200",
                         "-t", "8", "-J"], timeout=60)
    srv.wait(timeout=10)
    end = json.loads(r.stdout)["end"]["sum"]
    assert end["packets"] > 4000, end
    assert end["lost_packets"] == 0, end
    for name, d in (("east", east), ("west", west)):
        assert d.counters()["esp_generations_started"] >= started[name] + 3, name
        out, learned = generations(d)
        assert out > before[name][0] and learned > before[name][1], (name, before, out, learned)
    # On the wire: ESP with the SPIs of several of east's generations (low 27 bits).
    spis = {line.split("ESP(spi=")[1].split(",")[0] for line in lab.pcap_lines(pcap)
            if f"{EAST_IP} > {WEST_IP}" in line and "ESP(spi=" in line}
    gens = {int(s, 16) & 0x07ffffff for s in spis}
    assert len(gens) >= 3, spis
    assert not any(d.drops().get("esp_replayed", 0) for d in (east, west))
