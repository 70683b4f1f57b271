"""The container image of configs/k8s/Dockerfile, assembled on this machine without a Docker
engine or a registry: the Dockerfile's last stage is read and carried out, its `FROM debian:12`
by debootstrap from Debian's archive, its RUN lines in a chroot of that tree, its
`COPY --from=build` from this checkout's meson build (the build stage's commands are the ones
`make` runs), and written as a docker-archive tarball that `ctr images import`, `podman load`
and `docker load` read.

Two layers, as a Docker build of the same file would share them: the base (Debian and the
runtime packages: everything before the first COPY --from), cached under the build directory by
a key over what made it, and the binaries. Used by `make image` (tools/build_image.py) and by
tests/k8s/test_k8s_daemonset.py, which runs the shipped DaemonSet with it on the k8s lab."""

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .lab import REPO, build_dir

DOCKERFILE = REPO / "configs/k8s/Dockerfile"
DAEMONSET = REPO / "configs/k8s/04-daemonset.yaml"
MIRROR = os.environ.get("NODEPLANE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("NODEPLANE_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
# The base images a FROM may name, as debootstrap makes them (what debian:12 holds).
BASES = {"debian:12": "bookworm", "debian:bookworm": "bookworm",
         "debian:12-slim": "bookworm", "debian:bookworm-slim": "bookworm"}
BASE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
# The build stage works in /src on a copy of the checkout and builds into /src/build.
BUILD_STAGE_ROOT = "/src"
# Instructions that only set the image's run configuration.
CONFIG_INSTRUCTIONS = ("ENV", "WORKDIR", "ENTRYPOINT", "CMD")


class ImageError(RuntimeError):
    pass


@dataclass
class Stage:
    base: str
    name: str = ""
    steps: list = field(default_factory=list)  # (line number, instruction, arguments)


def parse(text):
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages, logical, start = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not logical:
            start = number
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        op, _, args = logical.strip().partition(" ")
        op, args, logical = op.upper(), args.strip(), ""
        if op == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            raise ImageError(f"Dockerfile line {start}: {op} before any FROM")
        else:
            stages[-1].steps.append((start, op, args))
    if not stages:
        raise ImageError("the Dockerfile has no FROM")
    return stages


def copy_arguments(number, args):
    """(--from stage or "", [sources], destination) of a COPY."""
    words = shlex.split(args)
    source_stage = ""
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            source_stage = flag[len("--from="):]
        else:
            raise ImageError(f"Dockerfile line {number}: COPY {flag} is not supported")
    if len(words) < 2:
        raise ImageError(f"Dockerfile line {number}: COPY needs a source and a destination")
    return source_stage, words[:-1], words[-1]


def exec_form(number, op, args):
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        value = None
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ImageError(f"Dockerfile line {number}: {op} must be a JSON list of strings")
    return value


def default_tag():
    """The image the shipped DaemonSet runs (every container names the same one)."""
    images = set(re.findall(r"^\s*image:\s*(\S+)", DAEMONSET.read_text(), re.M))
    if len(images) != 1:
        raise ImageError(f"{DAEMONSET}: expected one image, found {sorted(images)}")
    return images.pop()


def _run(cmd, what, timeout=900, **kw):
    r = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, **kw)
    if r.returncode != 0:
        raise ImageError(f"{what} failed (exit {r.returncode}):\n{r.stdout[-3000:]}")
    return r.stdout


def _layer_tar(root, out):
    """A reproducible layer: sorted, owner root, mtime 0 (as the lab's own images)."""
    _run(["tar", "--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@0",
          "--xattrs", "-C", str(root), "-cf", str(out), "."], f"tar of {root}")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _context_digest(sources):
    h = hashlib.sha256()
    for s in sources:
        for p in sorted([REPO / s] if (REPO / s).is_file() else (REPO / s).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _chroot_run(root, command, number):
    """A RUN line in the tree, with /proc mounted in a private mount namespace (gone with it)
    and this machine's resolver for the duration, as a build container has."""
    resolv = root / "etc/resolv.conf"  # not part of the image (left out of the layer)
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        _run(["unshare", "--mount", "--fork", "sh", "-c",
              'mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -c "$1"',
              str(root), command], f"Dockerfile line {number}: RUN",
             env={"PATH": BASE_ENV[0].partition("=")[2], "DEBIAN_FRONTEND": "noninteractive",
                  "HOME": "/root"})
    finally:
        resolv.unlink(missing_ok=True)


def _sources_list(suite):
    """What the debian:12 image's /etc/apt/sources.list.d/debian.sources says."""
    return (f"Types: deb\nURIs: {MIRROR}\nSuites: {suite} {suite}-updates\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: {SECURITY}\nSuites: {suite}-security\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def _base_layer(stage, steps, work, log):
    """The base layer's tar (cached): debootstrap, then the stage's steps before its first
    COPY --from."""
    suite = BASES.get(stage.base)
    if suite is None:
        raise ImageError(f"FROM {stage.base}: only {', '.join(sorted(BASES))} can be made "
                         "here (by debootstrap)")
    key = hashlib.sha256(json.dumps([stage.base, MIRROR, SECURITY] + [
        [op, args] + ([_context_digest(copy_arguments(n, args)[1])] if op == "COPY" else [])
        for n, op, args in steps]).encode()).hexdigest()[:16]
    cached = work / f"base-{key}.tar"
    if cached.exists():
        log(f"image: base layer {cached.name} (cached)")
        return cached
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is missing (make deps installs it)")
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=work))
    try:
        log(f"image: debootstrap {suite} from {MIRROR}")
        _run(["debootstrap", "--variant=minbase", suite, str(root), MIRROR],
             f"debootstrap {suite} {MIRROR}")
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources_list(suite))
        for number, op, args in steps:
            if op == "RUN":
                log(f"image: RUN {args[:70]}...")
                _chroot_run(root, args, number)
            elif op == "COPY":
                _, sources, dest = copy_arguments(number, args)
                for s in sources:
                    target = root / dest.lstrip("/")
                    if dest.endswith("/"):
                        target = target / Path(s).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / s, target)
            elif op == "WORKDIR":
                (root / args.lstrip("/")).mkdir(parents=True, exist_ok=True)
            elif op not in CONFIG_INSTRUCTIONS:
                raise ImageError(f"Dockerfile line {number}: {op} is not supported here")
        # What a Docker build leaves out of a layer: the build's own resolver, apt's caches.
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/hostname").unlink(missing_ok=True)
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        partial = cached.with_suffix(".partial")
        _layer_tar(root, partial)
        partial.rename(cached)
        for old in work.glob("base-*.tar"):  # one cached base at a time
            if old != cached:
                old.unlink()
        return cached
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _build_stage_path(stage_name, path, build):
    """A path of the build stage in this checkout: /src/build/... is the meson build directory,
    /src/... the checkout."""
    p = Path(path)
    root = Path(BUILD_STAGE_ROOT)
    if p.is_relative_to(root / "build"):
        return build / p.relative_to(root / "build")
    if p.is_relative_to(root):
        return REPO / p.relative_to(root)
    raise ImageError(f"COPY --from={stage_name} {path}: outside {BUILD_STAGE_ROOT}")


