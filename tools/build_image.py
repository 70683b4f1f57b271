#!/usr/bin/env python3
"""make image: the container image of configs/k8s/Dockerfile from this checkout's build, without a
Docker engine or a registry (tools/nplab/image.py says how). Writes a docker-archive tarball:
  ctr -n k8s.io images import build/image/nodeplane-image.tar   (each node's containerd)
  podman load -i build/image/nodeplane-image.tar                (or docker load -i ...)"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nplab.image import ImageError, build_image  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="the tarball (default: <build>/image/nodeplane-image.tar)")
    p.add_argument("--tag", help="the image's name (default: the one the DaemonSet runs)")
    p.add_argument("--build-dir", help="the meson build directory (default: ./build)")
    a = p.parse_args()
    try:
        build_image(out=a.out, tag=a.tag, build=a.build_dir)
    except ImageError as e:
        sys.exit(f"build_image: {e}")


if __name__ == "__main__":
    main()
