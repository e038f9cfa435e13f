"""The shared-memory files an MPI library leaves in /dev/shm when ranks end without MPI_Finalize.

Such files hold RAM until reboot. Two kinds, two moments to unlink them:

- MPICH (ch4) makes one segment per node in ``MPI_Init``, ``/dev/shm/mpich_shm_<id>_0`` (2-3 MB),
  which every local rank attaches *inside* ``MPI_Init`` and nobody opens by name again; only
  ``MPI_Finalize`` unlinks it. So once every rank has passed ``MPI_Init`` (a barrier), the name can
  go: the mappings stay valid and the kernel frees the memory when the last rank exits, however it
  exits (an abort, a kill; exit 75 finalizes). Its MPI-3 window segments (``mpich_shar_tmp*``) are already
  unlinked by MPICH right after they are attached.
- Open MPI (btl/sm) gives each rank a segment ``sm_segment.<host>.<uid>.<job>.<rank>`` that peers
  attach by name at their first message: it must keep its name while the job runs, so a rank that
  leaves without ``MPI_Finalize`` unlinks the ones it maps. A singleton (no launcher) leaves its
  16 MB segment even after ``MPI_Finalize``; in a world of one rank nobody else attaches it, so it
  goes at once.

Only files this process has mapped are touched (read from ``/proc/self/maps``), never another
job's. Where there is no /proc (not Linux) nothing happens.
"""

from __future__ import annotations

import os

SHM_DIR = "/dev/shm"
# attached by every local rank within MPI_Init and never again by name: safe to unlink after it
AFTER_INIT = ("mpich_shm_",)
# any MPI library's files (MPICH, UCX under MPICH, Open MPI 5 and 4): unlinked when leaving early
ON_EXIT = ("mpich_", "ucx_", "sm_segment.", "vader_segment.")


def mapped_files(maps: str) -> list[str]:
    """The /dev/shm files named in a ``/proc/PID/maps`` text that still have a name, in order."""
    found: list[str] = []
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        path = parts[5].strip()
        if path.endswith("(deleted)") or os.path.dirname(path) != SHM_DIR:
            continue
        if path not in found:
            found.append(path)
    return found


def unlink_mapped(prefixes: tuple[str, ...], maps_path: str = "/proc/self/maps") -> list[str]:
    """Unlink this process's mapped /dev/shm files whose names start with ``prefixes``.

    Returns the paths unlinked. Never raises: this runs on the way out of a failing job, and a
    file another local rank unlinked first is simply gone.
    """
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as fh:
            maps = fh.read()
    except OSError:
        return []
    removed = []
    for path in mapped_files(maps):
        if os.path.basename(path).startswith(prefixes):
            try:
                os.unlink(path)
            except OSError:
                continue
            removed.append(path)
    return removed
