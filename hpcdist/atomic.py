"""Atomic file writes: a file appears at its final path complete, or not at all.

Every file hpcdist writes (results, checkpoints, ``hpcdist gen`` output) goes through here: the
bytes go to a temporary name in the same directory (so the rename cannot cross filesystems), the
file is fsync'd, renamed over the final path, and the directory is fsync'd so the rename itself
survives a crash. On any failure the temporary file is removed and the final path is untouched.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator

TEMP_MARK = ".tmp-"


def temp_path(path: str) -> str:
    """The temporary name a write to ``path`` uses: hidden, same directory, unique per process."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}{TEMP_MARK}{os.getpid()}")


def temp_prefix(path: str) -> tuple[str, str]:
    """(directory, name prefix) shared by the temporary names of every process writing ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    return directory, f".{base}{TEMP_MARK}"


def fsync_path(path: str) -> None:
    """Flush a file (or a directory) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: str, previous: str | None = None) -> Iterator[str]:
    """Yield a temporary name to write; on success it becomes ``path``.

    With ``previous``, the file at ``path`` (if any) is first renamed to ``previous``, so the last
    good generation survives until the new one is in place. If the body or any step after it
    raises, the temporary file is removed and the exception propagates.
    """
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_path(tmp)
        if previous is not None and os.path.exists(path):
            os.replace(path, previous)
        os.replace(tmp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_bytes(path: str, data: bytes | Iterable[bytes], previous: str | None = None) -> None:
    """Write ``data`` (bytes, or pieces of it) atomically at ``path``; see :func:`replacing`."""
    pieces = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    with replacing(path, previous) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            for piece in pieces:
                view = memoryview(piece).cast("B")
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
