"""Load (or, once per cache directory, compile) the job's numba kernels before the first shard.

Every rank first calls the job's map on a tiny shard while refusing to compile: numba loads each
``cache=True`` kernel from its cache and, only on a miss, fires its ``numba:compile`` event, where
a listener stops the call before any work. So with a warm cache every rank loads
in parallel and no rank waits for another, at any rank count; no MPI message is involved.

A rank that found a miss takes turns through a lock file in numba's cache directory
(``NUMBA_CACHE_DIR``): the first to take it compiles (numba writes its result into the cache);
the others wait for the lock to be released and then retry loading, again in parallel. So "one
compiler per shared cache directory" is found by the file system itself: ranks of one node share
a node-local directory, and ranks of many nodes share one on a parallel file system. Where the
file system refuses locks, each rank compiles for itself (correct, only slower).

Kernels without ``cache=True`` cannot be loaded, so they are simply compiled, without turns.
``hpcdist compile JOB.py`` runs this once (per node, from the Slurm scripts) before the job starts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from hpcdist.context import ShardContext
from hpcdist.job import Job
from hpcdist.sources import Source

LOCK_NAME = ".hpcdist-compile.lock"
WARM_ROWS = 16


@dataclass
class WarmUp:
    """What warming up did on this rank: seconds spent, and whether it compiled anything."""

    seconds: float = 0.0
    compiled: bool = False
    waited: bool = False


class _NeedsCompile(Exception):
    """A cached kernel was not in numba's cache (raised from numba's compile event, before compiling)."""


def warm_up(job: Job, source: Source, base: ShardContext) -> WarmUp:
    """Run the job's map once on the first few rows so every kernel is loaded (or compiled)."""
    rows = min(source.rows, WARM_ROWS)
    tiny = source.read(0, rows, source.empty(rows))
    ctx = replace(base, index=0, start=0, stop=rows)
    return warm(lambda: job.map(tiny, ctx))


def warm(call: Callable[[], object], lock_path: str | None = None) -> WarmUp:
    """Call ``call`` until it ran without compiling, compiling under the cache directory's lock if needed."""
    result, t0 = WarmUp(), time.perf_counter()
    path = lock_path or compile_lock_path()
    while True:
        if _try_loading(call):
            break
        fd = _open_lock(path)
        if fd is None:                      # no locks here: compile without taking turns
            call()
            result.compiled = True
            break
        try:
            if _lock(fd, blocking=False):
                call()                      # loads what others cached, compiles the rest
                result.compiled = True
                break
            result.waited = True
            _lock(fd, blocking=True, shared=True)   # someone compiles: wait, then load theirs
        finally:
            os.close(fd)                    # closing releases the lock
    result.seconds = time.perf_counter() - t0
    return result


def compile_lock_path() -> str:
    """The lock file shared by every process using the same numba cache directory."""
    from numba.core import config

    cache_dir = config.CACHE_DIR or os.environ.get("NUMBA_CACHE_DIR", "")
    if cache_dir:
        try:
            os.makedirs(cache_dir, exist_ok=True)
            return os.path.join(cache_dir, LOCK_NAME)
        except OSError:
            pass                            # not writable: numba will not cache there either
    return os.path.join(tempfile.gettempdir(), f"hpcdist-numba-{os.getuid()}{LOCK_NAME}")


def _try_loading(call: Callable[[], object]) -> bool:
    from numba.core import event

    with event.install_listener("numba:compile", _refusing_listener()):
        try:
            call()
        except _NeedsCompile:
            return False
    return True


def _open_lock(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None


def _lock(fd: int, blocking: bool, shared: bool = False) -> bool:
    """Take the lock; False if another process holds it (non-blocking). Unsupported locks count as taken."""
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return True                         # ENOLCK/EINVAL/ENOSYS: the file system has no locks
    return True


def _refusing_listener() -> Any:
    """A numba event listener that stops a compile of a ``cache=True`` kernel before it starts.

    Built on first use so that importing this module does not import numba (numba_env must run first)."""
    from numba.core.caching import NullCache
    from numba.core.event import Listener

    class RefuseCompile(Listener):
        def on_start(self, event: Any) -> None:
            dispatcher = (event.data or {}).get("dispatcher")
            if dispatcher is not None and not isinstance(getattr(dispatcher, "_cache", None), NullCache):
                raise _NeedsCompile(getattr(dispatcher, "__qualname__", "a kernel"))

        def on_end(self, event: Any) -> None:
            pass

    return RefuseCompile()
