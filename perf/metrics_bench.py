#!/usr/bin/python3
"""What watching the data plane costs it: a node forwarding 64-byte UDP between two pods
(iperf3, two senders), its worker's cycles per packet with /metrics scraped once a second (and,
to make any effect visible, ten times a second) against no scrape at all, alternated in one run
(perf/RESULTS.md records the figures; never a test).

Cycles per packet = the worker's busy cycles / packets it received, over the run.

Run as root from the repository (after `make`): /usr/bin/python3 perf/metrics_bench.py
[--seconds N] [--rounds N]
"""

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from nplab import Lab  # noqa: E402


def worker_totals(d):
    w = [x for x in d.call("workers")["workers"] if not x["control"]]
    return (sum(x["counters"]["busy_cycles"] for x in w),
            sum(x["counters"]["rx_packets"] for x in w))


def run_case(d, sender_nss, server_ns, server_ip, seconds, scrape_hz):
    address = d.call("status")["metrics"]
    stop = threading.Event()
    scrapes = [0]

    def scraper():
        while not stop.wait(1.0 / scrape_hz):
            d.exec(["curl", "-sS", "-o", "/dev/null", f"http://{address}/metrics"], check=False)
            scrapes[0] += 1

    servers = [subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p",
                                 str(5400 + i)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for i in range(len(sender_nss))]
    time.sleep(0.5)
    busy0, rx0 = worker_totals(d)
    t = threading.Thread(target=scraper) if scrape_hz else None
    if t:
        t.start()
    senders = [subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-c", server_ip, "-p",
                                 str(5400 + i), "-u", "-b", "0", "-l", "64", "-t", str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i, ns in enumerate(sender_nss)]
    for s in senders:
        s.wait(timeout=seconds + 30)
    stop.set()
    if t:
        t.join()
    busy1, rx1 = worker_totals(d)
    for s in servers:
        s.wait(timeout=10)
    return (busy1 - busy0) / max(1, rx1 - rx0), rx1 - rx0, scrapes[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"nodeplane metrics_bench.py: 64-byte UDP pod to pod, {args.seconds} s per case, "
          f"{args.rounds} rounds alternated", flush=True)
    results = {0: [], 1: [], 10: []}
    with Lab("mb") as lab:
        d = lab.node("node-mb", "192.168.50.10/24", "10.244.1.0/24",
                     cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                     extra_args=["--idle-sleep-us", "0"])
        a = lab.add_pod(d, "bench", "a")
        b = lab.add_pod(d, "bench", "b")
        c = lab.add_pod(d, "bench", "c")
        d.call("apply", {"generation": 1, "services": []})
        for _ in range(args.rounds):
            for hz in (0, 1, 10):
                cpp, packets, scrapes = run_case(d, [a.netns, c.netns], b.netns, b.ip,
                                                 args.seconds, hz)
                results[hz].append(cpp)
                print(f"  scrapes/s {hz:2d}: {cpp:8.1f} cycles/packet ({packets} packets, "
                      f"{scrapes} scrapes)", flush=True)
    base = statistics.median(results[0])
    for hz in (0, 1, 10):
        m = statistics.median(results[hz])
        print(f"median, {hz:2d} scrapes/s: {m:8.1f} cycles/packet ({(m / base - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
