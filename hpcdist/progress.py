"""The live progress line on rank 0's stderr.

It only reads what rank 0 already knows: its own shard count and the counts of the other ranks,
which come up the control tree in collection rounds (:mod:`hpcdist.control`): each rank adds its
count when it next polls, one message per child of rank 0 per interval (ceil(log2 P), not P - 1).
No collective, no barrier, nobody waits, nothing per row.

On a terminal the line is redrawn in place about once a second; anywhere else (Slurm logs, pipes)
one plain line is written every 30 s, so logs stay readable. ``--progress=SECONDS`` forces plain or
in-place lines at that interval, ``--no-progress`` turns it off.

The renderer is a few lines of our own rather than tqdm or rich: neither is installed with
hpcdist, the line's fields (slowest rank, GB/s, pass i/n) need a custom format either way, and
the non-terminal mode (one complete line every 30 s, nothing else) is not how tqdm writes to a
pipe (it still writes carriage returns at its own interval).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

TTY_INTERVAL_S = 1.0
LOG_INTERVAL_S = 30.0

Progress = float | bool | None   # None: auto; False: off; a number: forced on, every that many seconds


def interval(setting: Progress, stream: TextIO | None = None) -> float | None:
    """Seconds between progress lines for ``setting``, or None when there are none."""
    if setting is False:
        return None
    if setting is True:
        return TTY_INTERVAL_S
    if setting is None:
        stream = stream or sys.stderr
        return TTY_INTERVAL_S if _is_tty(stream) else LOG_INTERVAL_S
    return max(float(setting), 0.05)


def report_interval(seconds: float | None, ranks: int) -> float | None:
    """How often rank 0 collects counts: the line's interval. A round costs rank 0 ceil(log2 P)
    messages and 24 bytes per rank whose count moved, so it needs no stretching with ``ranks``
    (it used to: one message per rank per interval)."""
    return seconds


def _is_tty(stream: TextIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class Work:
    """What the line counts against: the plan of one run."""

    shards: int
    shard_rows: int
    rows: int
    row_bytes: int
    multipass: bool
    unit: str = "shards"      # what is counted; "rows" for hpcdist gen (no passes then)


class ProgressLine:
    """Rank 0's line. Call :meth:`begin_pass` at each pass, :meth:`maybe_show` often (it is cheap
    until the interval has passed) and :meth:`close` at the end."""

    def __init__(self, work: Work, seconds: float, counts: Callable[[], list[int]],
                 stream: TextIO | None = None, label: str = "") -> None:
        self.work, self.seconds, self.counts = work, seconds, counts
        self.stream = stream or sys.stderr
        self.in_place = _is_tty(self.stream)
        self.label = label
        self.pass_index, self.pass_total, self.skipped = 0, 0, 0
        self._base: list[int] = []
        self._pass_start = self._last = time.monotonic()
        self._width = 0

    def begin_pass(self, pass_index: int, todo: int) -> None:
        """``todo``: shards mapped in this pass (fewer than the plan's when resumed)."""
        self.pass_index, self.pass_total = pass_index, todo
        self.skipped = self.work.shards - todo
        self._base = list(self.counts())
        self._pass_start = time.monotonic()     # the interval runs on across passes

    def maybe_show(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.seconds:
            self._last = now
            self.show(now)

    def show(self, now: float | None = None) -> None:
        counts = self.counts()
        done_by = [c - (self._base[r] if r < len(self._base) else 0) for r, c in enumerate(counts)]
        self._emit(self.format(done_by, (now or time.monotonic()) - self._pass_start))

    def format(self, done_by: list[int], elapsed: float) -> str:
        """The line for shards done per rank (this pass) after ``elapsed`` seconds of it."""
        w = self.work
        done = min(sum(done_by), self.pass_total)
        total = w.shards
        pct = 100.0 * (done + self.skipped) / total if total else 100.0
        rows = min(done * w.shard_rows, w.rows)
        rate = rows / elapsed if elapsed > 0 else 0.0
        per_shard = elapsed / done if done else math.inf
        eta = (self.pass_total - done) * per_shard
        passes = "?" if w.multipass else "1"
        parts = [f"pass {self.pass_index + 1}/{passes}"] if w.unit == "shards" else []
        parts += [f"{done + self.skipped:,}/{total:,} {w.unit} {pct:3.0f}%",
                 f"{_si(rate)} rows/s {rate * w.row_bytes / 1e9:.2f} GB/s",
                 f"ETA {_duration(eta)}"]
        if len(done_by) > 1:
            slow = min(range(len(done_by)), key=lambda r: done_by[r])
            behind = max(done_by) - done_by[slow]
            parts.append(f"slowest rank {slow} ({behind:,} shards behind)")
        return (f"{self.label}: " if self.label else "hpcdist: ") + ", ".join(parts)

    def close(self) -> None:
        """End an in-place line with a newline (plain lines already end with one)."""
        if self.in_place and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def _emit(self, line: str) -> None:
        if self.in_place:
            pad = " " * max(0, self._width - len(line))
            self.stream.write("\r" + line + pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Ticking:
    """A source whose reads advance a progress line counted in rows (``hpcdist gen``): the
    generator needs no change to be watched."""

    def __init__(self, source: Any, line: "ProgressLine") -> None:
        self.source, self.line, self.rows_done = source, line, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def read(self, start: int, stop: int, out: Any) -> Any:
        data = self.source.read(start, stop, out)
        self.rows_done += stop - start
        self.line.maybe_show()
        return data


def watch_rows(source: Any, setting: Progress, label: str) -> tuple[Any, "ProgressLine | None"]:
    """``source`` wrapped so its reads show a progress line (None: no line), and the line."""
    seconds = interval(setting)
    if seconds is None:
        return source, None
    work = Work(source.rows, 1, source.rows, source.row_bytes, False, unit="rows")
    holder: list[Ticking] = []
    line = ProgressLine(work, seconds, lambda: [holder[0].rows_done if holder else 0], label=label)
    line.begin_pass(0, source.rows)
    holder.append(Ticking(source, line))
    return holder[0], line


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
