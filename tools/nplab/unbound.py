"""unbound (Debian's) as a lab DNS server: the upstream behind the cluster DNS Service, and the
peer the DNS benchmark measures against. Only local data; nothing leaves the machine."""

from pathlib import Path


def config(directory: Path, listen: str, local_data=(), stub_zones=(), threads=1, port=53,
           auth_data=()):
    """Writes unbound.conf into `directory` and returns its path. `local_data`: RR strings
    ("outside.example. 5 IN A 192.0.2.1") answered to clients (local-zone static);
    `auth_data`: the same, served as authoritative zones that unbound's own resolution uses too
    (to follow a CNAME from the cluster domain to them); `stub_zones`: (zone, server address)
    pairs queried for names of that zone (the cluster domain, back to nodeplane's responder)."""
    lines = [
        "server:",
        f"  interface: {listen}",
        f"  port: {port}",
        "  do-daemonize: no",
        "  use-syslog: no",
        f"  logfile: \"{directory / 'unbound.log'}\"",
        f"  directory: \"{directory}\"",
        f"  pidfile: \"{directory / 'unbound.pid'}\"",
        "  chroot: \"\"",
        "  username: \"\"",
        f"  num-threads: {threads}",
        "  access-control: 0.0.0.0/0 allow",
        "  module-config: \"iterator\"",  # no DNSSEC validation: nothing is signed here
        "  do-not-query-localhost: no",
        "  do-ip6: no",
        "  qname-minimisation: no",
        "  so-reuseport: yes",
        "  cache-min-ttl: 0",
        "  msg-cache-size: 64m",
        "  rrset-cache-size: 128m",
    ]
    zones = {rr.split()[0].rstrip(".").split(".", 1)[-1] for rr in local_data}
    for z in sorted(zones):
        lines.append(f"  local-zone: \"{z}.\" static")
    for rr in local_data:
        lines.append(f"  local-data: \"{rr}\"")
    for zone, _ in stub_zones:
        lines += [f"  domain-insecure: \"{zone}\"", f"  private-domain: \"{zone}\""]
    for zone, server in stub_zones:
        lines += ["stub-zone:", f"  name: \"{zone}\"", f"  stub-addr: {server}"]
    by_zone = {}
    for rr in auth_data:
        by_zone.setdefault(rr.split()[0].rstrip(".").split(".", 1)[-1], []).append(rr)
    for z, rrs in sorted(by_zone.items()):
        zonefile = directory / f"{z}.zone"
        zonefile.write_text(f"{z}. 5 IN SOA ns.{z}. hostmaster.{z}. 1 7200 1800 86400 5\n"
                            f"{z}. 5 IN NS ns.{z}.\n" + "".join(rr + "\n" for rr in rrs))
        lines += ["auth-zone:", f"  name: \"{z}.\"", f"  zonefile: \"{zonefile}\"",
                  "  for-downstream: yes", "  for-upstream: yes", "  fallback-enabled: no"]
    path = directory / "unbound.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def command(conf: Path):
    return ["/usr/sbin/unbound", "-d", "-c", str(conf)]
