"""The MPI world: rank and size, collective verdicts, and ending every rank when one fails.

mpi4py is imported at top level here and in the modules that move bytes between ranks
(:mod:`hpcdist.reduce`, :mod:`hpcdist.control`, :mod:`hpcdist.schedule.window`). Plain ``python`` (no launcher) runs as a
one-rank singleton, so everything here works with and without ``mpiexec``/``srun``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, TypeVar

import numpy as np
from mpi4py import MPI

from hpcdist import mpi_shm
from hpcdist.errors import EXIT_FAILURE, EXIT_USAGE, JobError, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """A communicator plus the facts about it that the runtime needs."""

    comm: MPI.Intracomm

    @property
    def rank(self) -> int:
        return self.comm.Get_rank()

    @property
    def size(self) -> int:
        return self.comm.Get_size()

    @cached_property
    def node_comm(self) -> MPI.Intracomm:
        """The ranks that share this rank's node (shared-memory domain)."""
        return self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)

    @property
    def node_rank(self) -> int:
        return self.node_comm.Get_rank()

    @property
    def node_size(self) -> int:
        return self.node_comm.Get_size()

    @cached_property
    def nodes(self) -> int:
        """How many distinct nodes the world spans."""
        leaders = 1 if self.node_rank == 0 else 0
        return self.comm.allreduce(leaders)

    def barrier(self) -> None:
        self.comm.Barrier()

    def wtime(self) -> float:
        return MPI.Wtime()

    def synced_wtime(self) -> float:
        """``MPI.Wtime`` after a barrier: the start or end of a region timed across all ranks."""
        self.comm.Barrier()
        return MPI.Wtime()

    def agree(self, decide: Callable[[], T]) -> T:
        """Run ``decide`` on rank 0 only and give every rank its value, or the same UserError.

        Used for validating user input before any other collective, so a bad input yields one
        message and exit code 2 on every rank instead of N tracebacks or a hang.
        """
        verdict: tuple[str, object]
        if self.rank == 0:
            try:
                verdict = ("ok", decide())
            except UserError as exc:
                verdict = ("error", str(exc))
        else:
            verdict = ("", None)
        if self.size > 1:
            verdict = self.comm.bcast(verdict, root=0)
        kind, value = verdict
        if kind == "error":
            raise UserError(str(value), agreed=True)
        return value  # type: ignore[return-value]

    def max_over_ranks(self, value: float) -> float:
        return self.comm.allreduce(value, op=MPI.MAX) if self.size > 1 else value


Poll = Callable[[], None]
POLL_SLEEP_S = 0.0005
ABORT_GRACE_S = 0.25   # seen under load: a message printed right before MPI_Abort never reached mpiexec


def wait(request: MPI.Request, poll: Poll | None = None) -> None:
    """Complete ``request`` while calling ``poll`` (signal checks, checkpoint traffic) meanwhile.

    Ranks never sit in a blocking MPI call while another rank might need them to react.
    """
    if poll is None:
        request.Wait()
        return
    while not request.Test():
        poll()
        time.sleep(POLL_SLEEP_S)


def recv_bytes(comm: MPI.Intracomm, source: int, tag: int, poll: Poll | None = None) -> np.ndarray:
    """Receive one byte message of unknown length, polling while it has not arrived."""
    status = MPI.Status()
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if poll is None:
            comm.Probe(source=source, tag=tag, status=status)
            break
        poll()
        time.sleep(POLL_SLEEP_S)
    buf = np.empty(status.Get_count(MPI.BYTE), dtype=np.uint8)
    comm.Recv([buf, MPI.BYTE], source=status.Get_source(), tag=tag)
    return buf


def world() -> World:
    """The world of this process (``MPI.COMM_WORLD``). Collective on the first call.

    The first call also drops the names of MPI's shared-memory files that nobody will open by name
    again (see :mod:`hpcdist.mpi_shm`), so no ending of the run can leave them in /dev/shm: MPICH's
    per-node segment once every rank has passed MPI_Init, and in a world of one rank all of them
    (an Open MPI singleton leaves its 16 MB segment even after MPI_Finalize).
    """
    global _init_segment_released
    w = World(MPI.COMM_WORLD)
    if not _init_segment_released:
        if w.size > 1:
            w.comm.Barrier()  # every rank has attached the segment: it is only ever opened in MPI_Init
            mpi_shm.unlink_mapped(mpi_shm.AFTER_INIT)
        else:
            mpi_shm.unlink_mapped(mpi_shm.ON_EXIT)  # no other process will ever attach them
    _init_segment_released = True
    return w


