"""nodeplane-agent's API-server source against a local HTTPS endpoint that speaks the API
server's list and watch protocol: the agent lists every kind, watches from the list's
resourceVersion, follows bookmarks, lists again after 410 Gone, and treats a kind the server does
not serve (the L7Rule CRD not installed) as empty. It runs with --print: every desired state it
would push is printed as one JSON line."""

import json
import queue
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from nplab.lab import build_dir

TOKEN = "test-token-123"
KINDS = {
    "/api/v1/nodes": "Node", "/api/v1/namespaces": "Namespace", "/api/v1/pods": "Pod",
    "/api/v1/services": "Service", "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/api/v1/endpoints": "Endpoints", "/apis/networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
}


def svc(name, ip):
    return {"kind": "Service", "apiVersion": "v1",
            "metadata": {"namespace": "web", "name": name, "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]}}


def slice_for(name, ip):
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "addressType": "IPv4",
            "metadata": {"namespace": "web", "name": name + "-abc",
                         "labels": {"kubernetes.io/service-name": name}, "resourceVersion": "1"},
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": "n1"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class FakeApi:
    """Serves lists from `objects`, watches from per-path scripts the test feeds."""

    def __init__(self, tmp):
        self.objects = {path: [] for path in KINDS}
        self.objects["/api/v1/nodes"] = [{
            "kind": "Node", "metadata": {"name": "n1", "resourceVersion": "1"},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.10"}]}}]
        self.objects["/api/v1/services"] = [svc("web", "10.96.0.40")]
        self.objects["/apis/discovery.k8s.io/v1/endpointslices"] = [slice_for("web", "10.244.1.5")]
        self.watches = {path: queue.Queue() for path in KINDS}
        self.requests = []
        self.version = 100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                q = parse_qs(url.query)
                api.requests.append((url.path, q))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_error(401)
                    return
                if url.path not in KINDS:
                    self.send_error(404)  # e.g. the L7Rule CRD is not installed
                    return
                if "watch" not in q:
                    body = json.dumps({"kind": KINDS[url.path] + "List", "apiVersion": "v1",
                                       "metadata": {"resourceVersion": str(api.version)},
                                       "items": api.objects[url.path]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                script = api.watches[url.path]
                deadline = time.time() + 60
                while time.time() < deadline:
                    try:
                        step = script.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if step == "close":
                        return
                    if step == "gone":
                        self.wfile.write((json.dumps({"type": "ERROR", "object": {
                            "kind": "Status", "code": 410, "reason": "Expired",
                            "message": "too old resource version"}}) + "\n").encode())
                        self.wfile.flush()
                        return
                    self.wfile.write((json.dumps(step) + "\n").encode())
                    self.wfile.flush()

        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem"),
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tmp / "cert.pem"), str(tmp / "key.pem"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def watch_requests(self, path):
        return [q for p, q in self.requests if p == path and "watch" in q]

    def list_requests(self, path):
        return [q for p, q in self.requests if p == path and "watch" not in q]


@pytest.fixture
def api(tmp_path):
    a = FakeApi(tmp_path)
    yield a
    for w in a.watches.values():
        w.put("close")
    a.server.shutdown()


def start_agent(tmp_path, api):
    import base64
    ca = base64.b64encode((tmp_path / "cert.pem").read_bytes()).decode()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
current-context: test
contexts:
- name: test
  context: {{cluster: fake, user: agent}}
clusters:
- name: fake
  cluster: {{server: "https://127.0.0.1:{api.port}", certificate-authority-data: {ca}}}
users:
- name: agent
  user: {{token: {TOKEN}}}
""")
    proc = subprocess.Popen([str(build_dir() / "control/nodeplane-agent"), "--node-name", "n1",
                             "--kubeconfig", str(kubeconfig), "--print", "--debounce-ms", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
    return proc, lines


def next_state(lines, want, timeout=15):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = json.loads(lines.get(timeout=0.2))
        except queue.Empty:
            continue
        if want(last):
            return last
    raise AssertionError(f"no desired state as expected; last: {last}")


def names(state):
    return sorted(s["name"] for s in state["services"])


def test_list_watch_bookmark_and_gone(tmp_path, api):
    proc, lines = start_agent(tmp_path, api)
    try:
        state = next_state(lines, lambda s: names(s) == ["web"])
        assert state["nodes"] == [{"name": "n1", "ip": "192.168.50.10", "podCidrs": ["10.244.1.0/24"]}]
        assert state["services"][0]["endpoints"][0]["ip"] == "10.244.1.5"
        # Every kind listed, then watched from the list's version, with bookmarks asked for.
        for path in KINDS:
            assert api.list_requests(path), path
        services = "/api/v1/services"
        # The agent prints the state it has after the lists; its watches may start a moment later.
        deadline = time.time() + 10
        while time.time() < deadline and not api.watch_requests(services):
            time.sleep(0.05)
        w = api.watch_requests(services)[0]
        assert w["resourceVersion"] == ["100"] and w["allowWatchBookmarks"] == ["true"]

        # A watch event adds a Service and its slice.
        api.watches[services].put({"type": "ADDED", "object": dict(svc("web2", "10.96.0.41"),
                                   metadata={"namespace": "web", "name": "web2", "resourceVersion": "101"})})
        api.watches["/apis/discovery.k8s.io/v1/endpointslices"].put(
            {"type": "ADDED", "object": slice_for("web2", "10.244.1.6")})
        # The Service and its slice are two events: the agent may apply between them.
        def web2(s):
            return next((x for x in s["services"] if x["name"] == "web2"), {})

        state = next_state(lines, lambda s: names(s) == ["web", "web2"]
                           and web2(s).get("endpoints"))
        assert web2(state)["endpoints"][0]["ip"] == "10.244.1.6"

        # A bookmark moves the version on; the next watch starts from it.
        api.watches[services].put({"type": "BOOKMARK", "object": {
            "kind": "Service", "metadata": {"resourceVersion": "500"}}})
        api.watches[services].put("close")
        deadline = time.time() + 10
        while time.time() < deadline and len(api.watch_requests(services)) < 2:
            time.sleep(0.05)
        assert api.watch_requests(services)[1]["resourceVersion"] == ["500"]

        # 410 Gone: the agent lists again, and what the list says replaces what it had.
        lists_before = len(api.list_requests(services))
        api.objects[services] = [svc("web", "10.96.0.40"), svc("web3", "10.96.0.42")]
        api.version = 600
        api.watches[services].put("gone")
        state = next_state(lines, lambda s: names(s) == ["web", "web3"])
        assert len(api.list_requests(services)) == lists_before + 1
        deadline = time.time() + 10
        while time.time() < deadline and api.watch_requests(services)[-1]["resourceVersion"] != ["600"]:
            time.sleep(0.05)
        assert api.watch_requests(services)[-1]["resourceVersion"] == ["600"]

        # A deletion.
        api.watches[services].put({"type": "DELETED", "object": svc("web3", "10.96.0.42")})
        next_state(lines, lambda s: names(s) == ["web"])
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read()[-2000:]


def test_a_wrong_token_is_reported_and_retried(tmp_path, api):
    global TOKEN
    saved, TOKEN = TOKEN, "other"
    try:
        proc, lines = start_agent(tmp_path, api)
    finally:
        TOKEN = saved
    time.sleep(2.5)
    proc.terminate()
    proc.wait(10)
    err = proc.stderr.read()
    assert "HTTP 401" in err and "retrying in" in err, err[-2000:]
    assert lines.empty(), "nothing pushed before every kind could be listed"


def test_watch_events_on_stdin(tmp_path):
    events = [
        {"type": "ADDED", "object": {"kind": "Node", "apiVersion": "v1",
                                     "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"},
                                     "status": {"addresses": [{"type": "InternalIP",
                                                               "address": "192.168.50.10"}]}}},
        {"type": "ADDED", "object": svc("web", "10.96.0.40")},
        {"type": "MODIFIED", "object": svc("web", "10.96.0.45")},
        {"kind": "Service", "apiVersion": "v1", "metadata": {"namespace": "web", "name": "plain"},
         "spec": {"clusterIP": "10.96.0.46", "ports": [{"port": 80}]}},
        {"type": "DELETED", "object": svc("web", "10.96.0.45")},
    ]
    text = "".join(json.dumps(e, indent=2) + "\n" for e in events)  # as kubectl prints them
    proc = subprocess.run([str(build_dir() / "control/nodeplane-agent"), "--node-name", "n1",
                           "--stdin", "--print", "--once", "--debounce-ms", "200"],
                          input=text, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout.splitlines()[-1])
    assert names(state) == ["plain"]
    assert state["nodes"][0]["name"] == "n1"
