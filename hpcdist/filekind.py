"""What kind of file is at a path: an hpcdist result, a checkpoint, some other HDF5 file, ...

``hpcdist info`` and ``inspect`` use it to refuse the wrong kind of file in one line, and ``run``
uses it so that ``--output`` and ``--checkpoint`` never replace or delete a file that hpcdist did
not write.
"""

from __future__ import annotations

import os
from enum import Enum

import h5py

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CHECKPOINT_FORMAT = "hpcdist-checkpoint"
CHECKPOINT_TRAILER = b"HPCDIST-SHA256:"
_RESULT_ATTRS = ("job", "hpcdist_version")


class Kind(Enum):
    MISSING = "no such file"
    DIRECTORY = "a directory"
    EMPTY = "an empty file"
    RESULT = "an hpcdist result file"
    CHECKPOINT = "an hpcdist checkpoint"
    DAMAGED_HDF5 = "an HDF5 file that cannot be opened (truncated or damaged?)"
    OTHER_HDF5 = "an HDF5 file that hpcdist did not write"
    NOT_HDF5 = "not an HDF5 file"


def file_kind(path: str) -> Kind:
    """Classify ``path`` without trusting it: only the signature, the root attributes and the trailer."""
    if not os.path.exists(path):
        return Kind.MISSING
    if os.path.isdir(path):
        return Kind.DIRECTORY
    size = os.path.getsize(path)
    if size == 0:
        return Kind.EMPTY
    if not _has_signature(path, size):
        return Kind.CHECKPOINT if _has_trailer(path, size) else Kind.NOT_HDF5
    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            if attrs.get("format") == CHECKPOINT_FORMAT:
                return Kind.CHECKPOINT
            if all(name in attrs for name in _RESULT_ATTRS):
                return Kind.RESULT
            return Kind.OTHER_HDF5
    except (OSError, KeyError, ValueError, TypeError, RuntimeError):
        return Kind.CHECKPOINT if _has_trailer(path, size) else Kind.DAMAGED_HDF5


_WANTED = {
    Kind.RESULT: ("result file", "hpcdist run --output", "info", "no job and hpcdist_version attributes"),
    Kind.CHECKPOINT: ("checkpoint", "hpcdist run --checkpoint", "inspect", "no format attribute"),
}


def not_what_was_wanted(path: str, kind: Kind, wanted: Kind) -> str:
    """One line for ``hpcdist info``/``inspect`` given the wrong kind of file: what it is, what was expected."""
    noun, writer, _, missing = _WANTED[wanted]
    expected = f"expected a {noun} written by {writer}"
    if kind is Kind.MISSING:
        return f"{path}: no such file"
    if kind in _WANTED and kind is not wanted:
        other_noun, _, other_command, _ = _WANTED[kind]
        return f"{path}: an hpcdist {other_noun}, not a {noun}; use hpcdist {other_command} {path}"
    if kind is Kind.OTHER_HDF5:
        return f"{path}: an HDF5 file but not an hpcdist {noun.split()[0]} ({missing}); {expected}"
    return f"{path}: {kind.value}; {expected}"


def _has_signature(path: str, size: int) -> bool:
    """HDF5's signature sits at 0, 512, 1024, 2048, ... (after a user block)."""
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_SIGNATURE)) == _SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _has_trailer(path: str, size: int) -> bool:
    """A checkpoint ends with ``HPCDIST-SHA256:<64 hex>\\n`` (see hpcdist.checkpoint.store)."""
    tail = len(CHECKPOINT_TRAILER) + 64 + 1
    if size < tail:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - tail)
        return fh.read(tail).startswith(CHECKPOINT_TRAILER)
