"""Lab: network namespaces, nodeplane daemons and CNI-attached pods, cleaned up on every exit."""

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """The meson build directory holding the binaries (NODEPLANE_BUILD_DIR or ./build)."""
    return Path(os.environ.get("NODEPLANE_BUILD_DIR", REPO / "build")).resolve()


def no_checksum_offload(netns, ifname):
    """A kernel host in the lab sends over veth: nothing would finish the checksums it leaves to
    "hardware", and nodeplane (like any device on a real wire) expects complete ones."""
    run(["ip", "netns", "exec", netns, "ethtool", "-K", ifname, "tx", "off"], check=False)


def require_root():
    if os.geteuid() != 0:
        raise PermissionError("network namespaces need root: run as root (sudo make test)")


def run(cmd, check=True, timeout=60, **kw):
    """Runs a command, returning CompletedProcess with text output."""
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@dataclass
class Pod:
    lab: "Lab"
    namespace: str         # Kubernetes namespace
    name: str              # pod name
    netns: str             # network namespace name
    container_id: str
    ip: str = ""
    mac: str = ""
    daemon: "Daemon" = None
    result: dict = field(default_factory=dict)

    def exec(self, cmd, check=True, timeout=60):
        return run(["ip", "netns", "exec", self.netns] + list(cmd), check=check, timeout=timeout)

    def popen(self, cmd, **kw):
        return self.lab.popen(["ip", "netns", "exec", self.netns] + list(cmd), **kw)

    def set_resolv_conf(self, namespace_search, nameserver):
        """The pod's /etc/resolv.conf as the kubelet writes it (ip netns exec bind-mounts
        /etc/netns/<netns>/resolv.conf over /etc/resolv.conf)."""
        d = Path("/etc/netns") / self.netns
        d.mkdir(parents=True, exist_ok=True)
        self.lab.files.append(d)
        (d / "resolv.conf").write_text(
            f"search {namespace_search}.svc.cluster.local svc.cluster.local cluster.local\n"
            f"nameserver {nameserver}\noptions ndots:5\n")

    def ping(self, address, count=2, timeout=2):
        r = self.exec(["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(timeout),
                       address], check=False, timeout=count * (timeout + 1) + 5)
        return r.returncode == 0

    def probe(self, *args, check=False, timeout=30):
        """Runs tools/nplab/probe.py inside the pod."""
        return self.exec(["/usr/bin/python3", str(REPO / "tools/nplab/probe.py")] + list(args),
                         check=check, timeout=timeout)

    def serve(self, tcp=(), udp=(), http=()):
        """Starts echo servers (and HTTP servers) inside the pod, in the background."""
        args = []
        for p in tcp:
            args += ["--tcp", str(p)]
        for p in udp:
            args += ["--udp", str(p)]
        for p in http:
            args += ["--http", str(p)]
        proc = self.popen(["/usr/bin/python3", str(REPO / "tools/nplab/probe.py"), "serve",
                           "--name", f"{self.namespace}/{self.name}"] + args)
        for p in list(tcp) + list(http):  # wait until listening
            deadline = time.time() + 10
            while time.time() < deadline:
                r = self.exec(["ss", "-Htln", f"sport = :{p}"], check=False)
                if r.stdout.strip():
                    break
                time.sleep(0.05)
        time.sleep(0.1)
        return proc


