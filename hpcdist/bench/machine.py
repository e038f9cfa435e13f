"""What a run ran on: hosts, cores, memory, versions, git commit, date (the load: ``quiet``).

The collective parts take a communicator; the rest are plain functions (also used by ``compare``
and benchmarks/*.py, which run as one process). The git facts are those of the checkout hpcdist
was imported from, if any: an installed package has none, and says so (null).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata as md
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
VERSION_PACKAGES = ("numpy", "numba", "llvmlite", "h5py", "mpi4py", "mpich", "matplotlib", "dask", "distributed")


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def affinity() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def versions() -> dict[str, str]:
    import hpcdist
    out = {"python": platform.python_version(), "hpcdist": hpcdist.__version__}
    for pkg in VERSION_PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        import h5py
        out["hdf5"] = h5py.version.hdf5_version
    except Exception:  # noqa: BLE001 - informational only
        pass
    if "mpi4py" in sys.modules or _can_import("mpi4py"):
        try:
            from hpcdist.comm import mpi_library
            out["mpi_library"] = mpi_library()
        except Exception:  # noqa: BLE001
            pass
    return out


def _can_import(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(name) is not None


def git(*args: str, cwd: str | Path = PACKAGE_DIR) -> str:
    """``git ARGS`` in ``cwd`` (default: where hpcdist was imported from); "" where git cannot answer."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def checkout_root() -> Path | None:
    """The git checkout hpcdist was imported from (None for an installed package)."""
    top = git("rev-parse", "--show-toplevel")
    return Path(top).resolve() if top else None


def display_path(path: str) -> str:
    """``path`` as records show it: relative to the checkout when inside it (``jobs/stats.py``),
    else absolute."""
    full = Path(path).resolve()
    root = checkout_root()
    if root is not None and full.is_relative_to(root):
        return str(full.relative_to(root))
    return str(full)


def git_facts() -> dict[str, Any]:
    commit = git("rev-parse", "HEAD")
    return {"git_commit": commit or None,
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def local_facts() -> dict[str, Any]:
    """This process's host facts (one per rank, gathered by :func:`launch_facts`)."""
    return {"hostname": socket.gethostname(), "cpus": affinity(), "cpu_count": os.cpu_count() or 1}


def launch_facts(comm, cores_override: int | None = None) -> dict[str, Any]:
    """Collective over ``comm``: hostnames, nodes, ranks per node, cores per node.

    Cores of a node are the union of its ranks' CPU affinity (what Slurm or the launcher gave
    them), or ``cores_override``.
    """
    mine = local_facts()
    every = comm.allgather(mine)
    hosts: dict[str, dict[str, Any]] = {}
    for f in every:
        h = hosts.setdefault(f["hostname"], {"ranks": 0, "cpus": set()})
        h["ranks"] += 1
        h["cpus"].update(f["cpus"])
    per_node = {name: {"ranks": h["ranks"], "cores": cores_override or len(h["cpus"])} for name, h in hosts.items()}
    return {
        "hostnames": sorted(hosts),
        "nodes": len(hosts),
        "ranks": len(every),
        "ranks_per_node": max(h["ranks"] for h in per_node.values()),
        "cores_per_node": min(h["cores"] for h in per_node.values()),
        "per_node": per_node,
        "oversubscribed": any(h["ranks"] > h["cores"] for h in per_node.values()),
    }


def describe(cores_override: int | None = None) -> dict[str, Any]:
    """The facts every record carries, for this process's host."""
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": cores_override or len(affinity()),
        "cores_detected": len(affinity()),
        "cores_override": cores_override,
        "memory_GiB": memory_gib(),
        "platform": platform.platform(),
    }
