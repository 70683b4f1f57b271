"""L7 rules end to end: a real HTTP server in a pod on node-gpu, clients on both nodes (curl, and
a raw socket that splits its request line over two TCP segments). The rules are enforced on the
server's node, on the client's byte stream, whichever node the client is on."""


import pytest

from nplab import Lab

WEB_RULES = {
    "apiVersion": "nodeplane.io/v1", "kind": "L7Rule",
    "metadata": {"namespace": "shop", "name": "web"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "ports": [{"port": "http"}],
             "rules": [{"action": "allow", "http": {"method": "GET", "path": "/public/.*"}},
                       {"action": "allow", "http": {"method": "GET", "path": "/whoami"}},
                       {"action": "deny", "pattern": "(?i)drop\\s+table"},
                       {"action": "log", "http": {"path": "/public/audit.*"}}]}}


@pytest.fixture(scope="module")
def cluster():
    with Lab("l") as lab:
        kw = dict(cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        cpu = lab.node("node-cpu", "192.168.50.10/24", "10.244.1.0/24", **kw)
        gpu = lab.node("node-gpu", "192.168.50.11/24", "10.244.2.0/24", **kw)
        cpu.set_node(gpu)
        gpu.set_node(cpu)
        web = lab.add_pod(gpu, "shop", "web")
        near = lab.add_pod(gpu, "shop", "near")  # same node as the server
        far = lab.add_pod(cpu, "shop", "far")    # across the overlay
        web.serve(http=[8080])
        pods = [{"namespace": "shop", "name": "web", "ip": web.ip, "labels": {"app": "web"},
                 "ports": [{"name": "http", "containerPort": 8080}]},
                {"namespace": "shop", "name": "near", "ip": near.ip, "labels": {"app": "client"}},
                {"namespace": "shop", "name": "far", "ip": far.ip, "labels": {"app": "client"}}]
        for d in (cpu, gpu):
            d.call("policy.apply", {"namespaces": [{"name": "shop"}], "pods": pods,
                                    "l7Rules": [WEB_RULES]})
        yield lab, cpu, gpu, web, near, far


def curl(pod, url, header=None):
    extra = ["-H", header] if header else []
    r = pod.exec(["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\\n%{http_code}"] + extra +
                 [url], check=False, timeout=15)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def raw_request(pod, host, segments):
    """Sends the request in the given segments (TCP_NODELAY, a pause between them) and returns
    what came back, or "reset"."""
    script = f"""
import socket, time
s = socket.create_connection(("{host}", 8080), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
try:
    for part in {segments!r}:
        s.sendall(part.encode())
        time.sleep(0.3)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if b"\\r\\n\\r\\n" in data and data.split(b"\\r\\n\\r\\n", 1)[1]:
            break
    print(data.decode(errors="replace").split("\\r\\n")[0] if data else "closed")
except ConnectionResetError:
    print("reset")
"""
    r = pod.exec(["/usr/bin/python3", "-c", script], check=False, timeout=20)
    return r.stdout.strip() or r.stderr.strip()


@pytest.mark.parametrize("client", ["near", "far"])
def test_allowed_and_denied_paths(cluster, client):
    lab, cpu, gpu, web, near, far = cluster
    pod = near if client == "near" else far
    rc, out, err = curl(pod, f"http://{web.ip}:8080/public/index.html")
    assert rc == 0 and out.endswith("200"), (rc, out, err)
    rc, out, err = curl(pod, f"http://{web.ip}:8080/whoami")
    assert rc == 0 and pod.ip in out, (rc, out, err)
    rc, out, err = curl(pod, f"http://{web.ip}:8080/private/keys")
    assert rc == 56 and "reset" in err.lower(), ("no allow rule: the flow is reset", rc, out, err)
    rc, out, err = curl(pod, f"http://{web.ip}:8080/public/x", "X-Query: 1; DROP   TABLE users")
    assert rc == 56 and "reset" in err.lower(), ("a deny pattern in a header", rc, out, err)
    rc, out, err = curl(pod, f"http://{web.ip}:8080/public/x?q=DROP%20TABLE")
    assert rc == 0 and out.endswith("200"), "patterns see the bytes as sent (URL-encoded here)"


def test_a_request_line_split_over_two_segments_still_matches(cluster):
    lab, cpu, gpu, web, near, far = cluster
    assert raw_request(far, web.ip, ["GET /pub", "lic/a HTTP/1.1\r\nHost: web\r\n\r\n"]) == "HTTP/1.0 200 OK"
    assert raw_request(far, web.ip, ["GET /priv", "ate HTTP/1.1\r\nHost: web\r\n\r\n"]) == "reset"
    assert raw_request(near, web.ip, ["GET /public/a?x=DROP ", "  TABLE HTTP/1.1\r\n\r\n"]) == "reset"


def test_denials_are_counted_and_logged(cluster):
    lab, cpu, gpu, web, near, far = cluster
    curl(far, f"http://{web.ip}:8080/public/audit/1")
    curl(far, f"http://{web.ip}:8080/admin")
    listed = gpu.call("policy.list")["l7"]
    matches = {r["source"]: r["matches"] for r in listed["rules"]}
    assert matches["l7rule shop/web spec.rules[3]"] >= 1, listed
    assert any(a["pod"] == "shop/web" and a["port"] == 8080 for a in listed["attachments"])
    counters = gpu.counters()
    assert counters["l7_resets"] >= 4
    log = gpu.call("policy.log", {"limit": 1000})["records"]
    assert any(r["event"] == "l7-deny" and r["dst"] == web.ip and r.get("l7") ==
               "no allow rule matched the request" for r in log), log
    assert any(r["event"] == "l7-deny" and r.get("l7") == "l7rule shop/web spec.rules[2]" for r in log), log
    assert any(r["event"] == "l7-log" for r in log), log
    # The client's node inspects nothing: L7 rules are the server side's.
    assert cpu.counters()["l7_bytes_scanned"] == 0
