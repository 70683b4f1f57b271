#!/usr/bin/env python3
"""A minimal authoritative DNS server for the lab's cluster domain (stdlib only): answers A queries
for the names in a zone file (JSON: {"name.": "a.b.c.d"}), NXDOMAIN for other names in the zone's
domain, REFUSED for the rest. What the demo's kube-dns pod runs in place of CoreDNS.

  dns.py --zone zone.json [--port 53] [--domain cluster.local]
"""

import argparse
import json
import socket
import struct


def parse_question(data):
    qdcount = struct.unpack("!H", data[4:6])[0]
    if qdcount != 1:
        return None
    labels, i = [], 12
    while True:
        if i >= len(data):
            return None
        n = data[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 or i + 1 + n > len(data):
            return None
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 4 > len(data):
        return None
    qtype, qclass = struct.unpack("!HH", data[i:i + 4])
    return ".".join(labels) + ".", qtype, qclass, data[12:i + 4]


def answer(data, zone, domain):
    q = parse_question(data)
    if q is None:
        return None
    name, qtype, qclass, question = q
    txid, flags = struct.unpack("!HH", data[:4])
    rd = flags & 0x0100
    header = lambda rcode, ancount: struct.pack("!HHHHHH", txid, 0x8400 | rd | rcode, 1, ancount,
                                                0, 0)
    if not name.endswith(domain):
        return header(5, 0) + question  # REFUSED: not our zone
    address = zone.get(name)
    if address is None:
        return header(3, 0) + question  # NXDOMAIN
    if qtype != 1:
        return header(0, 0) + question  # the name exists, no record of that type
    rr = struct.pack("!HHHLH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(address)
    return header(0, 1) + question + rr


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--zone", required=True)
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--domain", default="cluster.local")
    args = p.parse_args()
    with open(args.zone) as f:
        zone = {k.lower(): v for k, v in json.load(f).items()}
    domain = args.domain.rstrip(".") + "."
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", args.port))
    while True:
        data, peer = s.recvfrom(4096)
        reply = answer(data, zone, domain)
        if reply:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
