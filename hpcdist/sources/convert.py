"""Stored dtypes -> what kernels take: native byte order, float16 -> float32, bool -> uint8.

Every conversion here is exact, so a converted dataset gives the bits a native copy of the same
values gives. A dtype with no exact conversion to a kernel type (long double, complex, strings,
compound, enum, dates) is refused with one line before any work.
"""

from __future__ import annotations

import numpy as np

from hpcdist.errors import UserError

_NON_NUMERIC = {"S": "byte strings", "U": "strings", "O": "objects: variable-length strings or references",
                "M": "dates", "m": "time spans"}


class Conversion:
    """How the stored rows become shard rows, applied once per shard into the shard buffer.

    Readers put the stored bytes into :meth:`raw` (the shard buffer itself, viewed as the stored
    dtype, when the item sizes agree; else a scratch buffer kept for the next shard) and then call
    :meth:`finish`.
    """

    def __init__(self, stored: np.dtype, where: str) -> None:
        self.stored = np.dtype(stored)
        self.target = kernel_dtype(self.stored, where)
        self.text = _describe(self.stored, self.target)
        self._scratch: np.ndarray | None = None

    @property
    def in_place(self) -> bool:
        return self.stored.itemsize == self.target.itemsize

    def raw(self, out: np.ndarray) -> np.ndarray:
        """A C-contiguous array of the stored dtype, shaped like ``out``, to read the stored bytes into."""
        if self.in_place:
            return out.view(self.stored)
        need = out.size
        if self._scratch is None or self._scratch.size < need:
            self._scratch = np.empty(need, dtype=self.stored)
        return self._scratch[:need].reshape(out.shape)

    def finish(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Turn the stored values in ``raw`` into kernel values in ``out``; returns ``out``."""
        if not self.in_place:
            np.copyto(out, raw)
        elif not self.stored.isnative and self.stored.itemsize > 1:
            out.byteswap(inplace=True)
        return out


def kernel_dtype(stored: np.dtype, where: str) -> np.dtype:
    """The native dtype kernels get for ``stored``, or a one-line UserError if there is none."""
    kind, size = stored.kind, stored.itemsize
    if kind in "iu" or (kind == "f" and size in (4, 8)):
        return stored.newbyteorder("=")
    if kind == "f" and size == 2:
        return np.dtype(np.float32)
    if kind == "b":
        return np.dtype(np.uint8)
    if kind == "f":
        raise UserError(f"{where}: dtype {stored.name} (long double) cannot be converted to float64 "
                        f"without loss; convert it first")
    if kind == "c":
        raise UserError(f"{where}: dtype {stored.name} is not supported: kernels take real numbers")
    raise UserError(f"{where}: dtype {_name(stored)} is not numeric (expected integers, floats or bools)")


def _name(dtype: np.dtype) -> str:
    if dtype.names:
        return f"compound {{{', '.join(dtype.names)}}}"
    if dtype.subdtype is not None:
        return f"array {dtype.subdtype[0]}{list(dtype.subdtype[1])}"
    what = _NON_NUMERIC.get(dtype.kind)
    return f"{dtype.str} ({what})" if what else f"{dtype.str} (opaque)"


def _describe(stored: np.dtype, target: np.dtype) -> str:
    """What was done, in a few words ("" when the stored values are the kernel values)."""
    if stored == target and stored.isnative:
        return ""
    how = []
    if stored.kind == "b":
        how.append("bool read as 0/1")
    elif stored.itemsize != target.itemsize:
        how.append(f"{stored.name} widened to {target.name} (exact)")
    if not stored.isnative and stored.itemsize > 1:
        how.append("byte order swapped to native")
    return f"{stored.str} -> {target.str}: {', '.join(how)}"