_init_segment_released = False


def mpi_library() -> str:
    """One line naming the MPI library, e.g. ``MPICH Version: 4.2.0``.

    Open MPI's string ends in a NUL byte (a C terminator counted in its length); HDF5 string
    attributes refuse embedded NULs, so it is cut at the first one.
    """
    text = MPI.Get_library_version().split("\0", 1)[0]
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else "unknown MPI"


def run_spmd(main: Callable[[], int], comm: MPI.Intracomm | None = None) -> int:
    """Run ``main`` on this rank so that an error on any rank ends all ranks, never a hang.

    - UserError agreed by all ranks: rank 0 prints one line, every rank returns 2.
    - UserError on one rank only: that rank prints ``rank N: error: ...`` and aborts the job (2).
    - JobError (a bug in the job that hpcdist caught): that rank prints one line and aborts (1).
    - Any other exception: that rank prints its traceback once, each line prefixed with its rank,
      hpcdist's frames folded away (:mod:`hpcdist.failures`), and aborts (1).
    """
    comm = comm or MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        return main()
    except UserError as exc:
        if exc.agreed:
            if rank == 0:
                print(f"hpcdist: error: {exc}", file=sys.stderr, flush=True)
            return EXIT_USAGE
        prefix = f"rank {rank}: " if size > 1 else ""
        print(f"hpcdist: {prefix}error: {exc}", file=sys.stderr, flush=True)
        return _abort(comm, EXIT_USAGE)
    except JobError as exc:
        # Ranks often find the same bug at once (every rank combines): the lowest-numbered reports
        # and the others give its MPI_Abort a moment to end them first, so the user reads one line.
        time.sleep(min(1.0, 0.2 * rank) + (ABORT_GRACE_S if rank else 0.0))   # outlast rank 0's grace
        prefix = f"rank {rank}: " if size > 1 else ""
        print(f"hpcdist: {prefix}error: {exc}", file=sys.stderr, flush=True)
        return _abort(comm, EXIT_FAILURE)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure must end all ranks
        from hpcdist.failures import report

        sys.stderr.write(report(exc, rank))
        sys.stderr.flush()
        return _abort(comm, EXIT_FAILURE)


def _abort(comm: MPI.Intracomm, code: int) -> int:
    """End every rank now. A singleton just returns its exit code (nothing else can hang)."""
    if comm.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        mpi_shm.unlink_mapped(mpi_shm.ON_EXIT)  # Abort skips MPI_Finalize, which would unlink them
        time.sleep(ABORT_GRACE_S)   # the launcher forwards what this rank printed before it kills the job
        comm.Abort(code)
        os._exit(code)  # Abort does not return; this is belt and braces.
    return code


def leave(code: int) -> int:
    """End this rank with ``code`` after every rank agreed to stop (exit 75), through MPI_Finalize.

    Every rank is here, and the stop has read every control message and completed every send
    (:mod:`hpcdist.control`), so MPI_Finalize returns and removes MPI's files in /dev/shm. Without
    it the first rank to end makes MPICH's launcher SIGKILL the ranks still leaving, and the job's
    status becomes 9 instead of 75 (about 1 run in 12 at 4 ranks on 2 cores). A watchdog ends the
    rank with ``code`` (and no MPI file left) if finalizing takes longer than ``LEAVE_GRACE_S``:
    a stop must never become a hang. A singleton just returns ``code``.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if MPI.COMM_WORLD.Get_size() > 1:
        watchdog = threading.Timer(LEAVE_GRACE_S, _leave_now, (code,))
        watchdog.daemon = True
        watchdog.start()
        MPI.Finalize()
        watchdog.cancel()
    return code


LEAVE_GRACE_S = 30.0


def _leave_now(code: int) -> None:
    """The watchdog's way out: what MPI_Finalize would have removed, then the exit."""
    mpi_shm.unlink_mapped(mpi_shm.ON_EXIT)
    os._exit(code)
