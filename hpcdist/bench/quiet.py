"""Was the machine quiet while we measured? Load average, CPU time other programs used, waiting.

A benchmark does not wait for a quiet machine unless asked (``--wait-quiet``): it measures, records
the load, and flags every measurement during which other programs used more than a small share of a
core (:func:`is_disturbed`). The rule: the machine's busy CPU time (/proc/stat) minus what our own
processes used, against the wall time of the measurement.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable, Sequence

DISTURBED_SHARE = 0.10    # others used more than 10% of a core meanwhile ...
DISTURBED_SLACK_S = 0.15  # ... plus this much (the kernel's own housekeeping)


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    try:
        with open("/proc/loadavg") as fh:
            return [float(v) for v in fh.read().split()[:3]]
    except OSError:
        return list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]


def wait_for_quiet(max_load: float, wait_s: float, say: Callable[[str], None] = print) -> list[float]:
    """Wait (at most ``wait_s``) until the 1-minute load average is at most ``max_load``; returns it."""
    deadline = time.time() + wait_s
    load = loadavg()
    while load[0] > max_load and time.time() < deadline:
        say(f"hpcdist bench: load average {load[0]:.2f} > {max_load}: waiting (others are using the machine)")
        time.sleep(min(15.0, max(0.5, deadline - time.time())))
        load = loadavg()
    return load


def start_load(max_load: float, wait: bool, wait_s: float, say: Callable[[str], None]) -> list[float]:
    """The load a benchmark starts at: waited for with ``wait`` (and a ``max_load`` > 0), else as it is."""
    if wait and max_load > 0:
        return wait_for_quiet(max_load, wait_s, say)
    return loadavg()


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat; 0 where there is none)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = f[3] + (f[4] if len(f) > 4 else 0)          # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds so far of ``root`` and every live process below it (/proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return out


def is_disturbed(foreign_cpu_s: float, wall_s: float) -> bool:
    """Did other programs use enough CPU during a measurement of ``wall_s`` to move it?"""
    return foreign_cpu_s > DISTURBED_SHARE * wall_s + DISTURBED_SLACK_S


class OthersCpu:
    """``with OthersCpu() as o: ...`` -> ``o.cpu_s``: CPU time other programs used meanwhile.

    For a process that starts the measured programs itself (mpiexec, pools): the machine's busy
    time minus what this process and its descendants used; the descendants are sampled every 20 ms,
    so at most the last 20 ms of each one's life is missed."""

    cpu_s: float = 0.0
    wall: float = 0.0

    def __enter__(self) -> "OthersCpu":
        self.me = os.getpid()
        self.start_self = tree_cpu_s(self.me).get(self.me, 0.0)
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.busy, self.t = busy_cpu_s(), time.perf_counter()
        self.sampler.start()
        return self

    def _sample(self) -> None:
        while True:
            for pid, cpu in tree_cpu_s(self.me).items():
                self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))
            if self.done.wait(0.02):
                return

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.sampler.join()
        self.wall = time.perf_counter() - self.t
        busy = busy_cpu_s() - self.busy
        mine = sum(cpu for pid, cpu in self.seen.items() if pid != self.me)
        mine += tree_cpu_s(self.me).get(self.me, 0.0) - self.start_self
        self.cpu_s = max(0.0, busy - mine)

    @property
    def disturbed(self) -> bool:
        return is_disturbed(self.cpu_s, self.wall)


# ---- the same inside one MPI launch (``hpcdist bench strong|weak``): every rank is one of ours ----

Snapshot = tuple[str, float, float, float]   # host, this rank's CPU s, the machine's busy CPU s, time


def snapshot() -> Snapshot:
    """This rank's side of a collective measurement of the others' CPU time."""
    return socket.gethostname(), time.process_time(), busy_cpu_s(), time.perf_counter()


def others_cpu_s(before: Sequence[Snapshot], after: Sequence[Snapshot]) -> dict[str, Any]:
    """From every rank's snapshot before and after (gathered, in rank order): the CPU seconds other
    programs used on the busiest host, the wall time, and whether that disturbed the measurement.
    A host's busy time is read by its first rank; all of a host's ranks count as ours."""
    hosts: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, (b, a) in enumerate(zip(before, after)):
        host = b[0]
        first.setdefault(host, i)
        hosts[host] = hosts.get(host, 0.0) + (a[1] - b[1])
    foreign = max(max(0.0, (after[i][2] - before[i][2]) - hosts[h]) for h, i in first.items())
    wall = max(a[3] - b[3] for b, a in zip(before, after))
    return {"foreign_cpu_s": foreign, "wall_s": wall, "disturbed": is_disturbed(foreign, wall)}
