"""Two clusters linked by nodeplane's encrypted tunnel (issue 13, first slice): each cluster's
node is its gateway, the gateways meet on one underlay, each knows the other as a peer cluster
(its ID, its gateway's address, its pod and service prefixes, a secret both share). Pods of one
reach pods of the other by their own addresses, TCP, UDP and ICMP, both ways, and on the wire
between the gateways there is nothing but ESP. Large packets are fragmented by the gateway, or get
fragmentation-needed with the link's MTU when DF is set; bulk TCP goes through (segmented, then
sealed); a one-sided secret change stops the link until both agree; bad peers are refused by
field."""

import json
import time

import pytest

from nplab import Lab
from nplab.lab import REPO

EAST_IP, WEST_IP = "192.168.53.10", "192.168.53.11"
SECRET = "a secret the two clusters share"


def peer(cluster_id, gateway, cidrs, secret=SECRET):
    return {"clusterId": cluster_id, "gatewayIp": gateway, "cidrs": cidrs, "secret": secret}


EAST_AS_PEER = peer("east", EAST_IP, ["10.244.0.0/16", "10.96.0.0/16"])
WEST_AS_PEER = peer("west", WEST_IP, ["10.245.0.0/16", "10.97.0.0/16"])


@pytest.fixture(scope="module")
def link():
    with Lab("cl") as lab:
        east = lab.node("gw-east", f"{EAST_IP}/24", "10.244.1.0/24",
                        cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16",
                        extra_args=["--cluster-id", "east"])
        west = lab.node("gw-west", f"{WEST_IP}/24", "10.245.1.0/24",
                        cluster_cidr="10.245.0.0/16", service_cidr="10.97.0.0/16",
                        extra_args=["--cluster-id", "west"])
        east.call("cluster.peer.set", WEST_AS_PEER)
        west.call("cluster.peer.set", EAST_AS_PEER)
        client = lab.add_pod(east, "shop", "client")
        server = lab.add_pod(west, "shop", "server")
        server.serve(tcp=[7000], udp=[7001], http=[8080])
        client.serve(http=[8080])
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                d.call("cluster.peers")["peers"][0].get("resolved") for d in (east, west)):
            time.sleep(0.1)
        yield {"lab": lab, "east": east, "west": west, "client": client, "server": server}


def learned(d):
    """The SA generation this gateway learned from its peer's (None: none yet)."""
    return d.call("cluster.peers")["peers"][0].get("inboundGeneration")


