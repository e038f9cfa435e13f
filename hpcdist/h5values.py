"""Numpy values <-> HDF5 datasets, strings included, giving back the very array that was stored.

Results may be strings (a ``str``, a list of ``str``, a numpy ``U`` or ``S`` array). HDF5 has no
numpy-``U`` type, so strings are stored as variable-length UTF-8 with the numpy dtype (``<U5``,
``|S3``) in an attribute; reading restores it, so ``hpcdist info`` prints what the run printed.
Numbers are stored as they are, bit for bit.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

STRING_DTYPE_ATTR = "numpy_dtype"


def storable(name: str, value: Any) -> tuple[np.ndarray, str | None]:
    """The array h5py writes for ``value``, and the numpy dtype to restore (strings only).

    Raises TypeError, naming the result, for a value HDF5 cannot hold (a job's bug)."""
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        try:
            text = arr if arr.dtype.kind == "U" else np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            raise TypeError(f"result {name!r}: bytes that are not UTF-8 text cannot be stored; "
                            f"return str or numbers") from None
        strings = text.astype(object)
        if any("\0" in s for s in strings.reshape(-1)):
            raise TypeError(f"result {name!r}: a string with a NUL character cannot be stored in HDF5")
        return np.asarray(strings, dtype=h5py.string_dtype("utf-8")), arr.dtype.str
    if arr.dtype.kind not in "biufcV":
        raise TypeError(f"result {name!r} has numpy dtype {arr.dtype} ({type(value).__name__}), which HDF5 "
                        f"cannot store; return numbers or strings")
    return arr, None


def is_string(arr: np.ndarray) -> bool:
    return h5py.check_string_dtype(arr.dtype) is not None


def mark(ds: h5py.Dataset, numpy_dtype: str | None) -> None:
    """Record the numpy dtype of a string dataset (no-op for numbers)."""
    if numpy_dtype is not None:
        ds.attrs[STRING_DTYPE_ATTR] = numpy_dtype


def restore(ds: h5py.Dataset, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The array :func:`storable` was given (``shape`` reshapes, for datasets stored flat)."""
    numpy_dtype = ds.attrs.get(STRING_DTYPE_ATTR)
    if numpy_dtype is None:
        arr = ds[()]
    else:
        dtype = np.dtype(numpy_dtype.decode() if isinstance(numpy_dtype, bytes) else str(numpy_dtype))
        text = np.asarray(ds.asstr()[()], dtype=object)
        arr = np.char.encode(text.astype(str), "utf-8").astype(dtype) if dtype.kind == "S" else text.astype(dtype)
    return arr if shape is None else arr.reshape(shape)
