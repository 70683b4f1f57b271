"""The flow log and packet capture as operators use them: `npctl observe` (what `hubble observe`
gives) shows each new flow's verdict with its translation, a denied flow with the name of the
NetworkPolicy that denied it, and drops with their reason, filtered and followed; `npctl capture`
writes a pcapng file that tcpdump reads, holding exactly the packets sent that its BPF filter
passes, in both directions."""

import json
import select
import struct
import subprocess
import time

import pytest

from nplab import Lab
from nplab.lab import build_dir

SERVICE_IP = "10.96.0.40"


@pytest.fixture(scope="module")
def node():
    with Lab("fl") as lab:
        d = lab.node("node-fl", "192.168.51.10/24", "10.244.1.0/24",
                     cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        a = lab.add_pod(d, "app", "a")
        b = lab.add_pod(d, "app", "b")
        b.serve(http=[8080])
        d.set_service("app", "web", SERVICE_IP, [{"name": "http", "port": 80, "targetPort": 8080}],
                      [b])
        time.sleep(0.3)
        yield {"lab": lab, "d": d, "a": a, "b": b}


def observe(d, *flags):
    r = d.npctl("observe", *flags)
    return [json.loads(line) for line in r.stdout.splitlines()]


def curl(pod, url, timeout=3):
    return pod.exec(["curl", "-sS", "--max-time", str(timeout), url], check=False)


def identities(a, b):
    return {"namespaces": [{"name": "app", "labels": {"ns": "app"}}],
            "pods": [{"namespace": "app", "name": p.name, "ip": p.ip, "labels": {"pod": p.name}}
                     for p in (a, b)]}


def test_a_service_flow_shows_its_backend_and_a_drop_its_reason(node):
    d, a, b = node["d"], node["a"], node["b"]
    assert curl(a, f"http://{SERVICE_IP}/").returncode == 0
    flows = observe(d, "--verdict", "forwarded", "--pod", "app/a", "--port", "80")
    assert flows, "no forwarded flow recorded"
    f = flows[-1]
    assert f["protocol"] == "TCP" and f["tcpFlags"] == "SYN", f
    assert f["source"] == {"ip": a.ip, "port": f["source"]["port"], "pod": "a", "namespace": "app"}
    assert f["destination"]["ip"] == SERVICE_IP and f["destination"]["port"] == 80, f
    assert f["translated"]["destination"] == {"ip": b.ip, "port": 8080, "pod": "b",
                                              "namespace": "app"}, f
    assert f["service"].startswith("app/web"), f
    assert f["interface"] == "app/a", f

    a.exec(["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.244.1.250"], check=False)  # no pod
    drops = observe(d, "--verdict", "dropped", "--protocol", "icmp", "--last", "2")
    assert [x["dropReason"] for x in drops] == ["pod_unknown", "pod_unknown"], drops
    assert drops[-1]["destination"] == {"ip": "10.244.1.250"}, drops


def test_a_denied_flow_names_its_policy_and_follow_streams_it(node):
    d, a, b = node["d"], node["a"], node["b"]
    follower = subprocess.Popen(
        [str(build_dir() / "control/npctl"), "--socket", d.socket, "observe", "--follow",
         "--last", "1", "--verdict", "policy-denied", "--namespace", "app"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"namespace": "app", "name": "b-closed"},
                "spec": {"podSelector": {"matchLabels": {"pod": "b"}},
                         "policyTypes": ["Ingress"]}}
        d.call("policy.apply", dict(identities(a, b), networkPolicies=[deny]))
        assert curl(a, f"http://{b.ip}:8080/", timeout=1).returncode != 0
        denied = observe(d, "--verdict", "policy-denied", "--pod", "b", "--last", "1")
        assert denied, "no denied flow recorded"
        f = denied[-1]
        assert f["policy"] == "app/b-closed", f
        assert f["dropReason"] == "policy_denied_ingress", f
        assert f["source"]["pod"] == "a" and f["destination"]["pod"] == "b", f
        assert f["destination"]["port"] == 8080, f

        # The follower sees it too, as a JSON line, without asking again.
        lines = []
        deadline = time.time() + 10
        while time.time() < deadline and not any("b-closed" in x for x in lines):
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                lines.append(follower.stdout.readline())
        assert any(json.loads(x).get("policy") == "app/b-closed" for x in lines if x.strip()), \
            lines
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        d.call("policy.apply", dict(identities(a, b), networkPolicies=[]))
    assert curl(a, f"http://{b.ip}:8080/").returncode == 0


def test_observe_rejects_a_bad_filter_by_name(node):
    r = node["d"].npctl("observe", "--verdict", "maybe", check=False)
    assert r.returncode != 0 and "verdict" in r.stderr, r.stderr
    r = node["d"].npctl("observe", "--protocol", "gre", check=False)
    assert r.returncode != 0 and "protocol" in r.stderr, r.stderr


def tcpdump(path, *expr):
    r = subprocess.run(["tcpdump", "-nn", "-r", str(path)] + list(expr),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line.strip()]


def directions(path):
    """The epb_flags direction of every enhanced packet block of a pcapng file."""
    data, out, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        kind, length = struct.unpack_from("<II", data, at)
        if kind == 6:
            captured = struct.unpack_from("<I", data, at + 20)[0]
            opt = at + 28 + (captured + 3) // 4 * 4
            flags = None
            while opt + 4 <= at + length - 4:
                code, size = struct.unpack_from("<HH", data, opt)
                if code == 0:
                    break
                if code == 2:
                    flags = struct.unpack_from("<I", data, opt + 4)[0]
                opt += 4 + (size + 3) // 4 * 4
            out.append({1: "rx", 2: "tx"}.get((flags or 0) & 3, "?"))
        at += length
    return out


def test_capture_writes_the_filtered_packets_as_pcapng_that_tcpdump_reads(node, tmp_path):
    d, a, b = node["d"], node["a"], node["b"]
    out = tmp_path / "b.pcapng"
    cap = subprocess.Popen(
        [str(build_dir() / "control/npctl"), "--socket", d.socket, "capture", "--port", "app/b",
         "--filter", f"icmp and host {a.ip}", "--duration", "4", "-w", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    a.exec(["ping", "-c", "3", "-i", "0.2", "-W", "1", b.ip])
    assert curl(a, f"http://{b.ip}:8080/").returncode == 0  # not ICMP: filtered out
    _, err = cap.communicate(timeout=20)
    assert cap.returncode == 0, err
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a", "a pcapng section header"
    lines = tcpdump(out)
    requests = [x for x in lines if "echo request" in x]
    replies = [x for x in lines if "echo reply" in x]
    # b's port: the requests leave toward b (tx), the replies arrive from it (rx).
    assert len(requests) == 3 and len(replies) == 3 and len(lines) == 6, lines
    assert all(f"{a.ip} > {b.ip}" in x for x in requests), requests
    assert directions(out) == ["tx", "rx"] * 3 or sorted(directions(out)) == ["rx"] * 3 + ["tx"] * 3


def test_capture_counts_and_stops_and_rejects_what_it_cannot_do(node, tmp_path):
    d, a, b = node["d"], node["a"], node["b"]
    out = tmp_path / "a.pcapng"
    cap = subprocess.Popen(
        [str(build_dir() / "control/npctl"), "--socket", d.socket, "capture", "--port", "app/a",
         "--direction", "rx", "--filter", "tcp dst port 8080", "--count", "2", "-w", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    for _ in range(3):
        assert curl(a, f"http://{b.ip}:8080/").returncode == 0
    _, err = cap.communicate(timeout=20)
    assert cap.returncode == 0, err
    lines = tcpdump(out)
    assert len(lines) == 2 and all(f"> {b.ip}.8080" in x for x in lines), lines

    bad = d.npctl("capture", "--port", "app/a", "--filter", "tcp port nonsense", "-w",
                  str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "filter" in bad.stderr, bad.stderr
    missing = d.npctl("capture", "--port", "app/nobody", "-w", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0 and "app/nobody" in missing.stderr, missing.stderr
    # Nothing is left running: a new capture can start.
    again = d.npctl("capture", "--port", "app/a", "--duration", "1", "-w", str(tmp_path / "y"))
    assert again.returncode == 0
