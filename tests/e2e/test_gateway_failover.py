"""Active and standby gateways (issue 13): cluster west has two gateway nodes, w1 preferred and
w2 standby (which also hosts the server pod); cluster east one, e1. Gateways send heartbeats every
100 ms: to every gateway of every peer through the ESP links, and to the other nodes of their own
cluster on the underlay. East's pod reaches west's pod through w1; when w1's daemon is killed,
east moves its link to w2 and w2 takes over as west's active gateway (both after 500 ms without
a heartbeat), and the traffic flows again. The longest gap a 20 ms UDP stream sees is printed
(measured, not asserted: see perf/RESULTS.md)."""

import json
import time

import pytest

from nplab import Lab

SECRET = "a secret the two clusters share"
E1, W1, W2 = "192.168.56.10", "192.168.56.20", "192.168.56.21"

STREAM = r"""
import json, socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
s.setblocking(False)
start = time.time(); last = start; gap = 0.0; replies = 0; seq = 0
while time.time() - start < seconds:
    s.send(str(seq).encode()); seq += 1
    deadline = time.time() + 0.02
    while time.time() < deadline:
        try:
            s.recv(100)
        except (BlockingIOError, ConnectionRefusedError):
            time.sleep(0.002)
            continue
        now = time.time(); gap = max(gap, now - last); last = now; replies += 1
print(json.dumps({"sent": seq, "replies": replies, "longestGapMs": round(gap * 1000),
                  "lastReplyAgoMs": round((time.time() - last) * 1000)}))
"""


@pytest.fixture(scope="module")
def clusters():
    with Lab("gf") as lab:
        e1 = lab.node("gf-e1", f"{E1}/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16",
                      service_cidr="10.96.0.0/16", extra_args=["--cluster-id", "east"])
        west = [lab.node(name, f"{ip}/24", cidr, cluster_cidr="10.245.0.0/16",
                         service_cidr="10.97.0.0/16", extra_args=["--cluster-id", "west"])
                for name, ip, cidr in (("gf-w1", W1, "10.245.1.0/24"),
                                       ("gf-w2", W2, "10.245.2.0/24"))]
        w1, w2 = west
        w1.set_node(w2)
        w2.set_node(w1)
        for d in west:
            d.call("cluster.gateways.set", {"nodes": ["gf-w1", "gf-w2"]})
            d.call("cluster.peer.set", {"clusterId": "east", "gatewayIp": E1, "secret": SECRET,
                                        "cidrs": ["10.244.0.0/16", "10.96.0.0/16"]})
        e1.call("cluster.peer.set", {"clusterId": "west", "gatewayIps": [W1, W2],
                                     "secret": SECRET, "cidrs": ["10.245.0.0/16",
                                                                 "10.97.0.0/16"]})
        client = lab.add_pod(e1, "shop", "client")
        server = lab.add_pod(w2, "shop", "server")
        server.serve(tcp=[7000], udp=[7001], http=[8080])
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                g["alive"] and g.get("resolved") and g["heartbeatsReceived"] > 0
                for g in e1.call("cluster.peers")["peers"][0]["gateways"]):
            time.sleep(0.1)
        yield {"lab": lab, "e1": e1, "w1": w1, "w2": w2, "client": client, "server": server}


def test_both_gateways_are_heard_and_the_preferred_one_is_used(clusters):
    e1, w1, w2 = clusters["e1"], clusters["w1"], clusters["w2"]
    (west,) = e1.call("cluster.peers")["peers"]
    assert west["gatewayIp"] == W1
    assert [(g["ip"], g["inUse"], g["alive"]) for g in west["gateways"]] == \
        [(W1, True, True), (W2, False, True)]
    assert all(g["heartbeatsReceived"] > 0 for g in west["gateways"]), west
    # Each west gateway has SAs of its own with east, both ways (a standby starts its own
    # sequence; keys name both gateways, inbound SAs are found by gateway and SPI), and east has
    # learned each one's generation from its heartbeats.
    for g in west["gateways"]:
        assert g["outboundGeneration"] and g["inboundGeneration"], g
    for d, role in ((w1, "gateway"), (w2, "via-gateway")):
        view = d.call("cluster.peers")
        assert view["role"] == role and view["activeGateway"] == "gf-w1", view
        assert all(g["alive"] for g in view["gatewayHealth"]), view
    r = clusters["client"].exec(["curl", "-sS", "--max-time", "5",
                                 f"http://{clusters['server'].ip}:8080/whoami"])
    assert r.stdout.strip() == f"shop/server {clusters['client'].ip}"
    assert w1.counters()["esp_opened"] > 0


def test_killing_the_active_gateway_moves_traffic_to_the_standby(clusters):
    e1, w1, w2, client, server = (clusters[k] for k in ("e1", "w1", "w2", "client", "server"))
    stream = client.popen(["/usr/bin/python3", "-c", STREAM, server.ip, "7001", "6"],
                          stdout=__import__("subprocess").PIPE, text=True)
    time.sleep(1.5)
    killed = time.time()
    w1.proc.kill()
    w1.proc.wait(timeout=10)
    out, _ = stream.communicate(timeout=30)
    result = json.loads(out)
    print(f"\ngateway failover: {result} (w1 killed {killed:.3f})")
    # Traffic flowed again before the stream ended (4.5 s after the kill).
    assert result["replies"] > 0 and result["lastReplyAgoMs"] < 500, result
    (west,) = e1.call("cluster.peers")["peers"]
    assert west["gatewayIp"] == W2, west
    assert [(g["ip"], g["alive"]) for g in west["gateways"]] == [(W1, False), (W2, True)]
    view = w2.call("cluster.peers")
    assert view["role"] == "gateway" and view["activeGateway"] == "gf-w2", view
    probe = client.probe("matrix", "--timeout", "3", f"t={server.ip}:7000/tcp",
                         f"u={server.ip}:7001/udp", check=True)
    assert json.loads(probe.stdout) == {"t": True, "u": True}, probe.stdout


@pytest.mark.parametrize("args, field", [
    ({"clusterId": "west", "gatewayIp": W1, "gatewayIps": [W1], "secret": SECRET,
      "cidrs": ["10.245.0.0/16"]}, "gatewayIp"),
    ({"clusterId": "west", "gatewayIps": [W1, W1], "secret": SECRET,
      "cidrs": ["10.245.0.0/16"]}, "given twice"),
    ({"clusterId": "west", "gatewayIps": "192.168.56.20", "secret": SECRET,
      "cidrs": ["10.245.0.0/16"]}, "gatewayIps"),
    ({"clusterId": "west", "gatewayIps": [], "secret": SECRET,
      "cidrs": ["10.245.0.0/16"]}, "none given"),
])
def test_bad_gateway_lists_are_refused_by_field(clusters, args, field):
    e1 = clusters["e1"]
    with pytest.raises(RuntimeError, match=field):
        e1.call("cluster.peer.set", args)
    (west,) = e1.call("cluster.peers")["peers"]
    assert [g["ip"] for g in west["gateways"]] == [W1, W2]
