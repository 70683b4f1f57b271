"""What the tests of tests/k8s share: the lab as a module fixture (skipped with the lab's reason
where it cannot start, failed on anything after), waiting that fails the test, and requests made
from inside a pod with the lab's busybox."""

import sys

import pytest

from nplab.k8s import K8sLab, LabError, LabUnavailable
from nplab.k8s import wait_for as lab_wait_for

UPLINK = "net_af_packet0,iface=lab0"  # two nodes: the underlay veth, shared with the kernel


def wait_for(what, check, timeout=120, interval=1.0):
    try:
        return lab_wait_for(what, check, timeout, interval)
    except LabError as e:
        pytest.fail(str(e))


def started_lab(namespace, objects, nodes=1):
    """Yields a K8sLab with nodeplane on every node, `namespace` made and `objects` (YAML)
    applied; stops and purges it afterwards."""
    k = K8sLab(nodes=nodes)
    try:
        try:
            k.setup()
        except LabUnavailable as e:
            print(f"tests/k8s: SKIPPED, {e}", file=sys.stderr)
            pytest.skip(f"the Kubernetes lab ({nodes} node(s)) cannot start here: {e}")
        try:
            k.leftovers(namespace)
            for node in range(1, nodes + 1):
                k.install_nodeplane(node=node, uplink=UPLINK if nodes > 1 else None)
            k.namespace(namespace)
        except LabError as e:
            pytest.fail(str(e))
        k.kubectl("apply", "-f", "-", input=objects)
        yield k
    finally:
        k.stop()


def web_per_node(namespace):
    """A Deployment of two busybox httpd pods, one per node, Ready through HTTP probes, and its
    Service `web` (port 80 to 8080); each answers hello-from-<its name>."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:  # one per node
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - {{labelSelector: {{matchLabels: {{app: web}}}}, topologyKey: kubernetes.io/hostname}}
      containers:
      - name: web
        image: k8slab.local/busybox:1.35
        imagePullPolicy: Never
        command: ["sh", "-c", "echo hello-from-$(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        readinessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 1}}
        livenessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 2}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {namespace}}}
spec: {{selector: {{app: web}}, ports: [{{port: 80, targetPort: 8080}}]}}
"""


def client_pod(namespace, name, node):
    """A busybox pod that sleeps on `node`, to run requests from."""
    return f"""
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: k8slab.local/busybox:1.35, imagePullPolicy: Never, command: ["sleep", "100000"]}}
"""


def http_get(k, namespace, pod, ip, port, path="/index.html", timeout=5):
    """The last line of an HTTP/1.0 GET sent from `pod` with busybox nc (its wget segfaults)."""
    r = k.kubectl("-n", namespace, "exec", pod, "--", "sh", "-c",
                  f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w {timeout} {ip} {port} "
                  "| tail -n 1", check=False, timeout=timeout + 30)
    return r.stdout.strip()


def reaches_api_server(k, namespace, pod):
    """Plain HTTP to kubernetes.default's TLS port: Go's TLS server answers it with a 400 of its
    own, so an answer proves the whole path (ClusterIP -> the API server on node 1, and back)."""
    r = k.kubectl("-n", namespace, "exec", pod, "--", "sh", "-c",
                  "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.96.0.1 443",
                  check=False, timeout=40)
    return "HTTP request to an HTTPS server" in r.stdout, r.stdout + r.stderr
