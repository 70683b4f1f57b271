"""Shared pytest set-up for the scenario and e2e tests: the nplab harness on the path, root check."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (network namespaces, DPDK vdevs)")
        for item in items:
            item.add_marker(skip)
