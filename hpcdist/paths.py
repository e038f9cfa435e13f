"""The files a run reads and the files it writes never meet, and it replaces only its own files.

Why: ``--output data.h5`` on the input (typed the same, ``./``-prefixed, through a symbolic or a
hard link, or a file the input reaches through an HDF5 external link) used to replace the user's
data with the results, exit 0. Rank 0 calls :func:`refuse_overlaps` and :func:`refuse_foreign`
before any work; a refusal is one line (UserError, exit 2) and nothing has been touched.
Files are compared by real path *and* by ``(st_dev, st_ino)``, so every kind of link counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from hpcdist import atomic
from hpcdist.errors import UserError
from hpcdist.filekind import Kind, file_kind


@dataclass(frozen=True)
class _Name:
    """One path a write target uses: the file itself, its previous generation, its temporary files."""

    path: str
    role: str = ""              # "" for the file itself, else e.g. "its previous generation"
    temp_prefix: bool = False   # path is (directory, prefix) of temporary names, not one file


def refuse_overlaps(spec: str, inputs: Sequence[str], output: str | None, checkpoint: str | None) -> None:
    """Raise UserError if ``--output`` or ``--checkpoint`` (or a file either writes) is an input
    file, or if the output is the checkpoint. ``inputs`` are every file the input ``spec`` reads."""
    typed = _typed_path(spec)
    reads = [(path, _input_label(path, typed, spec), _as_typed(path, typed)) for path in inputs]
    targets = [("--output", "output", output, _names(output, with_previous=False)),
               ("--checkpoint", "checkpoint", checkpoint, _names(checkpoint, with_previous=True))]
    for flag, noun, given, names in targets:
        if given is None:
            continue
        for name in names:
            for path, label, as_typed in reads:
                reason = _same(name, path, as_typed)
                if reason:
                    raise UserError(f"{flag} {given}{_via(name)} is {label} ({reason}); "
                                    f"choose another {noun} path")
    if output is not None and checkpoint is not None:
        for name in _names(checkpoint, with_previous=True):
            reason = _same(name, output, output)
            if reason:
                what = f"the checkpoint file {checkpoint}" if not name.role else \
                    f"the checkpoint's {name.role.removeprefix('its ')} {name.path}"
                raise UserError(f"--output {output} is {what} ({reason}); choose another output path")


def refuse_foreign(output: str | None, checkpoint: str | None) -> None:
    """Raise UserError if ``--output`` or ``--checkpoint`` names an existing file hpcdist did not
    write: the output would replace it, and a checkpoint is renamed, replaced and finally deleted."""
    if output is not None:
        kind = file_kind(output)
        if kind not in (Kind.MISSING, Kind.EMPTY, Kind.RESULT, Kind.DIRECTORY):
            raise UserError(f"--output {output} exists and is {kind.value}, not an hpcdist result: hpcdist "
                            f"replaces only its own results; remove it or choose another output path")
    if checkpoint is not None:
        for path in (checkpoint, checkpoint + ".prev"):
            kind = file_kind(path)
            if kind not in (Kind.MISSING, Kind.EMPTY, Kind.CHECKPOINT, Kind.DAMAGED_HDF5, Kind.DIRECTORY):
                raise UserError(f"--checkpoint {checkpoint}: {path} exists and is {kind.value}, not an hpcdist "
                                f"checkpoint: hpcdist replaces and deletes only its own checkpoints; remove it "
                                f"or choose another checkpoint path")


def _names(path: str | None, with_previous: bool) -> list[_Name]:
    if path is None:
        return []
    names = [_Name(path), _Name(path, "its temporary files", temp_prefix=True)]
    if with_previous:
        names.insert(1, _Name(path + ".prev", "its previous generation"))
    return names


def _same(name: _Name, other: str, typed_other: str | None) -> str | None:
    """Why ``name`` (a path hpcdist would write) is the file ``other`` (typed ``typed_other``), or None."""
    real = os.path.realpath(other)
    if name.temp_prefix:
        directory, prefix = atomic.temp_prefix(name.path)
        if os.path.dirname(real) == os.path.realpath(directory) and os.path.basename(real).startswith(prefix):
            return "a temporary name hpcdist writes under"
        return None
    if os.path.realpath(name.path) == real:
        plain = os.path.abspath(name.path) == os.path.abspath(typed_other or other)
        return "same file" if plain else "the same file through a symbolic link"
    try:
        a, b = os.stat(name.path), os.stat(other)
    except OSError:
        return None
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        return "the same file through a hard link"
    return None


def _via(name: _Name) -> str:
    if not name.role:
        return ""
    if name.temp_prefix:
        return f" (through {name.role}, {atomic.temp_prefix(name.path)[1]}*)"
    return f" (through {name.role}, {name.path})"


def _typed_path(spec: str) -> str | None:
    """The file name as the user typed it in ``--input``, or None for generated data."""
    if spec.startswith(("synthetic:", "range:")):
        return None
    if spec.endswith(".npy"):
        return spec
    path, sep, _ = spec.rpartition(":")
    return path if sep else spec


def _as_typed(path: str, typed: str | None) -> str | None:
    """The name the user typed for the input file ``path``, if it is the one named in --input."""
    return typed if typed is not None and os.path.realpath(typed) == os.path.realpath(path) else None


def _input_label(path: str, typed: str | None, spec: str) -> str:
    if _as_typed(path, typed) is not None:
        return f"the input file {typed}"
    return f"{path}, a file the input {spec} reads"
