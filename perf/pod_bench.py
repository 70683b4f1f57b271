#!/usr/bin/python3
"""Pod traffic through nodeplane against the kernel's own datapaths, measured in one run on
this machine with iperf3 (perf/RESULTS.md records the figures; never a test):

  same node   two pods through nodeplane          vs two namespaces on a Linux bridge
  two nodes   pods across nodeplane's VXLAN       vs two namespaces over kernel vxlan devices
  each: TCP with 1 and 4 streams, and 64-byte UDP packets per second from two senders

and attaching 250 pods to one node: CNI ADD time (p50, p99), the daemon's memory, a ping to each;
and the host path as kubelet probes use it: HTTP requests from the node's own namespace to a pod
(connect, GET, close; requests per second and latency) through nodeplane's host path vs the
kernel routing the node to a pod over its veth (what bridge and routed CNIs do).

Run as root from the repository (after `make`): /usr/bin/python3 perf/pod_bench.py [--seconds N]
[--skip-scale] [--skip-host-path]. Everything it creates is removed when it ends (tools/nplab).
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nplab import Lab  # noqa: E402
from nplab.lab import run  # noqa: E402

MTU = 1450


def iperf_tcp(client_ns, server_ns, server_ip, seconds, streams):
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        r = run(["ip", "netns", "exec", client_ns, "iperf3", "-c", server_ip, "-p", "5201", "-t",
                 str(seconds), "-P", str(streams), "-J"], timeout=seconds + 30)
        out = json.loads(r.stdout)
        return out["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        srv.wait(timeout=10)


def iperf_udp_pps(clients, server_ns, server_ip, seconds):
    """64-byte UDP datagrams as fast as two senders go; packets per second received."""
    servers = []
    for i, _ in enumerate(clients):
        servers.append(subprocess.Popen(
            ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", str(5301 + i)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-c", server_ip, "-p",
                               str(5301 + i), "-u", "-b", "0", "-l", "64", "-t", str(seconds),
                               "-J"], stdout=subprocess.PIPE, text=True)
             for i, ns in enumerate(clients)]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        end = json.loads(out)["end"]["sum"]
        total += (end["packets"] - end["lost_packets"]) / end["seconds"]
    for s in servers:
        s.wait(timeout=10)
    return total


def measure(label, client_ns, other_client_ns, server_ns, server_ip, seconds):
    res = {"tcp1": iperf_tcp(client_ns, server_ns, server_ip, seconds, 1),
           "tcp4": iperf_tcp(client_ns, server_ns, server_ip, seconds, 4),
           "udp": iperf_udp_pps([client_ns, other_client_ns], server_ns, server_ip, seconds)}
    print(f"  {label:34s} TCP 1 stream {res['tcp1']:6.2f} Gbit/s   4 streams "
          f"{res['tcp4']:6.2f} Gbit/s   UDP 64 B {res['udp'] / 1e3:7.1f} kpps", flush=True)
    return res


def linux_bridge(lab, seconds):
    br = lab.add_netns("br")
    run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
    run(["ip", "-n", br, "link", "set", "br0", "up"])
    names = []
    for i, ip in enumerate(["10.99.0.1", "10.99.0.2", "10.99.0.3"]):
        ns = lab.add_netns(f"b{i}")
        run(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"v{i}",
             "netns", br])
        run(["ip", "-n", br, "link", "set", f"v{i}", "mtu", str(MTU), "master", "br0", "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "mtu", str(MTU), "up"])
        run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
        names.append(ns)
    return measure("Linux bridge", names[0], names[2], names[1], "10.99.0.2", seconds)


def kernel_vxlan(lab, seconds):
    """Two kernel nodes (namespaces on an underlay bridge) as a flannel-style VXLAN CNI builds
    them: pods in namespaces behind veth pairs, routed by the node (ip_forward) into a vxlan
    device towards the other node. The same hops as nodeplane's path."""
    nodes, pods = [], {}
    for i in (1, 2):
        ns = lab.add_node_netns(f"kv{i}", f"192.168.60.{i}/24")
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "-n", ns, "link", "add", "vxlan0", "type", "vxlan", "id", "42", "dstport",
             "4789", "local", f"192.168.60.{i}", "dev", "ul0", "nolearning"])
        run(["ip", "-n", ns, "link", "set", "vxlan0", "mtu", str(MTU), "up"])
        run(["ip", "-n", ns, "addr", "add", f"10.98.{i}.0/32", "dev", "vxlan0"])
        for j in (2, 3):
            pod = lab.add_netns(f"kv{i}p{j}")
            run(["ip", "link", "add", "eth0", "netns", pod, "type", "veth", "peer", "name",
                 f"p{j}", "netns", ns])
            run(["ip", "-n", ns, "link", "set", f"p{j}", "mtu", str(MTU), "up"])
            run(["ip", "-n", ns, "route", "add", f"10.98.{i}.{j}/32", "dev", f"p{j}"])
            run(["ip", "-n", pod, "link", "set", "eth0", "mtu", str(MTU), "up"])
            run(["ip", "-n", pod, "addr", "add", f"10.98.{i}.{j}/32", "dev", "eth0"])
            run(["ip", "-n", pod, "route", "add", f"10.98.{i}.0", "dev", "eth0"])
            run(["ip", "-n", pod, "route", "add", "default", "via", f"10.98.{i}.0"])
            run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                 f"net.ipv4.conf.p{j}.proxy_arp=1"])
            pods[(i, j)] = pod
        nodes.append(ns)
    for i, ns in enumerate(nodes, start=1):
        other = 3 - i
        mac = json.loads(run(["ip", "-n", nodes[other - 1], "-j", "link", "show",
                              "vxlan0"]).stdout)[0]["address"]
        run(["bridge", "-n", ns, "fdb", "append", mac, "dev", "vxlan0", "dst",
             f"192.168.60.{other}"])
        run(["ip", "-n", ns, "neigh", "add", f"10.98.{other}.0", "lladdr", mac, "dev", "vxlan0"])
        run(["ip", "-n", ns, "route", "add", f"10.98.{other}.0/24", "via", f"10.98.{other}.0",
             "dev", "vxlan0", "onlink"])
    return measure("kernel vxlan", pods[(1, 2)], pods[(1, 3)], pods[(2, 2)], "10.98.2.2",
                   seconds)


