#!/usr/bin/env python3
"""Checks that the source tree's include graph only points down (docs/architecture.md).

Each top-level module has a floor; a file may include headers of its own module and of modules
on lower floors, never of a module on its own floor or above. The programs that run without DPDK
(npctl, nodeplane-cni, nodeplane-agent) may include only the DPDK-free pieces listed below.
Also checks that every .cpp of a module is compiled into exactly one target (no source built
twice into two libraries).

Exit status 0 when the tree is clean; 1 with one line per offending include otherwise.
"""
import pathlib
import re
import sys

FLOORS = {
    "core": 0,
    "overlay": 1,
    "lb": 1,
    "policy": 1,
    "dns": 1,
    "dataplane": 2,
    "control": 3,
    "daemon": 4,
}

# Programs without DPDK: what they may include besides their own folder.
NO_DPDK_PROGRAMS = ("control/agent/", "control/cni/", "control/npctl/")
NO_DPDK_ALLOWED = re.compile(
    r"^(core/(base64|ipv4|json|result|names)\.h|control/(client|protocol)\.h|policy/(labels|model|model_json)\.h)$")

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCE_IN_MESON = re.compile(r"'([^']+\.cpp)'")


def module_of(path: str) -> str:
    return path.split("/", 1)[0]


def check_includes(root: pathlib.Path) -> list[str]:
    problems = []
    for module in FLOORS:
        for f in sorted((root / module).rglob("*")):
            if f.suffix not in (".h", ".cpp"):
                continue
            rel = f.relative_to(root).as_posix()
            for inc in INCLUDE.findall(f.read_text(encoding="utf-8", errors="replace")):
                target = module_of(inc)
                if target not in FLOORS:
                    continue  # a system or third-party header spelled with quotes
                if rel.startswith(NO_DPDK_PROGRAMS):
                    own = rel.rsplit("/", 1)[0] + "/"
                    if not inc.startswith(own) and not NO_DPDK_ALLOWED.match(inc):
                        problems.append(f"{rel}: includes {inc}: a program without DPDK may "
                                        f"include only its own folder and the DPDK-free pieces")
                    continue
                if target == module:
                    continue
                if FLOORS[target] >= FLOORS[module]:
                    problems.append(f"{rel}: includes {inc}: {module}/ (floor {FLOORS[module]}) "
                                    f"may not include {target}/ (floor {FLOORS[target]})")
    return problems


def check_sources_compiled_once(root: pathlib.Path) -> list[str]:
    problems = []
    seen: dict[str, str] = {}
    for meson in sorted(root.glob("*/meson.build")):
        if module_of(meson.relative_to(root).as_posix()) not in FLOORS:
            continue
        for src in SOURCE_IN_MESON.findall(meson.read_text(encoding="utf-8")):
            path = (meson.parent / src).resolve().relative_to(root.resolve()).as_posix()
            where = meson.relative_to(root).as_posix()
            if path in seen and seen[path] != where:
                problems.append(f"{path}: compiled by {seen[path]} and {where}")
            elif path in seen:
                problems.append(f"{path}: listed twice in {where}")
            seen[path] = where
            if module_of(path) != module_of(where):
                problems.append(f"{path}: compiled by {where}, outside its module")
    return problems


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = check_includes(root) + check_sources_compiled_once(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check_layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check_layers: every include points down; every source is compiled once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
