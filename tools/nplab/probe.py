#!/usr/bin/env python3
"""probe.py: traffic endpoints run inside pod network namespaces (stdlib only).

  probe.py serve [--tcp PORT]... [--udp PORT]... [--http PORT]... [--name NAME]
      TCP/UDP echo servers; HTTP servers answering "<name>\n" to any GET.
  probe.py tcp HOST PORT [--bytes N] [--timeout S]   connect, send, expect the echo back
  probe.py udp HOST PORT [--timeout S]                send a datagram, expect the echo back
  probe.py matrix NAME=HOST:PORT/PROTO... [--timeout S] probe all at once; print {NAME: bool}
Exit 0 on success; on failure, exit 1 and print why.
"""

import argparse
import http.server
import os
import socket
import socketserver
import sys
import threading


def serve(args):
    name = args.name or socket.gethostname()

    class TcpEcho(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)

    class UdpEcho(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            if data == b"whoami":
                data = f"{name} {self.client_address[0]}".encode()
            sock.sendto(data, self.client_address)

    class Http(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            # "/whoami": the server's name and the client address it sees (source-IP checks).
            who = f"{name} {self.client_address[0]}" if self.path == "/whoami" else name
            body = f"{who}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class ThreadedTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
        allow_reuse_address = True
        daemon_threads = True

    class ThreadedUdp(socketserver.ThreadingMixIn, socketserver.UDPServer):
        allow_reuse_address = True
        daemon_threads = True

    class ThreadedHttp(socketserver.ThreadingMixIn, http.server.HTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    servers = [ThreadedTcp(("0.0.0.0", p), TcpEcho) for p in args.tcp]
    servers += [ThreadedUdp(("0.0.0.0", p), UdpEcho) for p in args.udp]
    servers += [ThreadedHttp(("0.0.0.0", p), Http) for p in args.http]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def tcp(args):
    payload = os.urandom(args.bytes)
    with socket.create_connection((args.host, args.port), timeout=args.timeout) as s:
        s.settimeout(args.timeout)
        received = bytearray()

        def reader():
            while len(received) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                received.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        t.join(args.timeout)
    if bytes(received) != payload:
        print(f"tcp echo mismatch: sent {len(payload)}, got {len(received)}")
        return 1
    return 0


def udp(args):
    payload = b"whoami" if args.whoami else os.urandom(args.size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if args.sport:
            s.bind(("0.0.0.0", args.sport))
        s.settimeout(args.timeout)
        s.connect((args.host, args.port))  # connected: ICMP port-unreachable is reported
        for _ in range(3):
            s.send(payload)
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                print("refused")
                return 0 if args.expect_refused else 1
            if args.whoami:
                print(data.decode())
                return 0
            if data == payload:
                return 0 if not args.expect_refused else 1
    print("udp: no reply")
    return 1


def matrix(args):
    """Probes every target concurrently (one row of a reachability matrix): TCP connects and
    expects its bytes echoed, UDP expects the datagram echoed. Prints a JSON object."""
    import json

    results = {}

    def one(name, host, port, proto):
        ok = False
        try:
            if proto == "tcp":
                with socket.create_connection((host, port), timeout=args.timeout) as s:
                    s.settimeout(args.timeout)
                    s.sendall(b"probe")
                    ok = s.recv(16) == b"probe"
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(args.timeout / 2)
                    s.connect((host, port))
                    for _ in range(2):
                        s.send(b"probe")
                        try:
                            if s.recv(16) == b"probe":
                                ok = True
                                break
                        except socket.timeout:
                            continue
        except OSError:
            ok = False
        results[name] = ok

    threads = []
    for target in args.targets:
        name, rest = target.split("=", 1)
        hostport, proto = rest.rsplit("/", 1)
        host, port = hostport.rsplit(":", 1)
        t = threading.Thread(target=one, args=(name, host, int(port), proto))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print(json.dumps(results))
    return 0


def udp_pmtu(args):
    """Sends --count datagrams of --size bytes with DF (IP_PMTUDISC_DO) to a UDP echo server,
    shrinking to the discovered path MTU when the kernel reports EMSGSIZE; prints the MTU used."""
    import errno
    IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
    size = args.size
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        s.connect((args.host, args.port))
        s.settimeout(0.5)
        echoed, attempts = 0, 0
        while echoed < args.count and attempts < args.count * 20:
            attempts += 1
            payload = os.urandom(size)
            try:
                s.send(payload)
            except OSError as e:
                if e.errno != errno.EMSGSIZE:
                    raise
                size = s.getsockopt(socket.IPPROTO_IP, IP_MTU) - 28
                continue
            try:
                if s.recv(65536) == payload:
                    echoed += 1
            except socket.timeout:
                pass  # the ICMP frag-needed arrived instead; the next send learns the MTU
            except OSError as e:  # the kernel reports the ICMP on the socket itself
                if e.errno != errno.EMSGSIZE:
                    raise
                size = s.getsockopt(socket.IPPROTO_IP, IP_MTU) - 28
        mtu = s.getsockopt(socket.IPPROTO_IP, IP_MTU)
    print(f"path_mtu={mtu} size={size} echoed={echoed}")
    return 0 if echoed >= args.count else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--tcp", type=int, action="append", default=[])
    s.add_argument("--udp", type=int, action="append", default=[])
    s.add_argument("--http", type=int, action="append", default=[])
    s.add_argument("--name")
    t = sub.add_parser("tcp")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--bytes", type=int, default=1000)
    t.add_argument("--timeout", type=float, default=5)
    u = sub.add_parser("udp")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("--timeout", type=float, default=2)
    u.add_argument("--sport", type=int, default=0, help="fixed source port (one flow across runs)")
    u.add_argument("--size", type=int, default=64, help="datagram payload bytes")
    u.add_argument("--whoami", action="store_true", help="print which server answered")
    u.add_argument("--expect-refused", action="store_true",
                   help="succeed on ICMP port-unreachable (connection refused)")
    x = sub.add_parser("matrix")
    x.add_argument("targets", nargs="+")
    x.add_argument("--timeout", type=float, default=1.0)
    m = sub.add_parser("udp-pmtu")
    m.add_argument("host")
    m.add_argument("port", type=int)
    m.add_argument("--size", type=int, default=1472)
    m.add_argument("--count", type=int, default=20)
    args = p.parse_args()
    try:
        return {"serve": serve, "tcp": tcp, "udp": udp, "udp-pmtu": udp_pmtu,
                "matrix": matrix}[args.cmd](args) or 0
    except OSError as e:
        print(f"{args.cmd}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
