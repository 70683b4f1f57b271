#!/usr/bin/python3
"""Pod traffic between two clusters through their gateways, sealed with ESP AES-GCM-128, against
the kernel's IPsec (xfrm, what Submariner's Libreswan cable driver programs) in one run on this
machine with iperf3 (perf/RESULTS.md records the figures; never a test):

  nodeplane   two gateway daemons (control/cluster_links.h), a pod behind each, linked by ESP
              and then by the unencrypted VXLAN tunnel kind (what the encryption costs)
  kernel      two gateway namespaces routing pods behind veths into xfrm tunnel-mode SAs:
              rfc4106(gcm(aes)) with a 128-bit key where the kernel has it, else AES-128-CBC
              with HMAC-SHA256-128 (this machine's kernel has no GCM: said in the output)

each: TCP with 1 and 4 streams, and 64-byte UDP packets per second from two senders.

Run as root from the repository (after `make`): /usr/bin/python3 perf/cluster_link_bench.py
[--seconds N]. Everything it creates is removed when it ends (tools/nplab).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nplab import Lab  # noqa: E402
from nplab.lab import run  # noqa: E402
from pod_bench import MTU, measure  # noqa: E402

GCM = ["aead", "rfc4106(gcm(aes))", "0x" + "42" * 16 + "cafebabe", "128"]  # key + salt
CBC = ["enc", "cbc(aes)", "0x" + "42" * 16, "auth-trunc", "hmac(sha256)", "0x" + "17" * 32, "128"]


def kernel_algorithm(ns):
    """GCM if this kernel has it, else CBC + HMAC-SHA256, else none (no ESP in this kernel:
    then the kernel routes the same hops unencrypted, as the reference that remains)."""
    for algorithm, label in ((GCM, "AES-GCM-128"),
                             (CBC, "AES-128-CBC + HMAC-SHA256 (no GCM in this kernel)")):
        probe = run(["ip", "-n", ns, "xfrm", "state", "add", "src", "192.0.2.1", "dst",
                     "192.0.2.2", "proto", "esp", "spi", "999", "mode", "tunnel"] + algorithm,
                    check=False)
        if probe.returncode == 0:
            run(["ip", "-n", ns, "xfrm", "state", "flush"])
            return algorithm, label
    return [], ("none: this kernel has no ESP (" + probe.stderr.strip() +
                "); the same hops routed UNENCRYPTED instead")


def kernel_xfrm(lab, seconds):
    gws, pods = [], {}
    algorithm = None
    for i in (1, 2):
        gw = lab.add_node_netns(f"kx{i}", f"192.168.61.{i}/24")
        run(["ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "-n", gw, "addr", "add", f"10.9{i}.1.1/32", "dev", "lo"])  # the pods' gateway
        if algorithm is None:
            algorithm, label = kernel_algorithm(gw)
        for j in (2, 3):
            pod = lab.add_netns(f"kx{i}p{j}")
            run(["ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name",
                 f"p{j}", "netns", gw])
            run(["ip", "-n", gw, "link", "set", f"p{j}", "mtu", str(MTU), "up"])
            run(["ip", "-n", gw, "route", "add", f"10.9{i}.1.{j}/32", "dev", f"p{j}"])
            run(["ip", "-n", pod, "link", "set", "eth0", "mtu", str(MTU), "up"])
            run(["ip", "-n", pod, "addr", "add", f"10.9{i}.1.{j}/32", "dev", "eth0"])
            run(["ip", "-n", pod, "route", "add", f"10.9{i}.1.1", "dev", "eth0"])
            run(["ip", "-n", pod, "route", "add", "default", "via", f"10.9{i}.1.1"])
            pods[(i, j)] = pod
        gws.append(gw)
    for i, gw in enumerate(gws, start=1):
        other = 3 - i
        local, remote = f"192.168.61.{i}", f"192.168.61.{other}"
        run(["ip", "-n", gw, "route", "add", f"10.9{other}.0.0/16", "via", remote])
        if not algorithm:
            continue
        for src, dst, spi, reqid in ((local, remote, 0x100 + i, i),
                                     (remote, local, 0x100 + other, other)):
            run(["ip", "-n", gw, "xfrm", "state", "add", "src", src, "dst", dst, "proto", "esp",
                 "spi", str(spi), "reqid", str(reqid), "mode", "tunnel"] + algorithm)
        run(["ip", "-n", gw, "xfrm", "policy", "add", "src", f"10.9{i}.0.0/16", "dst",
             f"10.9{other}.0.0/16", "dir", "out", "tmpl", "src", local, "dst", remote, "proto",
             "esp", "reqid", str(i), "mode", "tunnel"])
        for direction in ("in", "fwd"):
            run(["ip", "-n", gw, "xfrm", "policy", "add", "src", f"10.9{other}.0.0/16", "dst",
                 f"10.9{i}.0.0/16", "dir", direction, "tmpl", "src", remote, "dst", local,
                 "proto", "esp", "reqid", str(other), "mode", "tunnel"])
    run(["ip", "netns", "exec", pods[(1, 2)], "ping", "-c", "2", "-W", "2", "10.92.1.2"])
    print(f"  kernel ESP: {label}", flush=True)
    res = measure("kernel, two gateways", pods[(1, 2)], pods[(1, 3)], pods[(2, 2)], "10.92.1.2",
                  seconds)
    res["encrypted"] = bool(algorithm)
    return res


def nodeplane_link(lab, seconds, tunnel="esp"):
    east = lab.node("bench-east", "192.168.62.10/24", "10.244.1.0/24",
                    cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/16",
                    extra_args=["--cluster-id", "east"])
    west = lab.node("bench-west", "192.168.62.11/24", "10.245.1.0/24",
                    cluster_cidr="10.245.0.0/16", service_cidr="10.97.0.0/16",
                    extra_args=["--cluster-id", "west"])
    link = ({"secret": "benchmark secret both share"} if tunnel == "esp"
            else {"tunnel": "vxlan", "vni": 7001})
    east.call("cluster.peer.set", dict(link, clusterId="west", gatewayIp="192.168.62.11",
                                       cidrs=["10.245.0.0/16"]))
    west.call("cluster.peer.set", dict(link, clusterId="east", gatewayIp="192.168.62.10",
                                       cidrs=["10.244.0.0/16"]))
    a, c = lab.add_pod(east, "bench", "a"), lab.add_pod(east, "bench", "c")
    b = lab.add_pod(west, "bench", "b")
    assert a.ping(b.ip, count=3), "the pods do not reach each other"
    res = measure(f"nodeplane {tunnel.upper()}, two gateways", a.netns, c.netns, b.netns, b.ip,
                  seconds)
    res["sealed"] = east.counters()["esp_sealed"]
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    print(f"nodeplane cluster_link_bench: iperf3 {args.seconds} s per case, pod MTU {MTU}",
          flush=True)
    with Lab("kx") as lab:
        kernel = kernel_xfrm(lab, args.seconds)
    with Lab("nx") as lab:
        ours = nodeplane_link(lab, args.seconds)
    with Lab("nv") as lab:
        clear = nodeplane_link(lab, args.seconds, "vxlan")
    what = "kernel ESP" if kernel["encrypted"] else "the kernel routing UNENCRYPTED"
    print(f"  ratio, nodeplane ESP vs {what}:  TCP 1 {ours['tcp1'] / kernel['tcp1']:.2f}x   "
          f"TCP 4 {ours['tcp4'] / kernel['tcp4']:.2f}x   UDP {ours['udp'] / kernel['udp']:.2f}x")
    print(f"  ratio, nodeplane ESP vs nodeplane VXLAN link:  TCP 1 {ours['tcp1'] / clear['tcp1']:.2f}x"
          f"   TCP 4 {ours['tcp4'] / clear['tcp4']:.2f}x   UDP {ours['udp'] / clear['udp']:.2f}x")


if __name__ == "__main__":
    main()