def _app_layer(stages, steps, build, out):
    """The layer of the steps from the first COPY --from on: the files written where they go."""
    names = {s.name for s in stages[:-1] if s.name}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        made = set()

        def add_dirs(path):
            parts = Path(path).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in made:
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    made.add(d)

        for number, op, args in steps:
            if op in CONFIG_INSTRUCTIONS:
                continue
            if op != "COPY":
                raise ImageError(f"Dockerfile line {number}: {op} after COPY --from is not "
                                 "supported here (COPY, " + ", ".join(CONFIG_INSTRUCTIONS) + ")")
            stage_name, sources, dest = copy_arguments(number, args)
            if stage_name and stage_name not in names:
                raise ImageError(f"Dockerfile line {number}: no stage named {stage_name}")
            for s in sources:
                src = _build_stage_path(stage_name, s, build) if stage_name else REPO / s
                if not src.is_file():
                    raise ImageError(f"Dockerfile line {number}: {src} is missing "
                                     "(build first: make build)")
                target = dest.lstrip("/") + (src.name if dest.endswith("/") else "")
                add_dirs(target)
                info = tarfile.TarInfo(target)
                info.size, info.mode = src.stat().st_size, 0o755
                with open(src, "rb") as f:
                    tar.addfile(info, f)


def _image_config(steps):
    """The image's run configuration from the stage's ENV, WORKDIR, ENTRYPOINT and CMD."""
    config = {"Env": list(BASE_ENV)}
    for number, op, args in steps:
        if op == "ENTRYPOINT":
            config["Entrypoint"] = exec_form(number, op, args)
        elif op == "CMD":
            config["Cmd"] = exec_form(number, op, args)
        elif op == "ENV":
            k, eq, v = args.partition("=")
            if not eq:
                raise ImageError(f"Dockerfile line {number}: write ENV as KEY=value")
            config["Env"] = [e for e in config["Env"] if not e.startswith(k + "=")]
            config["Env"].append(f"{k}={v}")
        elif op == "WORKDIR":
            config["WorkingDir"] = args
    return config


def build_image(out=None, tag=None, build=None, log=print):
    """Builds the image; returns (path of the docker-archive tar, tag)."""
    build = Path(build or build_dir())
    tag = tag or default_tag()
    work = build / "image"
    work.mkdir(parents=True, exist_ok=True)
    out = Path(out or work / "nodeplane-image.tar")
    stages = parse(DOCKERFILE.read_text())
    final = stages[-1]
    split = next((i for i, (n, op, args) in enumerate(final.steps)
                  if op == "COPY" and copy_arguments(n, args)[0]), len(final.steps))
    base = _base_layer(final, final.steps[:split], work, log)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        tmp = Path(tmp)
        app = tmp / "app.tar"
        _app_layer(stages, final.steps[split:], build, app)
        config = _image_config(final.steps)
        layers = [(base, _sha256(base)), (app, _sha256(app))]
        image_config = {
            "architecture": "amd64", "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for _, d in layers]},
            "history": [{"created_by": f"FROM {final.base} (debootstrap), then the steps "
                                       "before the first COPY --from"},
                        {"created_by": "COPY --from=build: this checkout's meson build"}]}
        blob = json.dumps(image_config, sort_keys=True).encode()
        config_name = hashlib.sha256(blob).hexdigest() + ".json"
        manifest = [{"Config": config_name, "RepoTags": [tag],
                     "Layers": [f"{d}/layer.tar" for _, d in layers]}]
        partial = out.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            for name, data in (("manifest.json", json.dumps(manifest).encode()),
                               (config_name, blob)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            for path, digest in layers:
                tar.add(path, arcname=f"{digest}/layer.tar")
        partial.rename(out)
    log(f"image: {out} ({out.stat().st_size >> 20} MiB) tagged {tag}")
    return out, tag