class Daemon:
    """One nodeplane daemon (one emulated node), started and stopped by PID."""

    def __init__(self, lab, node_name, node_ip, pod_cidr, extra_args=(), eal_args=(),
                 workers="1", cluster_cidr=None, service_cidr=None, netns=None, uplink=None):
        self.lab = lab
        self.node_name = node_name
        self.node_ip = node_ip.split("/")[0]
        self.pod_cidr = pod_cidr
        self.netns = netns  # the node's network namespace (None: the host's)
        self.socket = str(lab.tmp / f"{node_name}/control.sock")
        self.log_path = lab.tmp / f"{node_name}.log"
        self.ipam_dir = lab.tmp / f"{node_name}-ipam"
        args = [str(build_dir() / "daemon/nodeplane"),
                "--node-name", node_name, "--node-ip", node_ip, "--pod-cidr", pod_cidr,
                "--control-socket", self.socket, "--workers", workers,
                "--state-dir", str(lab.tmp / f"{node_name}"),
                "--log-level", "info"]
        # Defaults for a test daemon; the caller's extra_args may set any of them instead.
        # (--metrics-address port 0: daemons sharing a network namespace each get a free port;
        # status.metrics tells which.)
        for option, value in (("--idle-sleep-us", "100"), ("--mbufs", "8191"),
                              ("--conntrack-max", "32768"),
                              ("--metrics-address", "127.0.0.1:0")):
            if option not in extra_args:
                args += [option, value]
        if uplink:
            args += ["--uplink", uplink]
        if cluster_cidr:
            args += ["--cluster-cidr", cluster_cidr]
        if service_cidr:
            args += ["--service-cidr", service_cidr]
        args += list(extra_args)
        args += ["--", "--no-huge", "-m", "384", "--no-pci",
                 "--file-prefix", f"{lab.prefix}-{node_name}"] + list(eal_args)
        self.args = (["ip", "netns", "exec", netns] if netns else []) + args
        self.proc = None

    def start(self, timeout=20):
        self.log = open(self.log_path, "w")
        self.proc = self.lab.popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nodeplane {self.node_name} exited with "
                                   f"{self.proc.returncode}:\n{self.log_text()}")
            if os.path.exists(self.socket) and self.npctl("status", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"nodeplane {self.node_name} not ready:\n{self.log_text()}")

    def log_text(self):
        try:
            return self.log_path.read_text()[-6000:]
        except OSError:
            return ""

    def stop(self, timeout=15):
        """SIGTERM by PID, wait for a clean stop; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"nodeplane {self.node_name} did not stop on SIGTERM")

    def npctl(self, *args, check=True):
        return run([str(build_dir() / "control/npctl"), "--socket", self.socket] + list(args),
                   check=check)

    def call(self, op, args=None):
        """A control-protocol op; returns the result or raises with the daemon's error."""
        r = self.npctl("call", op, json.dumps(args or {}), check=False)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip())
        return json.loads(r.stdout)

    def drops(self):
        return {d["reason"]: d["packets"] for d in self.call("drops")["drops"]}

    def set_service(self, namespace, name, cluster_ip, ports, endpoints, **fields):
        """A Service with its endpoints, as the agent will push it. `ports`: dicts as in
        control/README.md; `endpoints`: (pod, node daemon) pairs or dicts."""
        eps = []
        for e in endpoints:
            if isinstance(e, dict):
                eps.append(e)
            else:
                pod = e
                eps.append({"ip": pod.ip, "nodeName": pod.daemon.node_name})
        args = {"namespace": namespace, "name": name, "clusterIPs": [cluster_ip] if cluster_ip else [],
                "ports": ports, "endpoints": eps}
        args.update(fields)
        return self.call("service.set", args)

    def set_node(self, other):
        """Tells this daemon where another node's pods are (what the agent will do)."""
        return self.call("node.set", {"name": other.node_name, "ip": other.node_ip,
                                      "podCidrs": [other.pod_cidr]})

    def exec(self, cmd, check=True, timeout=60):
        """Runs a command in the node's network namespace."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return run(prefix + list(cmd), check=check, timeout=timeout)

    def counters(self):
        total = {}
        for w in self.call("workers")["workers"]:
            for k, v in w["counters"].items():
                total[k] = total.get(k, 0) + v
        return total

    def cni_config(self, mtu=1450):
        return {
            "cniVersion": "1.0.0",
            "name": f"nodeplane-{self.node_name}",
            "type": "nodeplane-cni",
            "mtu": mtu,
            "controlSocket": self.socket,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_cidr}]],
                     "dataDir": str(self.ipam_dir)},
        }


class Lab:
    """Owns everything a test or the demo creates; close() removes it all."""

    _active = []

    def __init__(self, name="np"):
        require_root()
        self.prefix = f"{name}{os.getpid() % 100000}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"nplab-{self.prefix}-"))
        self.netns = []
        self.links = []
        self.procs = []
        self.daemons = []
        self.pods = []
        self.files = []  # directories to remove (e.g. /etc/netns/<netns>)
        self.closed = False
        Lab._active.append(self)
        if len(Lab._active) == 1:
            atexit.register(Lab._close_all)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, Lab._on_signal)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _close_all():
        for lab in list(Lab._active):
            lab.close()

    @staticmethod
    def _on_signal(signum, frame):
        Lab._close_all()
        raise SystemExit(128 + signum)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for pod in reversed(self.pods):
            try:
                self.cni(pod, "DEL", check=False)
            except Exception:
                pass
        for d in reversed(self.daemons):
            try:
                d.stop()
            except Exception:
                if d.proc and d.proc.poll() is None:
                    d.proc.kill()
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for link in self.links:
            run(["ip", "link", "del", link], check=False)
        for ns in reversed(self.netns):
            run(["ip", "netns", "pids", ns], check=False)
            run(["ip", "netns", "del", ns], check=False)
        for d in self.files:
            shutil.rmtree(d, ignore_errors=True)
        # DPDK's runtime directory of each daemon (a daemon killed on purpose leaves its own).
        for d in self.daemons:
            shutil.rmtree(f"/var/run/dpdk/{self.prefix}-{d.node_name}", ignore_errors=True)
        if os.environ.get("NPLAB_KEEP_TMP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self in Lab._active:
            Lab._active.remove(self)

    # --- resources -------------------------------------------------------------------------
    def popen(self, cmd, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    @contextlib.contextmanager
    def capturing(self, netns, pcap, expression="ip", iface="ul0"):
        """tcpdump on `iface` of `netns` into `pcap` for the duration of the block (started once
        it has written the file header; stopped a moment after the block, to catch the last
        packets)."""
        log = open(str(pcap) + ".log", "w")
        cap = self.popen(["ip", "netns", "exec", netns, "tcpdump", "--immediate-mode", "-U", "-n",
                          "-i", iface, "-w", str(pcap), expression], stderr=log)
        deadline = time.time() + 10
        while time.time() < deadline and not (pcap.exists() and pcap.stat().st_size >= 24):
            time.sleep(0.05)
        time.sleep(0.2)
        try:
            yield cap
        finally:
            time.sleep(0.3)
            cap.terminate()
            cap.wait(timeout=10)

    @staticmethod
    def pcap_lines(pcap):
        """What tcpdump prints of a capture, one line per packet."""
        return subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], capture_output=True,
                              text=True).stdout.splitlines()

    def add_netns(self, short):
        name = f"{self.prefix}-{short}"
        run(["ip", "netns", "add", name])
        self.netns.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def daemon(self, *args, **kw):
        d = Daemon(self, *args, **kw)
        self.daemons.append(d)
        return d.start()

    def underlay(self):
        """The lab's underlay: a Linux bridge in its own namespace (made on first use)."""
        if getattr(self, "_underlay", None):
            return self._underlay
        ns = self.add_netns("underlay")
        run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])
        self._underlay = ns
        self._underlay_ports = 0
        return ns

    def add_node_netns(self, short, address=None):
        """A node's network namespace with `ul0` plugged into the underlay bridge. `address`
        (a.b.c.d/len) is configured on ul0 only for kernel nodes; nodeplane owns its own."""
        underlay = self.underlay()
        ns = self.add_netns(short)
        self._underlay_ports += 1
        peer = f"ulp{self._underlay_ports}"
        run(["ip", "link", "add", "ul0", "netns", ns, "type", "veth", "peer", "name", peer,
             "netns", underlay])
        run(["ip", "-n", underlay, "link", "set", peer, "master", "br0", "up"])
        run(["ip", "-n", ns, "link", "set", "ul0", "up"])
        if address:
            run(["ip", "-n", ns, "addr", "add", address, "dev", "ul0"])
            no_checksum_offload(ns, "ul0")
        return ns

    def router(self, underlay_ip="192.168.50.1/24", outside_ip="203.0.113.1/24",
               host_ip="203.0.113.10/24"):
        """The underlay's gateway: a router namespace on the underlay with a second link to an
        "outside" host namespace (the world beyond the cluster). Returns the outside host's
        namespace."""
        r = self.add_node_netns("router", underlay_ip)
        outside = self.add_netns("outside")
        run(["ip", "link", "add", "wan0", "netns", r, "type", "veth", "peer", "name", "eth0",
             "netns", outside])
        run(["ip", "-n", r, "addr", "add", outside_ip, "dev", "wan0"])
        run(["ip", "-n", r, "link", "set", "wan0", "up"])
        no_checksum_offload(r, "wan0")
        no_checksum_offload(outside, "eth0")
        run(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "-n", outside, "addr", "add", host_ip, "dev", "eth0"])
        run(["ip", "-n", outside, "link", "set", "eth0", "up"])
        run(["ip", "-n", outside, "route", "add", "default", "via", outside_ip.split("/")[0]])
        return outside

    def node(self, name, node_ip_cidr, pod_cidr, **kw):
        """A nodeplane node: its own namespace on the underlay, the daemon inside it with ul0 as
        an af_packet uplink."""
        ns = self.add_node_netns(name)
        return self.daemon(name, node_ip_cidr, pod_cidr, netns=ns,
                           uplink="net_af_packet_ul,iface=ul0", **kw)

    def cni(self, pod, command, check=True, config=None):
        """Calls nodeplane-cni exactly as a container runtime does."""
        conf = dict(config or pod.daemon.cni_config())
        if command in ("CHECK", "DEL") and pod.result:
            conf["prevResult"] = pod.result
        env = dict(os.environ,
                   CNI_COMMAND=command, CNI_CONTAINERID=pod.container_id,
                   CNI_NETNS=f"/var/run/netns/{pod.netns}", CNI_IFNAME="eth0",
                   CNI_PATH=f"{build_dir() / 'control'}:/usr/lib/cni:/opt/cni/bin",
                   CNI_ARGS=f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                            f"K8S_POD_NAME={pod.name}")
        # The runtime calls the plugin on the pod's node: in that node's network namespace.
        prefix = ["ip", "netns", "exec", pod.daemon.netns] if pod.daemon.netns else []
        r = subprocess.run(prefix + [str(build_dir() / "control/nodeplane-cni")],
                           input=json.dumps(conf),
                           env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = json.loads(r.stdout) if r.stdout.strip() else None
        if check and r.returncode != 0:
            raise RuntimeError(f"CNI {command} {pod.namespace}/{pod.name} failed "
                               f"({r.returncode}): {r.stdout} {r.stderr}")
        return r.returncode, out

    def agent(self, daemon, *source_args):
        """A nodeplane-agent pushing to `daemon` (stopped by PID with the lab). `source_args`:
        e.g. "--manifests", DIR. Its log is lab.tmp/agent-<node>.log."""
        log_path = self.tmp / f"agent-{daemon.node_name}.log"
        log = open(log_path, "a")
        proc = self.popen([str(build_dir() / "control/nodeplane-agent"), "--node-name",
                           daemon.node_name, "--socket", daemon.socket, "--debounce-ms", "50",
                           "--metrics-address", "127.0.0.1:0"]
                          + list(source_args), stderr=log)
        proc.log_path = log_path
        return proc

    def add_pod(self, daemon, namespace, name):
        """A pod: a fresh network namespace, wired by the CNI plugin to `daemon`."""
        netns = self.add_netns(f"{namespace}-{name}"[:40])
        pod = Pod(self, namespace, name, netns, container_id=f"{self.prefix}-{namespace}-{name}",
                  daemon=daemon)
        rc, result = self.cni(pod, "ADD")
        pod.result = result
        pod.ip = result["ips"][0]["address"].split("/")[0]
        pod.mac = result["interfaces"][1]["mac"]
        self.pods.append(pod)
        return pod

    def remove_pod(self, pod):
        rc, _ = self.cni(pod, "DEL")
        if pod in self.pods:
            self.pods.remove(pod)
        return rc
