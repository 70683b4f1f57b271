#!/usr/bin/python3
"""Cluster DNS end to end: dnsperf (Debian) against nodeplane's answer path and, in the same run
on the same machine, against unbound (Debian) serving the same zone (perf/RESULTS.md records
the figures; never a test).

  nodeplane  dnsperf in a pod -> the kube-dns ClusterIP -> answered by the worker
  unbound    dnsperf in a namespace -> unbound over a veth, the same names as local-data

On 2 vCPUs the generator saturates first, so besides the rates the server's CPU per answer is
compared: for unbound its process CPU time (utime + stime), for nodeplane its worker's busy
cycles (loop iterations that received packets) over the TSC rate. Answers per core-second =
answers / that CPU time.

Run as root from the repository (after `make`): /usr/bin/python3 perf/dns_bench.py
[--seconds N] [--services N] [--clients N]
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nplab import Lab, unbound  # noqa: E402
from nplab.lab import run  # noqa: E402

DNS_IP = "10.96.0.10"


def names(count):
    """(name, ClusterIP) of the benchmark's services: s<i>.ns<i % 20>.svc.cluster.local."""
    return [(f"s{i}.ns{i % 20}.svc.cluster.local", f"10.96.{1 + i // 250}.{1 + i % 250}")
            for i in range(count)]


def dnsperf(netns, server, query_file, seconds, clients):
    r = run(["ip", "netns", "exec", netns, "dnsperf", "-s", server, "-d", str(query_file),
             "-l", str(seconds), "-c", str(clients), "-q", "500", "-t", "2"],
            timeout=seconds + 60)
    out = r.stdout
    completed = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
    noerror = re.search(r"NOERROR (\d+)", out)
    latency = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    return {"completed": completed, "qps": qps, "lost": lost,
            "noerror": int(noerror.group(1)) if noerror else 0,
            "latency_ms": float(latency.group(1)) * 1000 if latency else 0.0}


def proc_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_unbound(lab, services, query_file, seconds, clients):
    server = lab.add_netns("ub")
    client = lab.add_netns("ubc")
    run(["ip", "link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "eth0",
         "netns", server])
    for ns, ip in ((server, "10.98.0.1/24"), (client, "10.98.0.2/24")):
        run(["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    d = lab.tmp / "unbound-bench"
    d.mkdir()
    conf = unbound.config(d, "10.98.0.1", [f"{n}. 5 IN A {ip}" for n, ip in services])
    # The zone is cluster.local (static): names it does not hold are NXDOMAIN, as ours.
    text = conf.read_text()
    text = re.sub(r'  local-zone: "[^"]+" static\n', '  local-zone: "cluster.local." static\n',
                  text)
    conf.write_text(text)
    proc = lab.popen(["ip", "netns", "exec", server] + unbound.command(conf))
    time.sleep(1.0)
    pid = proc.pid  # `ip netns exec` execs unbound in place: the launcher's PID is unbound's
    cpu0 = proc_cpu_seconds(pid)
    r = dnsperf(client, "10.98.0.1", query_file, seconds, clients)
    r["cpu_s"] = proc_cpu_seconds(pid) - cpu0
    return r


def bench_nodeplane(lab, services, query_file, seconds, clients):
    node = lab.node("node-dnsb", "192.168.50.10/24", "10.244.1.0/24",
                    cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                    extra_args=["--idle-sleep-us", "0"])
    client = lab.add_pod(node, "bench", "dnsperf")
    svcs = [{"namespace": "kube-system", "name": "kube-dns", "clusterIPs": [DNS_IP],
             "ports": [{"name": "dns", "protocol": "UDP", "port": 53}], "endpoints": []}]
    for n, ip in services:
        name, ns = n.split(".")[:2]
        svcs.append({"namespace": ns, "name": name, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": 80}], "endpoints": []})
    node.call("apply", {"services": svcs})
    before = node.call("workers")["workers"]
    t0 = time.monotonic()
    r = dnsperf(client.netns, DNS_IP, query_file, seconds, clients)
    wall = time.monotonic() - t0
    after = node.call("workers")["workers"]
    busy = sum(a["counters"]["busy_cycles"] - b["counters"]["busy_cycles"]
               for a, b in zip(after, before))
    total = sum(a["counters"]["busy_cycles"] + a["counters"]["idle_cycles"]
                - b["counters"]["busy_cycles"] - b["counters"]["idle_cycles"]
                for a, b in zip(after, before))
    answered = sum(a["counters"]["dns_answers_a"] - b["counters"]["dns_answers_a"]
                   for a, b in zip(after, before))
    tsc_hz = total / wall  # the worker polls without sleeping: its cycles are wall-clock time
    r["cpu_s"] = busy / tsc_hz
    r["answered_by_worker"] = answered
    r["tsc_mhz"] = tsc_hz / 1e6
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    services = names(args.services)
    print(f"nodeplane dns_bench.py: dnsperf {args.seconds} s, {args.services} service names "
          f"(A queries, round robin), {args.clients} dnsperf clients", flush=True)
    results = {}
    with Lab("db") as lab:
        qf = lab.tmp / "queries.txt"
        qf.write_text("".join(f"{n} A\n" for n, _ in services))
        results["unbound"] = bench_unbound(lab, services, qf, args.seconds, args.clients)
        results["nodeplane"] = bench_nodeplane(lab, services, qf, args.seconds, args.clients)
    print(f"{'server':12s} {'answers/s':>10s} {'lost':>6s} {'NOERROR':>9s} {'avg ms':>7s} "
          f"{'server CPU s':>12s} {'answers/core-s':>15s}")
    per_core = {}
    for k, r in results.items():
        per_core[k] = r["noerror"] / r["cpu_s"] if r["cpu_s"] > 0 else float("inf")
        print(f"{k:12s} {r['qps']:10.0f} {r['lost']:6d} {r['noerror']:9d} {r['latency_ms']:7.3f} "
              f"{r['cpu_s']:12.3f} {per_core[k]:15.0f}")
    print(f"ratio nodeplane/unbound: answers/s {results['nodeplane']['qps'] / results['unbound']['qps']:.2f}x, "
          f"answers per core-second {per_core['nodeplane'] / per_core['unbound']:.1f}x "
          f"(nodeplane's worker answered {results['nodeplane']['answered_by_worker']} A queries; "
          f"TSC {results['nodeplane']['tsc_mhz']:.0f} MHz)")


if __name__ == "__main__":
    main()
