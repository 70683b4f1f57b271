"""Cluster DNS answered by the data plane (issue: cluster DNS), with real resolvers in pods.

One node; a client pod with the resolv.conf kubelet writes (nameserver 10.96.0.10, the search
path, ndots:5); backends; an upstream (Debian's unbound, in a pod) behind the kube-system/kube-dns
Service for names outside the cluster domain. The cases are those of the upstream conformance
tests (kubernetes test/e2e/network/dns.go), asked with dig over UDP and TCP and with glibc."""

import re
import time
from pathlib import Path

import pytest

from nplab import Lab, unbound

DNS_IP = "10.96.0.10"
DOMAIN = "cluster.local"


@pytest.fixture(scope="module")
def cluster():
    with Lab("d") as lab:
        node = lab.node("node-dns", "192.168.50.10/24", "10.244.1.0/24",
                        cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12")
        client = lab.add_pod(node, "ns-dev", "client")
        w1 = lab.add_pod(node, "backend", "w1")
        w2 = lab.add_pod(node, "backend", "w2")
        up = lab.add_pod(node, "kube-system", "upstream")
        conf_dir = lab.tmp / "unbound"
        conf_dir.mkdir()
        conf = unbound.config(conf_dir, up.ip, stub_zones=[(DOMAIN, DNS_IP)],
                              auth_data=["outside.example. 5 IN A 192.0.2.1"])
        up.popen(unbound.command(conf))
        for p in (w1, w2):
            p.serve(http=[8080])
        client.set_resolv_conf("ns-dev", DNS_IP)

        dns_ports = [{"name": "dns", "protocol": "UDP", "port": 53},
                     {"name": "dns-tcp", "protocol": "TCP", "port": 53}]
        node.set_service("kube-system", "kube-dns", DNS_IP, dns_ports, [up])
        node.set_service("default", "kubernetes", "10.96.0.1",
                         [{"name": "https", "port": 443, "targetPort": 6443}],
                         [{"ip": "192.168.50.10"}])
        node.set_service("backend", "web", "10.96.0.30",
                         [{"name": "http", "port": 80, "targetPort": 8080}], [w1, w2])
        node.set_service("backend", "db", None,
                         [{"name": "pg", "port": 5432}],
                         [{"ip": w1.ip, "hostname": "db-0", "ports": {"pg": 5432}},
                          {"ip": w2.ip, "ports": {"pg": 5433}},
                          {"ip": "10.244.1.250", "ready": False}],
                         clusterIP="None")
        node.set_service("backend", "ext", None, [], [], type="ExternalName",
                         externalName="outside.example")
        wait_for_upstream(client)
        yield {"lab": lab, "node": node, "client": client, "w1": w1, "w2": w2, "up": up}


def wait_for_upstream(client, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if dig(client, "outside.example").get("answer"):
            return
        time.sleep(0.2)
    raise AssertionError("the upstream unbound did not answer outside.example")


def dig(pod, name, qtype="A", *flags, server=DNS_IP):
    """dig's answer, parsed: status, flags, answer/authority/additional records as tuples."""
    r = pod.exec(["dig", f"@{server}", "+time=2", "+tries=1", "+nocookie", *flags, name, qtype],
                 check=False)
    out = {"raw": r.stdout, "answer": [], "authority": [], "additional": []}
    m = re.search(r"status: (\w+)", r.stdout)
    out["status"] = m.group(1) if m else None
    m = re.search(r";; flags: ([a-z ]+);", r.stdout)
    out["flags"] = set(m.group(1).split()) if m else set()
    section = None
    for line in r.stdout.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = "answer"
        elif line.startswith(";; AUTHORITY SECTION"):
            section = "authority"
        elif line.startswith(";; ADDITIONAL SECTION"):
            section = "additional"
        elif not line.strip():
            section = None
        elif section and not line.startswith(";"):
            f = line.split()
            out[section].append((f[0].lower(), f[3], " ".join(f[4:])))
    return out


def fqdn(short):
    return f"{short}.{DOMAIN}."


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_service_a_record(cluster, transport):
    r = dig(cluster["client"], "web.backend.svc.cluster.local", "A", transport)
    assert r["status"] == "NOERROR", r["raw"]
    assert r["answer"] == [(fqdn("web.backend.svc"), "A", "10.96.0.30")], r["raw"]
    if transport == "+notcp":  # (over TCP the upstream answers, from nodeplane's UDP answer)
        assert "aa" in r["flags"], r["raw"]


def test_answered_by_the_worker_without_conntrack(cluster):
    node = cluster["node"]
    before = node.counters()
    for _ in range(20):
        assert dig(cluster["client"], "web.backend.svc.cluster.local")["answer"]
    after = node.counters()
    assert after["dns_answers_a"] - before["dns_answers_a"] >= 20
    assert after["service_flows"] == before["service_flows"], "no flow to the DNS Service"


def test_kubernetes_default_through_the_search_path(cluster):
    r = dig(cluster["client"], "kubernetes.default", "A", "+search")
    assert r["answer"] == [(fqdn("kubernetes.default.svc"), "A", "10.96.0.1")], r["raw"]


@pytest.mark.parametrize("short", ["web", "web.backend", "web.backend.svc"])
def test_shortened_names_with_ndots5(cluster, short):
    # The client pod lives in ns-dev: "web" alone is web.ns-dev.svc... (NXDOMAIN) unless the
    # namespace is given; getent walks the search path as glibc does.
    client = cluster["client"]
    client.set_resolv_conf("backend", DNS_IP)
    try:
        r = client.exec(["getent", "hosts", short], check=False)
        assert r.returncode == 0 and r.stdout.split()[0] == "10.96.0.30", r.stdout + r.stderr
    finally:
        client.set_resolv_conf("ns-dev", DNS_IP)


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_headless_service_a_records_are_the_ready_endpoints(cluster, transport):
    r = dig(cluster["client"], "db.backend.svc.cluster.local", "A", transport)
    got = sorted(a[2] for a in r["answer"])
    assert got == sorted([cluster["w1"].ip, cluster["w2"].ip]), r["raw"]


def test_headless_hostname_and_dashed_endpoint_names(cluster):
    w1, w2 = cluster["w1"], cluster["w2"]
    r = dig(cluster["client"], "db-0.db.backend.svc.cluster.local")
    assert r["answer"] == [(fqdn("db-0.db.backend.svc"), "A", w1.ip)], r["raw"]
    dashed = w2.ip.replace(".", "-")
    r = dig(cluster["client"], f"{dashed}.db.backend.svc.cluster.local")
    assert r["answer"] == [(fqdn(f"{dashed}.db.backend.svc"), "A", w2.ip)], r["raw"]


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_srv_of_a_regular_service(cluster, transport):
    r = dig(cluster["client"], "_http._tcp.web.backend.svc.cluster.local", "SRV", transport)
    assert r["answer"] == [(fqdn("_http._tcp.web.backend.svc"), "SRV",
                            f"0 100 80 {fqdn('web.backend.svc')}")], r["raw"]
    if transport == "+notcp":  # (the upstream, answering over TCP, leaves additional data out)
        assert (fqdn("web.backend.svc"), "A", "10.96.0.30") in r["additional"], r["raw"]


def test_srv_of_a_headless_service_names_each_endpoint(cluster):
    w2 = cluster["w2"]
    r = dig(cluster["client"], "_pg._tcp.db.backend.svc.cluster.local", "SRV")
    got = sorted(a[2] for a in r["answer"])
    dashed = w2.ip.replace(".", "-")
    assert got == sorted([f"0 50 5432 {fqdn('db-0.db.backend.svc')}",
                          f"0 50 5433 {fqdn(dashed + '.db.backend.svc')}"]), r["raw"]


def test_ptr_of_a_cluster_ip_and_a_headless_endpoint(cluster):
    r = dig(cluster["client"], "-x", "10.96.0.30")
    r = dig(cluster["client"], "30.0.96.10.in-addr.arpa", "PTR")
    assert r["answer"] == [("30.0.96.10.in-addr.arpa.", "PTR", fqdn("web.backend.svc"))], r["raw"]
    w1 = cluster["w1"]
    rev = ".".join(reversed(w1.ip.split("."))) + ".in-addr.arpa"
    r = dig(cluster["client"], rev, "PTR")
    assert r["answer"] == [(rev + ".", "PTR", fqdn("db-0.db.backend.svc"))], r["raw"]


def test_external_name_is_a_cname_and_changes_to_a_cluster_ip(cluster):
    node, client = cluster["node"], cluster["client"]
    # A stub's question (RD) goes to the upstream, which asks the workers (no RD: the CNAME) and
    # follows the alias: CNAME, then the target's address.
    r = dig(client, "ext.backend.svc.cluster.local")
    assert r["answer"] == [(fqdn("ext.backend.svc"), "CNAME", "outside.example."),
                           ("outside.example.", "A", "192.0.2.1")], r["raw"]
    r = dig(client, "ext.backend.svc.cluster.local", "A", "+norecurse")
    assert r["answer"] == [(fqdn("ext.backend.svc"), "CNAME", "outside.example.")], r["raw"]
    assert "aa" in r["flags"], r["raw"]
    got = client.exec(["getent", "hosts", "ext.backend.svc.cluster.local"], check=False)
    assert got.stdout.split()[:1] == ["192.0.2.1"], got.stdout + got.stderr
    node.set_service("backend", "ext", "10.96.0.44", [{"name": "http", "port": 80}], [],
                     type="ClusterIP", externalName="")
    try:
        r = dig(client, "ext.backend.svc.cluster.local")
        assert r["answer"] == [(fqdn("ext.backend.svc"), "A", "10.96.0.44")], r["raw"]
    finally:
        node.set_service("backend", "ext", None, [], [], type="ExternalName",
                         externalName="outside.example")


def test_pod_records_as_pods_insecure(cluster):
    ip = cluster["w1"].ip
    r = dig(cluster["client"], f"{ip.replace('.', '-')}.backend.pod.cluster.local")
    assert r["answer"] == [(fqdn(f"{ip.replace('.', '-')}.backend.pod"), "A", ip)], r["raw"]


def test_dns_version_txt(cluster):
    r = dig(cluster["client"], "dns-version.cluster.local", "TXT")
    assert r["answer"] == [("dns-version.cluster.local.", "TXT", '"1.1.0"')], r["raw"]


def test_nxdomain_and_nodata_carry_the_soa(cluster):
    client = cluster["client"]
    r = dig(client, "nope.backend.svc.cluster.local")
    assert r["status"] == "NXDOMAIN" and not r["answer"], r["raw"]
    assert r["authority"] and r["authority"][0][:2] == ("cluster.local.", "SOA"), r["raw"]
    for name, qtype in (("web.backend.svc.cluster.local", "AAAA"), ("svc.cluster.local", "A"),
                        ("backend.svc.cluster.local", "A")):
        r = dig(client, name, qtype)
        assert r["status"] == "NOERROR" and not r["answer"], (name, r["raw"])
        assert r["authority"][0][:2] == ("cluster.local.", "SOA"), (name, r["raw"])


def test_case_is_kept_in_the_question_and_ignored_in_the_lookup(cluster):
    r = dig(cluster["client"], "WeB.BackEnd.SVC.Cluster.Local")
    assert r["answer"] and r["answer"][0][2] == "10.96.0.30", r["raw"]
    assert "WeB.BackEnd.SVC.Cluster.Local." in r["raw"]


def test_edns_size_and_truncation(cluster):
    node, client = cluster["node"], cluster["client"]
    eps = [{"ip": f"10.244.1.{100 + i}", "ports": {"pg": 5432}} for i in range(60)]
    node.set_service("backend", "big", None, [{"name": "pg", "port": 5432}], eps,
                     clusterIP="None")
    before = node.counters()["dns_truncated"]
    r = dig(client, "big.backend.svc.cluster.local", "A", "+noedns", "+ignore")
    assert "tc" in r["flags"] and not r["answer"], r["raw"]
    r = dig(client, "big.backend.svc.cluster.local", "A", "+bufsize=1232", "+ignore")
    assert len(r["answer"]) == 60 and "tc" not in r["flags"], r["raw"]
    assert "udp: 1232" in r["raw"], "OPT echoed with our size"
    r = dig(client, "big.backend.svc.cluster.local", "A", "+notcp")  # dig retries over TCP on TC
    assert len(r["answer"]) == 60, r["raw"]
    assert node.counters()["dns_truncated"] > before


def test_a_name_outside_the_cluster_is_answered_by_the_upstream(cluster):
    node = cluster["node"]
    before = node.counters()["dns_passed_on"]
    for transport in ("+notcp", "+tcp"):
        r = dig(cluster["client"], "outside.example", "A", transport)
        assert r["answer"] == [("outside.example.", "A", "192.0.2.1")], r["raw"]
    assert node.counters()["dns_passed_on"] > before


def test_glibc_a_and_aaaa_together_a_thousand_times_without_a_stall(cluster):
    # getaddrinfo(AF_UNSPEC) sends A and AAAA at once from one socket: the pattern that hits the
    # conntrack insertion race (kubernetes#56903) and stalls for the 5-second resolver timeout.
    script = (
        "import socket,time\n"
        "worst=0\n"
        "for i in range(1000):\n"
        "    t=time.monotonic()\n"
        "    a=socket.getaddrinfo('web.backend.svc.cluster.local',80,socket.AF_UNSPEC,"
        "socket.SOCK_STREAM)\n"
        "    worst=max(worst,time.monotonic()-t)\n"
        "    assert a[0][4][0]=='10.96.0.30',a\n"
        "print(worst)\n")
    r = cluster["client"].exec(["/usr/bin/python3", "-c", script], check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    # A stall is the resolver's 5 s timeout firing: no lookup may come near it.
    assert float(r.stdout) < 4.0, r.stdout


def test_servfail_before_any_service_is_applied(cluster):
    lab = cluster["lab"]
    fresh = lab.node("node-fresh", "192.168.50.11/24", "10.244.2.0/24",
                     cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                     extra_args=["--cluster-dns", "10.96.0.10"])
    pod = lab.add_pod(fresh, "ns-dev", "early")
    r = dig(pod, "web.backend.svc.cluster.local")
    assert r["status"] == "SERVFAIL", r["raw"]
    fresh.call("apply", {"services": []})
    r = dig(pod, "web.backend.svc.cluster.local")
    assert r["status"] == "NXDOMAIN", r["raw"]


def test_without_an_upstream_the_workers_answer_tcp_and_refuse_other_names(cluster):
    # --cluster-dns and no kube-dns Service: nodeplane is the only DNS server. TCP (RFC 7766) is
    # answered by the workers statelessly; names it does not hold are refused at once (UDP and
    # TCP) instead of timing out.
    lab = cluster["lab"]
    solo = lab.node("node-solo", "192.168.50.12/24", "10.244.3.0/24",
                    cluster_cidr="10.244.0.0/16", service_cidr="10.96.0.0/12",
                    extra_args=["--cluster-dns", "10.96.0.10"])
    pod = lab.add_pod(solo, "ns-dev", "lonely")
    solo.set_service("backend", "web", "10.96.0.30", [{"name": "http", "port": 80}], [])
    before = solo.counters()
    for flags in (("+tcp",), ("+tcp", "+keepopen"), ("+notcp",)):
        r = dig(pod, "web.backend.svc.cluster.local", "A", *flags)
        assert r["answer"] == [(fqdn("web.backend.svc"), "A", "10.96.0.30")], (flags, r["raw"])
        assert "aa" in r["flags"], r["raw"]
    r = dig(pod, "_http._tcp.web.backend.svc.cluster.local", "SRV", "+tcp")
    assert r["answer"] and r["additional"], r["raw"]
    for transport in ("+tcp", "+notcp"):
        r = dig(pod, "outside.example", "A", transport)
        assert r["status"] == "REFUSED", (transport, r["raw"])
    after = solo.counters()
    assert after["dns_tcp_queries"] - before["dns_tcp_queries"] >= 4
    assert after["dns_refused"] - before["dns_refused"] == 2
    assert after["dns_tcp_resets"] == before["dns_tcp_resets"]
    # glibc over TCP (options use-vc): connect, query, answer, close, a hundred times.
    pod.set_resolv_conf("backend", DNS_IP)
    d = Path("/etc/netns") / pod.netns / "resolv.conf"
    d.write_text(d.read_text() + "options use-vc\n")
    r = pod.exec(["/usr/bin/python3", "-c",
                  "import socket\n"
                  "for i in range(100):\n"
                  "    assert socket.gethostbyname('web')=='10.96.0.30'\n"], check=False,
                 timeout=120)
    assert r.returncode == 0, r.stderr


def test_npctl_dns_looks_a_name_up_in_the_running_zone(cluster):
    node = cluster["node"]
    r = node.npctl("dns", "web.backend.svc.cluster.local")
    assert "answered (NOERROR)" in r.stdout and "10.96.0.30" in r.stdout, r.stdout
    r = node.npctl("dns", "_pg._tcp.db.backend.svc.cluster.local", "SRV")
    assert "db-0.db.backend.svc.cluster.local." in r.stdout, r.stdout
    j = node.call("dns", {"name": "nope.backend.svc.cluster.local"})
    assert j["outcome"] == "nxdomain" and j["authority"][0]["type"] == "SOA", j
    j = node.call("dns", {"name": "outside.example"})
    assert j["outcome"] == "passed on", j
    r = node.npctl("dns", "web.backend.svc.cluster.local", "BOGUS", check=False)
    assert r.returncode != 0 and "type" in r.stderr, r.stderr


def test_npctl_trace_shows_the_answer(cluster):
    node = cluster["node"]
    r = node.call("trace", {"from": "ns-dev/client", "dst": DNS_IP,
                            "dnsQuery": "web.backend.svc.cluster.local"})
    dns_stage = next(s for s in r["stages"] if s["stage"] == "dns")
    assert dns_stage["action"] == "transmit", r
    assert "A 10.96.0.30" in dns_stage["to"] and "pod ns-dev/client" in dns_stage["to"], r
    assert r["verdict"].startswith("transmitted to pod ns-dev/client"), r
    # Not a cluster name: the DNS stage lets it pass, the service stage takes it to the upstream.
    r = node.call("trace", {"from": "ns-dev/client", "dst": DNS_IP, "dnsQuery": "outside.example"})
    dns_stage = next(s for s in r["stages"] if s["stage"] == "dns")
    assert dns_stage["action"] == "continue", r
    assert "kube-system/upstream" in r["verdict"], r


def test_network_policy_egress_decides_whether_a_pod_may_ask(cluster):
    # An egress-isolated pod is answered only when its policies let it reach the cluster DNS (its
    # kube-dns pods), as with CoreDNS; otherwise the query is judged on the way to the upstream
    # and denied there.
    node, client, up = cluster["node"], cluster["client"], cluster["up"]
    identities = {
        "namespaces": [{"name": "ns-dev", "labels": {"ns": "dev"}},
                       {"name": "kube-system", "labels": {"kubernetes.io/metadata.name":
                                                          "kube-system"}},
                       {"name": "backend", "labels": {}}],
        "pods": [{"namespace": "ns-dev", "name": "client", "ip": client.ip,
                  "labels": {"app": "client"}},
                 {"namespace": "kube-system", "name": "upstream", "ip": up.ip,
                  "labels": {"k8s-app": "kube-dns"}}]}
    deny_all = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"namespace": "ns-dev", "name": "deny-egress"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    allow_dns = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"namespace": "ns-dev", "name": "allow-dns"},
                 "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"namespaceSelector": {"matchLabels": {
                              "kubernetes.io/metadata.name": "kube-system"}},
                              "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                              "ports": [{"protocol": "UDP", "port": 53}]}]}}
    try:
        node.call("policy.apply", {**identities, "networkPolicies": [deny_all]})
        before = node.counters()
        r = dig(client, "web.backend.svc.cluster.local")
        assert r["status"] is None and not r["answer"], r["raw"]  # no answer: timed out
        after = node.counters()
        assert after["dns_policy_passed_on"] > before["dns_policy_passed_on"]
        assert node.drops().get("policy_denied_egress", 0) >= 1
        node.call("policy.apply", {**identities, "networkPolicies": [deny_all, allow_dns]})
        r = dig(client, "web.backend.svc.cluster.local")
        assert r["answer"] == [(fqdn("web.backend.svc"), "A", "10.96.0.30")], r["raw"]
        assert "aa" in r["flags"], "answered by the workers"
    finally:
        node.call("policy.apply", {**identities, "networkPolicies": []})