def nodeplane_same_node(lab, seconds):
    d = lab.daemon("bench-a", "192.168.50.10", "10.244.1.0/24", cluster_cidr="10.244.0.0/16")
    a, b, c = (lab.add_pod(d, "bench", n) for n in ("a", "b", "c"))
    res = measure("nodeplane, same node", a.netns, c.netns, b.netns, b.ip, seconds)
    res["counters"] = d.counters()
    return res


def nodeplane_two_nodes(lab, seconds):
    cpu = lab.node("bench-cpu", "192.168.50.10/24", "10.244.1.0/24", cluster_cidr="10.244.0.0/16")
    gpu = lab.node("bench-gpu", "192.168.50.11/24", "10.244.2.0/24", cluster_cidr="10.244.0.0/16")
    for d, other in ((cpu, gpu), (gpu, cpu)):
        d.set_node(other)
        d.set_node(d)
    a, c = lab.add_pod(cpu, "bench", "a"), lab.add_pod(cpu, "bench", "c")
    b = lab.add_pod(gpu, "bench", "b")
    assert a.ping(b.ip), "the pods do not reach each other"
    return measure("nodeplane VXLAN, two nodes", a.netns, c.netns, b.netns, b.ip, seconds)


def scale(lab, count):
    d = lab.daemon("bench-scale", "192.168.50.10", "10.244.0.0/16",
                   extra_args=["--mbufs", "16383"])
    times = []
    pods = []
    for i in range(count):
        t0 = time.perf_counter()
        pods.append(lab.add_pod(d, "scale", f"p{i}"))
        times.append(time.perf_counter() - t0)
    rss = int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{d.proc.pid}/status").read_text())
              .group(1)) // 1024
    times.sort()
    failed = [p.name for p in pods[1:] if not pods[0].ping(p.ip, count=1, timeout=1)]
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(f"  {count} pods: CNI ADD p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms; daemon RSS "
          f"{rss} MiB (with --mbufs 16383, --no-huge -m 384); ping from the first to every other: "
          f"{count - 1 - len(failed)}/{count - 1}", flush=True)
    return {"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "rss_mib": rss, "unreachable": failed}


PROBE_CLIENT = r"""
import socket, sys, time
ip, seconds = sys.argv[1], float(sys.argv[2])
lat, end = [], time.time() + seconds
while time.time() < end:
    t0 = time.perf_counter()
    s = socket.create_connection((ip, 8080), timeout=2)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    lat.append(time.perf_counter() - t0)
lat.sort()
print(len(lat) / seconds, lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3)
"""


def probe_rate(node_ns, ip, seconds):
    """Requests per second and p50/p99 latency (ms) of sequential HTTP probes from node_ns."""
    r = run(["ip", "netns", "exec", node_ns, "/usr/bin/python3", "-c", PROBE_CLIENT, ip,
             str(seconds)], timeout=seconds + 30)
    rate, p50, p99 = (float(x) for x in r.stdout.split())
    return {"rate": rate, "p50_ms": p50, "p99_ms": p99}


def host_path(lab, seconds, idle_sleep_us):
    # The kernel first (before a polling daemon takes a core): the node routes to the pod over
    # its veth (host end in the node namespace).
    node = lab.add_netns("kh")
    target = lab.add_netns("khp")
    run(["ip", "link", "add", "eth0", "netns", target, "type", "veth", "peer", "name", "hv0",
         "netns", node])
    run(["ip", "-n", node, "link", "set", "hv0", "up"])
    run(["ip", "-n", node, "addr", "add", "10.97.0.1/32", "dev", "hv0"])
    run(["ip", "-n", node, "route", "add", "10.97.0.2/32", "dev", "hv0"])
    run(["ip", "-n", target, "link", "set", "eth0", "up"])
    run(["ip", "-n", target, "link", "set", "lo", "up"])
    run(["ip", "-n", target, "addr", "add", "10.97.0.2/32", "dev", "eth0"])
    run(["ip", "-n", target, "route", "add", "10.97.0.1/32", "dev", "eth0"])
    lab.popen(["ip", "netns", "exec", target, "/usr/bin/python3",
               str(Path(__file__).resolve().parent.parent / "tools/nplab/probe.py"), "serve",
               "--http", "8080"])
    time.sleep(1)
    kernel = probe_rate(node, "10.97.0.2", seconds)
    # nodeplane: the node kernel holds the node address; probes take the host path.
    ns = lab.add_node_netns("hp", "192.168.50.10/24")
    d = lab.daemon("bench-hp", "192.168.50.10/24", "10.244.1.0/24", netns=ns,
                   uplink="net_af_packet_ul,iface=ul0", service_cidr="10.96.0.0/12",
                   extra_args=["--host-interface", "np0", "--idle-sleep-us", str(idle_sleep_us)])
    pod = lab.add_pod(d, "bench", "web")
    pod.serve(http=[8080])
    ours = probe_rate(ns, pod.ip, seconds)
    print(f"  (nodeplane polling with --idle-sleep-us {idle_sleep_us})", flush=True)
    for label, r in (("nodeplane host path", ours), ("kernel route to the veth", kernel)):
        print(f"  probes from the node, {label:26s} {r['rate']:7.0f} req/s   p50 "
              f"{r['p50_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms", flush=True)
    print(f"  ratio, host path vs kernel route      {ours['rate'] / kernel['rate']:.2f}x req/s",
          flush=True)
    return {"nodeplane": ours, "kernel": kernel}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--pods", type=int, default=250)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-host-path", action="store_true")
    ap.add_argument("--only-host-path", action="store_true")
    ap.add_argument("--idle-sleep-us", type=int, default=0,
                    help="the host-path daemon's idle sleep (0: it polls, as in production)")
    args = ap.parse_args()
    print(f"nodeplane pod_bench: iperf3 {args.seconds} s per case, MTU {MTU}", flush=True)
    results = {}
    if not args.skip_host_path:
        with Lab("ph") as lab:
            results["host_path"] = host_path(lab, args.seconds, args.idle_sleep_us)
        if args.only_host_path:
            return
    with Lab("pb") as lab:
        results["bridge"] = linux_bridge(lab, args.seconds)
        results["np_same"] = nodeplane_same_node(lab, args.seconds)
    with Lab("pv") as lab:
        results["kvxlan"] = kernel_vxlan(lab, args.seconds)
        results["np_cross"] = nodeplane_two_nodes(lab, args.seconds)
    for key, ref, label in (("np_same", "bridge", "same node vs Linux bridge"),
                            ("np_cross", "kvxlan", "two nodes vs kernel vxlan")):
        r, b = results[key], results[ref]
        print(f"  ratio, {label:28s} TCP 1 {r['tcp1'] / b['tcp1']:.2f}x   TCP 4 "
              f"{r['tcp4'] / b['tcp4']:.2f}x   UDP {r['udp'] / b['udp']:.2f}x")
    if not args.skip_scale:
        with Lab("ps") as lab:
            results["scale"] = scale(lab, args.pods)


if __name__ == "__main__":
    main()