def wait_learned(d, newer_than=None, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        g = learned(d)
        if g is not None and (newer_than is None or g > newer_than):
            return g
        time.sleep(0.05)
    raise AssertionError(f"{d.node_name} learned no generation newer than {newer_than}")


def test_peers_are_listed_with_their_spis_and_a_resolved_gateway(link):
    for d in (link["east"], link["west"]):  # each learns the other's SAs from its heartbeats
        wait_learned(d)
    peers = link["east"].call("cluster.peers")
    assert peers["clusterId"] == "east"
    (west,) = peers["peers"]
    assert west["clusterId"] == "west" and west["gatewayIp"] == WEST_IP
    assert west["resolved"] is True and west["innerMtu"] == 1500 - 57
    # What east seals with is what west opens with: one generation, keys derived on both sides.
    (east,) = link["west"].call("cluster.peers")["peers"]
    assert set(west["outboundSpis"]) <= set(east["inboundSpis"])
    assert set(east["outboundSpis"]) <= set(west["inboundSpis"])
    assert west["outboundGeneration"] == east["inboundGeneration"]
    assert east["outboundGeneration"] == west["inboundGeneration"]


def test_pods_reach_each_other_and_the_wire_carries_only_esp(link, tmp_path):
    lab, east, west = link["lab"], link["east"], link["west"]
    client, server = link["client"], link["server"]
    # Each gateway's uplink, as received (a capture there does not see what the daemon itself
    # sends: DPDK's af_packet bypasses the queueing where taps sit), so both ends together.
    pcaps = [tmp_path / "east.pcap", tmp_path / "west.pcap"]
    with lab.capturing(east.netns, pcaps[0]), lab.capturing(west.netns, pcaps[1]):
        r = client.exec(["curl", "-sS", "--max-time", "5", f"http://{server.ip}:8080/"])
        assert "shop/server" in r.stdout, r.stdout
        r = server.exec(["curl", "-sS", "--max-time", "5", f"http://{client.ip}:8080/"])
        assert "shop/client" in r.stdout, r.stdout
        client.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", server.ip])
        probe = client.exec(["/usr/bin/python3", str(REPO / "tools/nplab/probe.py"),
                             "matrix", "--timeout", "2", f"w={server.ip}:7001/udp",
                             f"t={server.ip}:7000/tcp"])
        assert json.loads(probe.stdout) == {"w": True, "t": True}, probe.stdout
    lines = [line for p in pcaps for line in lab.pcap_lines(p)]
    assert sum(f"{EAST_IP} > {WEST_IP}" in line for line in lines) >= 10, lines
    assert sum(f"{WEST_IP} > {EAST_IP}" in line for line in lines) >= 10, lines
    for line in lines:
        assert "ESP(spi=" in line and (f"{EAST_IP} > {WEST_IP}" in line
                                       or f"{WEST_IP} > {EAST_IP}" in line), line
    assert not any(p in line for line in lines for p in ("10.244.", "10.245."))
    assert east.counters()["esp_sealed"] > 0 and west.counters()["esp_opened"] > 0


def test_too_large_without_df_is_fragmented_by_the_gateway_then_sealed(link):
    east, west, client, server = link["east"], link["west"], link["client"], link["server"]
    before = east.counters()["fragments_sent"] + west.counters()["fragments_sent"]
    # 1,450 bytes without DF both ways (before any PMTU is learned for these pairs): each
    # gateway cuts it to the link's MTU, seals each fragment; the far pod reassembles.
    client.exec(["ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "dont", "-s", "1422",
                 server.ip])
    server.exec(["ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "dont", "-s", "1422",
                 client.ip])
    after = east.counters()["fragments_sent"] + west.counters()["fragments_sent"]
    assert after >= before + 8, (before, after)


def test_too_large_gets_fragmentation_needed_and_bulk_tcp_goes_through(link):
    client, server = link["client"], link["server"]
    # 1,450 bytes (the pod's MTU) with DF: more than the link carries sealed. The gateway
    # answers fragmentation-needed with 1,443; the pod's kernel learns it (the second ping is
    # refused locally with that MTU).
    r = client.exec(["ping", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", "1422",
                     server.ip], check=False)
    assert r.returncode != 0
    assert "1443" in (r.stdout + r.stderr), r.stdout + r.stderr
    client.exec(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1415", server.ip])
    server.popen(["iperf3", "-s", "-1", "-p", "5201"])
    time.sleep(0.5)
    r = client.exec(["iperf3", "-c", server.ip, "-p", "5201", "-t", "2", "-J"], timeout=30)
    result = json.loads(r.stdout)
    assert result["end"]["sum_received"]["bytes"] > 1_000_000, result["end"]


def test_a_secret_change_on_one_side_stops_the_link_until_the_other_agrees(link):
    east, west, client, server = link["east"], link["west"], link["client"], link["server"]
    before = east.drops().get("esp_unknown_spi", 0)
    refused = east.drops().get("esp_generation_refused", 0)
    west.call("cluster.peer.set", peer("east", EAST_IP, EAST_AS_PEER["cidrs"],
                                       secret="a secret east does not have"))
    try:
        # West still opens what east seals (a generation it learned), but begins a generation
        # with the new secret, which east cannot open: the replies do not come back.
        r = client.exec(["ping", "-c", "2", "-i", "0.2", "-W", "1", server.ip], check=False)
        assert r.returncode != 0
        assert east.drops().get("esp_unknown_spi", 0) >= before + 2
        # East tried to learn the new generation from them, and could not open it.
        assert east.drops().get("esp_generation_refused", 0) > refused
    finally:
        west.call("cluster.peer.set", EAST_AS_PEER)
    # The old secret back: a new generation under it, which east learns and opens.
    client.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", server.ip])


def blast(src, dst, seconds=3):
    """UDP from pod `src` to pod `dst` as fast as iperf3 goes: a hundred thousand packets or
    more through one SA (the far gateway's replay window moves far ahead)."""
    srv = dst.popen(["iperf3", "-s", "-1", "-p", "5202"])
    time.sleep(0.5)
    src.exec(["iperf3", "-c", dst.ip, "-p", "5202", "-u", "-b", "300M", "-l", "200", "-t",
              str(seconds)], check=False, timeout=seconds + 20)
    srv.wait(timeout=10)


def test_a_restarted_gateway_is_heard_again_at_once(link):
    """After a gateway's daemon restarts (an upgrade, a crash), it seals with a new generation
    of SAs: never again a key and sequence number it used (AES-GCM's IV), and the other gateway,
    whose replay window for the old SAs is far ahead, learns the new one from the first
    heartbeat instead of refusing everything as replayed."""
    east, west, client, server = link["east"], link["west"], link["client"], link["server"]
    blast(server, client)  # west -> east: east's window for west's SAs far ahead
    sealed = west.call("cluster.peers")["peers"][0]
    assert sealed["sealedMost"] > 50_000, sealed
    old = sealed["outboundGeneration"]
    west.stop()
    west.start()
    west.call("cluster.peer.set", EAST_AS_PEER)
    new = west.call("cluster.peers")["peers"][0]["outboundGeneration"]
    assert new > old, (old, new)
    assert west.counters()["esp_generations_started"] == 1  # the restarted daemon's first
    assert wait_learned(east, newer_than=old) == new
    start = time.time()
    client.exec(["ping", "-c", "1", "-W", "2", server.ip])
    r = client.exec(["curl", "-sS", "--max-time", "3", f"http://{server.ip}:8080/whoami"])
    assert "shop/server" in r.stdout, r.stdout
    assert time.time() - start < 5
    east_view = east.call("cluster.peers")["peers"][0]
    assert east_view["inboundGeneration"] == new and east_view["previousInboundGeneration"] == old


@pytest.mark.parametrize("bad, field", [
    (peer("east", WEST_IP, ["10.245.0.0/16"]), "own ID"),
    (peer("west", WEST_IP, ["10.244.0.0/16"]), "overlaps"),
    (peer("west", WEST_IP, ["10.96.5.0/24"]), "service CIDR"),
    (peer("west", WEST_IP, ["10.245.0.0/16"], secret="short"), "secret"),
    (peer("west", EAST_IP, ["10.245.0.0/16"]), "gatewayIp"),
    (peer("West_1", WEST_IP, ["10.245.0.0/16"]), "DNS label"),
    (dict(peer("west", WEST_IP, ["10.245.0.0/16"]), cidrs="10.245.0.0/16"), "cidrs"),
])
def test_bad_peers_are_refused_by_field_and_change_nothing(link, bad, field):
    east = link["east"]
    with pytest.raises(RuntimeError, match=field):
        east.call("cluster.peer.set", bad)
    (west,) = east.call("cluster.peers")["peers"]
    assert west["cidrs"] == WEST_AS_PEER["cidrs"]
