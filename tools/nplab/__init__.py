"""nplab: a small lab harness for nodeplane — network namespaces as pods and peers, the real
daemon, the real CNI plugin, real traffic. Used by the scenario and e2e tests and by `make demo`.

Everything a Lab creates is recorded and removed by Lab.close(), which also runs on exceptions,
at interpreter exit and on SIGTERM/SIGINT. Processes are stopped by PID, never by name."""

from .lab import Lab, Daemon, Pod, build_dir, require_root

__all__ = ["Lab", "Daemon", "Pod", "build_dir", "require_root"]
