"""The image as shipped: every shared library the four binaries load must come from the runtime
stage's packages (configs/k8s/runtime-packages) or their dependencies, since the image installs
them with --no-install-recommends. Checked against this machine's dpkg database (the build
machine has every one installed): ldd names the files, dpkg -S their packages, and the closure of
Pre-Depends/Depends of the listed packages must hold each."""

import os
import re
import subprocess
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("NODEPLANE_BUILD_DIR", REPO / "build"))
BINARIES = ["daemon/nodeplane", "control/npctl", "control/nodeplane-agent",
            "control/nodeplane-cni"]


def runtime_packages():
    text = (REPO / "configs/k8s/runtime-packages").read_text()
    return {p for line in text.splitlines() for p in line.split("#")[0].split()}


def installed():
    """{package: (alternatives-lists of dependencies, provides)} of installed packages."""
    out = subprocess.run(["dpkg-query", "-W", "-f",
                          "${Package}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\t"
                          "${Provides}\n"], text=True, stdout=subprocess.PIPE,
                         check=True).stdout
    packages, provided = {}, {}
    for line in out.splitlines():
        name, status, deps, provides = (line.split("\t") + ["", "", ""])[:4]
        if not status.startswith("ii"):
            continue
        alternatives = []
        for dep in deps.split(","):
            names = [re.sub(r"[ (:].*", "", a.strip()) for a in dep.split("|") if a.strip()]
            if names:
                alternatives.append(names)
        packages[name] = alternatives
        for p in provides.split(","):
            p = re.sub(r"[ (].*", "", p.strip())
            if p:
                provided.setdefault(p, []).append(name)
    return packages, provided


def closure(roots, packages, provided):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alternatives in packages.get(p, []):
            for a in alternatives:
                if a in packages:
                    todo.append(a)
                    break
                if a in provided:
                    todo.append(provided[a][0])
                    break
    return seen


def owner(path):
    """The installed package owning a library file (merged /usr: try both spellings)."""
    real = str(Path(path).resolve())
    candidates = {path, real}
    for c in list(candidates):
        candidates.add(c[4:] if c.startswith("/usr/") else "/usr" + c)
    for c in candidates:
        r = subprocess.run(["dpkg", "-S", c], text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return None


def loaded_libraries():
    libs = {}
    for b in BINARIES:
        r = subprocess.run(["ldd", str(BUILD / b)], text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        out = r.stdout
        if "not a dynamic executable" in out:  # nodeplane-cni: linked statically
            continue
        assert r.returncode == 0 and "not found" not in out, out
        for line in out.splitlines():
            m = re.search(r"=> (/\S+)", line)
            if m:
                libs.setdefault(m.group(1), set()).add(b)
    return libs


def test_every_loaded_library_comes_from_the_runtime_packages():
    packages, provided = installed()
    listed = runtime_packages()
    missing_from_machine = [p for p in listed if p not in packages]
    assert not missing_from_machine, f"listed but not installed here: {missing_from_machine}"
    have = closure(listed, packages, provided)
    problems = []
    for lib, users in sorted(loaded_libraries().items()):
        pkg = owner(lib)
        if pkg is None:
            problems.append(f"{lib} (for {', '.join(sorted(users))}): no package owns it")
        elif pkg not in have:
            problems.append(f"{lib} from {pkg} (for {', '.join(sorted(users))})")
    assert not problems, ("libraries the image would lack; add their packages to "
                          "configs/k8s/runtime-packages:\n  " + "\n  ".join(problems))


def test_the_check_sees_a_missing_library():
    """The same check without the DPDK libraries must fail (it is not vacuous)."""
    packages, provided = installed()
    have = closure({p for p in runtime_packages() if not p.startswith("librte-")} - {"dpdk"},
                   packages, provided)
    owners = {owner(lib) for lib in loaded_libraries()}
    assert "librte-eal23" in owners and "librte-eal23" not in have


# DPDK drivers EAL loads from its driver directory, so ldd never names them: what every pool
# needs, and the virtual devices nodeplane makes itself or documents (af_packet uplinks, the ESP
# crypto device, memif and vhost-user ports).
DRIVERS = ["mempool_ring", "bus_vdev", "net_af_packet", "crypto_ipsec_mb", "net_memif",
           "net_vhost", "bus_pci"]


def driver_file(name):
    out = subprocess.run(["pkg-config", "--variable=pmdsdir", "libdpdk"], text=True,
                         stdout=subprocess.PIPE).stdout.strip()
    pmds = Path(out or "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0")
    found = sorted(pmds.glob(f"librte_{name}.so.*"))
    assert found, f"no {name} driver in {pmds}"
    return str(found[0])


def test_the_drivers_eal_loads_come_from_the_runtime_packages():
    """The image once had none of them: every pool failed with EINVAL and no uplink could be
    probed (found by running the image on the lab, tests/k8s/test_k8s_daemonset.py)."""
    packages, provided = installed()
    have = closure(runtime_packages(), packages, provided)
    missing = [f"{d} ({owner(driver_file(d))})" for d in DRIVERS
               if owner(driver_file(d)) not in have]
    assert not missing, ("drivers the image would lack; add their packages to "
                         "configs/k8s/runtime-packages: " + ", ".join(missing))


def test_the_cni_plugin_runs_on_any_node():
    """The bootstrap copies nodeplane-cni out of the image onto the node, whose libraries are
    the node's own (any distribution): like the CNI project's plugins it is linked statically."""
    out = subprocess.run(["ldd", str(BUILD / "control/nodeplane-cni")], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    assert "not a dynamic executable" in out or "statically linked" in out, out
