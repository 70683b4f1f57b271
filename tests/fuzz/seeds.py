#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/): valid inputs of every
kind each target reads, from which libFuzzer mutates. Run again after changing it; the files are
committed so that `make fuzz-smoke` replays exactly these.
"""
import json
import pathlib
import struct

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw  # noqa: E402
from scapy.layers.dns import DNS, DNSQR  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
ROOT = HERE.parent.parent

UPLINK_MAC = "02:fe:00:00:00:00"   # fake port 0
HOST_PORT_MAC = "02:fe:00:00:00:01"    # fake port 1: the host path (selector 3)
CLIENT_PORT_MAC = "02:fe:00:00:00:02"  # fake port 2 (selector 1)
SERVER_PORT_MAC = "02:fe:00:00:00:03"  # fake port 3 (selector 2)
KERNEL_MAC = "0a:00:00:00:00:99"
CLIENT_MAC, SERVER_MAC = "0a:00:00:00:00:0a", "0a:00:00:00:00:0b"
OUR_VTEP = "0e:4e:c0:a8:32:0a"
PEER_VTEP = "0e:4e:c0:a8:32:0b"
PEER_MAC = "52:54:00:00:00:0b"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def burst(port, frames, headroom=True, vnet=None):
    """`vnet`: a virtio-net header (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)
    in front of every frame, as a pod port reads them."""
    out = bytes([port | (4 if headroom else 0) | (8 if vnet else 0)])
    for f in frames:
        b = (struct.pack("<BBHHHH", *vnet) if vnet else b"") + bytes(f)
        out += struct.pack("<H", len(b)) + b
    return out


def packet_path():
    def c(dst):  # from the client pod (port 1)
        return Ether(dst=CLIENT_PORT_MAC, src=CLIENT_MAC) / IP(src="10.244.1.2", dst=dst)

    def s(dst):  # from the server pod (port 2)
        return Ether(dst=SERVER_PORT_MAC, src=SERVER_MAC) / IP(src="10.244.1.3", dst=dst)

    u = Ether(dst=UPLINK_MAC, src=PEER_MAC)
    seeds = {
        "pod-to-pod-udp": burst(1, [c("10.244.1.3") / UDP(sport=4000, dport=7) / Raw(b"x" * 16)]),
        "pod-to-service-syn": burst(1, [c("10.96.0.10") / TCP(sport=40000, dport=80, flags="S")]),
        "pod-to-service-udp-burst": burst(1, [c("10.96.0.53") / UDP(sport=5000, dport=80) /
                                              Raw(b"q")] * 8),
        "hairpin": burst(1, [Ether(dst=CLIENT_PORT_MAC, src=CLIENT_MAC) /
                             IP(src="10.244.1.2", dst="10.96.0.77") / TCP(dport=80, flags="S")]),
        "l7-get": burst(1, [c("10.244.1.3") / TCP(sport=40001, dport=8080, flags="S", seq=0),
                            c("10.244.1.3") / TCP(sport=40001, dport=8080, flags="PA", seq=1) /
                            Raw(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")], headroom=False),
        "to-remote-pod": burst(1, [c("10.244.2.5") / UDP(sport=1, dport=2)]),
        "out-of-cluster": burst(1, [c("8.8.8.8") / UDP(sport=1, dport=53)]),
        "dns-udp": burst(1, [c("10.96.0.254") / UDP(sport=5353, dport=53) /
                             DNS(rd=1, qd=DNSQR(qname="web.shop.svc.cluster.local")),
                             c("10.96.0.254") / UDP(sport=5354, dport=53) /
                             DNS(rd=1, qd=DNSQR(qname="example.com", qtype="AAAA"))]),
        "dns-tcp": burst(1, [c("10.96.0.254") / TCP(sport=40053, dport=53, flags="S", seq=9),
                             c("10.96.0.254") / TCP(sport=40053, dport=53, flags="PA", seq=10,
                                                    ack=1) /
                             Raw(struct.pack("!H", 44) +
                                 bytes(DNS(rd=1, qd=DNSQR(qname="web.shop.svc.cluster.local")))),
                             c("10.96.0.254") / TCP(sport=40053, dport=53, flags="FA", seq=56,
                                                    ack=2)]),
        "server-reply": burst(2, [s("10.244.1.2") / TCP(sport=8080, dport=40000, flags="SA")]),
        "arp-gateway": burst(1, [Ether(dst="ff:ff:ff:ff:ff:ff", src=CLIENT_MAC) /
                                 ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.244.1.2",
                                     pdst="169.254.1.1")]),
        "ping-gateway": burst(1, [Ether(dst=CLIENT_PORT_MAC, src=CLIENT_MAC) /
                                  IP(src="10.244.1.2", dst="169.254.1.1") / ICMP()]),
        "fragments": burst(1, [Ether(dst=CLIENT_PORT_MAC, src=CLIENT_MAC) /
                               IP(src="10.244.1.2", dst="10.244.1.3", flags="MF") /
                               UDP(sport=1, dport=2) / Raw(b"a" * 24),
                               Ether(dst=CLIENT_PORT_MAC, src=CLIENT_MAC) /
                               IP(src="10.244.1.2", dst="10.244.1.3", frag=4) / Raw(b"b" * 8)]),
        "uplink-vxlan": burst(0, [u / IP(src="192.168.50.11", dst="192.168.50.10") /
                                  UDP(sport=50000, dport=4789) / VXLAN(vni=1) /
                                  Ether(dst=OUR_VTEP, src=PEER_VTEP) /
                                  IP(src="10.244.2.5", dst="10.244.1.3") / TCP(dport=8080)]),
        "uplink-nodeport": burst(0, [u / IP(src="192.168.60.9", dst="192.168.50.10") /
                                     TCP(sport=33000, dport=30080, flags="S")]),
        "uplink-external-ip": burst(0, [u / IP(src="192.168.60.9", dst="192.168.50.200") /
                                        TCP(sport=33001, dport=80, flags="S")]),
        "uplink-arp": burst(0, [Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) /
                                ARP(op=1, hwsrc=PEER_MAC, psrc="192.168.50.11",
                                    pdst="192.168.50.10")]),
        "pod-tso-to-remote": burst(1, [c("10.244.2.5") / TCP(sport=40002, dport=80, flags="A") /
                                       Raw(b"t" * 1800)], vnet=(1, 1, 54, 600, 34, 16)),
        "pod-tso-to-service": burst(1, [c("10.96.0.10") / TCP(sport=40003, dport=80, flags="A") /
                                        Raw(b"s" * 1500)], vnet=(1, 1, 54, 500, 34, 16)),
        "pod-partial-udp": burst(1, [c("10.96.0.53") / UDP(sport=5001, dport=80) / Raw(b"u")],
                                 vnet=(1, 0, 0, 0, 34, 6)),
        "uplink-tcp-run": burst(0, [u / IP(src="192.168.50.11", dst="192.168.50.10") /
                                    UDP(sport=50001, dport=4789) / VXLAN(vni=1) /
                                    Ether(dst=OUR_VTEP, src=PEER_VTEP) /
                                    IP(src="10.244.2.5", dst="10.244.1.3", flags="DF") /
                                    TCP(sport=8080, dport=40000, flags="A", seq=1 + i * 100) /
                                    Raw(b"r" * 100) for i in range(4)]),
        "uplink-icmp-error": burst(0, [u / IP(src="192.168.60.1", dst="192.168.50.10") /
                                       ICMP(type=3, code=4) /
                                       IP(src="192.168.50.10", dst="192.168.60.9") /
                                       TCP(sport=30080, dport=33000)]),
        # The host path (selector 3): the node's kernel to a pod, a ClusterIP, its ARP for the
        # gateway; a pod to the node address.
        "host-to-pod": burst(3, [Ether(dst=HOST_PORT_MAC, src=KERNEL_MAC) /
                                 IP(src="192.168.50.10", dst="10.244.1.3") /
                                 TCP(sport=41000, dport=8080, flags="S")]),
        "host-to-service": burst(3, [Ether(dst=HOST_PORT_MAC, src=KERNEL_MAC) /
                                     IP(src="192.168.50.10", dst="10.96.0.10") /
                                     TCP(sport=41001, dport=80, flags="S")]),
        "host-arp": burst(3, [Ether(dst="ff:ff:ff:ff:ff:ff", src=KERNEL_MAC) /
                              ARP(op=1, hwsrc=KERNEL_MAC, psrc="192.168.50.10",
                                  pdst="169.254.1.1")]),
        "pod-to-node": burst(1, [c("192.168.50.10") / TCP(sport=40010, dport=6443, flags="S")]),
    }
    for name, data in seeds.items():
        write("packet_path", name, data)


def control_line():
    def line(op, args=None, id_=1):
        req = {"v": 1, "id": id_, "op": op}
        if args is not None:
            req["args"] = args
        return json.dumps(req)
    apply_args = {
        "generation": 3,
        "nodes": [{"name": "node-cpu", "ip": "192.168.50.10", "podCidrs": ["10.244.1.0/24"]},
                  {"name": "node-gpu", "ip": "192.168.50.11", "podCidrs": ["10.244.2.0/24"]}],
        "services": [{"namespace": "shop", "name": "web", "type": "NodePort",
                      "clusterIPs": ["10.96.0.10"],
                      "ports": [{"name": "http", "protocol": "TCP", "port": 80,
                                 "targetPort": 8080, "nodePort": 30080}],
                      "endpoints": [{"ip": "10.244.2.5", "nodeName": "node-gpu"}]}],
        "policy": {"namespaces": [{"name": "shop"}],
                   "pods": [{"namespace": "shop", "name": "a", "ip": "10.244.1.5",
                             "labels": {"app": "a"}}],
                   "networkPolicies": [{"metadata": {"namespace": "shop", "name": "p"},
                                        "spec": {"podSelector": {}}}]},
    }
    seeds = {
        "status": line("status"),
        "apply": line("apply", apply_args),
        "pod-attach": line("pod.attach", {"namespace": "shop", "name": "c1", "containerId": "abc",
                                          "hostInterface": "veth1", "ip": "10.244.1.2",
                                          "mac": "0a:00:00:00:00:01"}),
        "service-set": line("service.set", apply_args["services"][0]),
        "endpoints": line("service.endpoints", {"namespace": "shop", "name": "web",
                                                "endpoints": [{"ip": "10.244.1.9"}]}),
        "node-set": line("node.set", apply_args["nodes"][1]),
        "policy-apply": line("policy.apply", apply_args["policy"]),
        "flows": line("flows", {"service": "shop/web"}),
        "trace": line("trace", {"from": "shop/c1", "dst": "10.96.0.10", "dport": 80}),
        "drops": line("drops", {"all": True}),
        "conntrack": line("conntrack"),
        "observe": line("observe", {"after": 3, "limit": 50, "pod": "shop/c1", "verdict": "dropped",
                                    "port": 80, "protocol": "tcp", "interface": "uplink"}),
        "capture-start": line("capture.start", {"port": "shop/c1", "filter": "tcp port 80",
                                                "snaplen": 128, "direction": "rx"}),
        "capture-read": line("capture.read", {"session": 1}),
        "cluster-peer": line("cluster.peer.set", {"clusterId": "west", "gatewayIp": "192.168.50.20",
                                                  "cidrs": ["10.245.0.0/16"],
                                                  "secret": "sixteen bytes at least"}),
        "capture-stop": line("capture.stop", {"session": 1}),
        "cluster-peer-global": line("cluster.peer.set", {
            "clusterId": "west", "gatewayIps": ["192.168.50.20", "192.168.50.21"],
            "globalCidr": "242.1.0.0/24", "secret": "sixteen bytes at least"}),
        "cluster-gateways": line("cluster.gateways.set", {"nodes": ["node-cpu", "node-gpu"]}),
        "cluster-export": line("cluster.export.set", {"namespace": "shop", "name": "web",
                                                      "globalIp": "242.0.0.9"}),
        "cluster-unexport": line("cluster.export.delete", {"namespace": "shop", "name": "web"}),
        "cluster-exports": line("cluster.exports"),
        "cluster-imports": line("cluster.imports"),
        "cluster-peers": line("cluster.peers"),
        "apply-exports": line("apply", {"exports": [{"namespace": "shop", "name": "web"}]}),
    }
    for name, data in seeds.items():
        write("control_line", name, data)


def apply_reader():
    for f in sorted((CORPUS / "control_line").glob("*")):
        req = json.loads(f.read_text())
        if "args" in req:
            write("apply_reader", f.name, json.dumps(req["args"]))


def manifests():
    for f in list((ROOT / "tests/fixtures/k8s").glob("*.yaml")) + \
            list((ROOT / "configs/demo-cluster").glob("*.yaml")):
        write("manifests", f.parent.name + "-" + f.name, f.read_bytes())
    write("manifests", "json-list", json.dumps(
        {"kind": "List", "items": [{"kind": "Namespace", "metadata": {"name": "a"}}]}))


def cni():
    conf = {"cniVersion": "1.0.0", "name": "nodeplane", "type": "nodeplane-cni", "mtu": 1450,
            "gateway": "169.254.1.1", "ipam": {"type": "host-local",
                                               "ranges": [[{"subnet": "10.244.1.0/24"}]]}}
    env = "ctr-0123\neth0\nIgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1\n"
    write("cni", "add", env + "A\n" + json.dumps(conf))
    write("cni", "version", env + "B\n")
    write("cni", "check-0.4", env + "A\n" + json.dumps({**conf, "cniVersion": "0.4.0"}))


def dns():
    from scapy.layers.dns import DNS, DNSQR, DNSRROPT
    queries = {
        "a": ("web.backend.svc.cluster.local", "A"),
        "a-case": ("WeB.Backend.svc.Cluster.Local", "A"),
        "aaaa": ("web.backend.svc.cluster.local", "AAAA"),
        "srv": ("_http._tcp.web.backend.svc.cluster.local", "SRV"),
        "srv-headless": ("_pg._tcp.db.backend.svc.cluster.local", "SRV"),
        "headless": ("db.backend.svc.cluster.local", "A"),
        "hostname": ("db-0.db.backend.svc.cluster.local", "A"),
        "ptr": ("30.0.96.10.in-addr.arpa", "PTR"),
        "cname": ("ext.backend.svc.cluster.local", "A"),
        "txt": ("dns-version.cluster.local", "TXT"),
        "pod": ("10-1-2-3.backend.pod.cluster.local", "A"),
        "nx": ("nope.backend.svc.cluster.local", "A"),
        "soa": ("cluster.local", "SOA"),
        "any": ("web.backend.svc.cluster.local", "ANY"),
        "outside": ("example.com", "A"),
    }
    for name, (qname, qtype) in queries.items():
        write("dns", name, bytes(DNS(id=7, rd=1, qd=DNSQR(qname=qname, qtype=qtype))))
        write("dns", name + "-edns", bytes(DNS(id=7, rd=1, qd=DNSQR(qname=qname, qtype=qtype),
                                               ar=DNSRROPT(rclass=1232))))
    # A pointer in the question (backwards into the header: invalid) and a self loop.
    head = bytes(DNS(id=7, rd=1, qd=DNSQR(qname="web", qtype="A")))[:12]
    write("dns", "pointer-header", head + b"\x03web\xc0\x02\x00\x01\x00\x01")
    write("dns", "pointer-loop", head + b"\x03web\xc0\x0c\x00\x01\x00\x01")


def heartbeat():
    def hb(cluster, seq, active):
        return (b"NPHB" + bytes([1, 1 if active else 0, len(cluster), 0]) +
                struct.pack("!I", seq) + cluster.encode())
    write("heartbeat", "active", hb("east", 1, True))
    write("heartbeat", "standby", hb("west-2", 0xffffffff, False))
    write("heartbeat", "long-id", hb("c" * 63, 7, False))
    write("heartbeat", "short", hb("east", 1, True)[:11])

    def export(cluster, ns, name, address, ports, endpoints=None):
        flags = 2 if endpoints is not None else 0  # headless: its endpoints instead of an address
        out = (b"NPEX" + bytes([1, flags, len(cluster), len(ns), len(name), len(ports), 0, 0]) +
               bytes(map(int, address.split("."))) + (cluster + ns + name).encode())
        for proto, port, pname in ports:
            out += bytes([proto]) + struct.pack("!H", port) + bytes([len(pname)]) + pname.encode()
        if endpoints is not None:
            out += bytes([len(endpoints)])
            for ip, host in endpoints:
                out += bytes(map(int, ip.split("."))) + bytes([len(host)]) + host.encode()
        return out
    write("heartbeat", "export", export("west", "shop", "web", "242.1.0.2",
                                        [(6, 80, "http"), (17, 7001, "")]))
    write("heartbeat", "export-one", export("east", "kube-system", "dns", "10.96.0.10",
                                            [(17, 53, "dns")]))
    write("heartbeat", "export-headless", export("west", "shop", "db", "0.0.0.0", [(6, 5432, "pg")],
                                                 [("242.1.0.254", "db-0"), ("242.1.0.253", "")]))


if __name__ == "__main__":
    packet_path()
    control_line()
    apply_reader()
    manifests()
    cni()
    dns()
    heartbeat()
