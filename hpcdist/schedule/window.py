"""The dynamic schedule's words in an MPI-3 window: allocation, atomic accessors, the end of a
pass (NBX) and freeing it. See docs/schedule.md ("Progress").

mpi4py is imported when a window is opened, not at import: :mod:`hpcdist.comm` stays the only
module importing it at top level, and the claiming logic is testable without MPI.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from hpcdist.schedule.claiming import Request


class WindowWords:
    """:class:`~hpcdist.schedule.claiming.Words` in an MPI-3 window: two int64 per rank (range
    word, ns per shard), passive target, every operation flushed. Opening it is collective."""

    def __init__(self, comm: Any, first_word: int) -> None:
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        info = MPI.Info.Create()
        info.Set("accumulate_ordering", "none")   # each op is flushed on its own; no ordering needed
        info.Set("same_size", "true")
        info.Set("same_disp_unit", "true")
        self.win = MPI.Win.Allocate(16, 8, info, comm)   # collective
        info.Free()
        self.win.Lock_all(MPI.MODE_NOCHECK)
        self._locked = True
        mem = np.frombuffer(self.win.tomemory(), dtype=np.int64)
        mem[0], mem[1] = first_word, 0
        self.win.Sync()
        comm.Barrier()                  # nobody reads a word before its owner wrote it
        self.win.Sync()
        self._t = MPI.INT64_T
        self._two = np.zeros(2, np.int64)
        self._res2 = np.zeros(2, np.int64)
        self._org = np.zeros(1, np.int64)
        self._cmp = np.zeros(1, np.int64)
        self._res = np.zeros(1, np.int64)

    def read(self, rank: int) -> tuple[int, int]:
        """Both of ``rank``'s words, atomically (``Get_accumulate`` with ``NO_OP``)."""
        self.win.Get_accumulate([self._two, self._t], [self._res2, self._t], rank, (0, 2, self._t),
                                self.MPI.NO_OP)
        self.win.Flush(rank)
        return int(self._res2[0]), int(self._res2[1])

    def cas(self, rank: int, compare: int, new: int) -> int:
        """Compare-and-swap ``rank``'s range word; returns the value it held."""
        self._org[0], self._cmp[0] = new, compare
        self.win.Compare_and_swap([self._org, self._t], [self._cmp, self._t], [self._res, self._t], rank, 0)
        self.win.Flush(rank)
        return int(self._res[0])

    def set_speed(self, rank: int, ns_per_shard: int) -> None:
        """Publish ``rank``'s speed word (``Accumulate`` with ``REPLACE``)."""
        self._org[0] = ns_per_shard
        self.win.Accumulate([self._org, self._t], rank, (1, 1, self._t), self.MPI.REPLACE)
        self.win.Flush(rank)

    def enter_dry(self) -> Request:
        """The NBX end of a pass: a non-blocking barrier every rank enters when it finds nothing."""
        return self.comm.Ibarrier()

    def close(self, poll: Callable[[], None] | None = None) -> None:
        """Collective: end this rank's access epoch, wait (answering ``poll``) until every rank has
        done the same, then free the window. Nobody blocks in ``Win.Free`` while a thief needs it."""
        self._unlock()
        if self.comm.Get_size() > 1:
            from hpcdist.comm import wait
            wait(self.comm.Ibarrier(), poll)
        self._free()

    def abandon(self) -> None:
        """Leaving on an exception: alone, free the window; with other ranks, leave it (freeing is
        collective and they may never arrive; the process is about to end)."""
        if self.comm.Get_size() == 1:
            self._unlock()
            self._free()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            self.win.Unlock_all()

    def _free(self) -> None:
        self._unlock()
        if self.win:
            self.win.Free()
