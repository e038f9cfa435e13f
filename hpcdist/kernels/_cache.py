"""Loading the kernels from numba's cache without numba's full start-up of its compiler.

numba's ``FunctionCache.load_overload`` first calls ``target_context.refresh()``: it imports and
registers every typing and lowering implementation numba has (numba.cpython.*, numba.np.*,
numba.typed.*, ~70 modules), which only a *compile* needs. On the development machine that is
~75% of the CPU a warm cache load costs (0.12 s of 0.16 s per process), paid by every rank at the
same moment. Loading cached machine code needs much less: the runtime (NRT, whose symbols the
code calls) and the cache file itself, whose environments import the modules they refer to.

:func:`lean_load` gives a kernel entry point a cache that does just that; the cache files are
numba's own (same index, same keys), so ``hpcdist compile`` and plain numba share them. On a miss
numba compiles as usual, and its compiler refreshes the context itself (``CompilerBase``).
Only kernels whose code needs nothing else are given it: hpcdist's own (arrays, math, no
strings, dicts or objects), called from Python. If numba's internals change, kernels keep numba's
own cache (correct, only slower).
"""

from __future__ import annotations

from typing import Any

from numba.core.caching import FunctionCache


class _LeanFunctionCache(FunctionCache):
    """numba's function cache, minus the compiler's refresh before a load."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        from numba.core.runtime import rtsys

        rtsys.initialize(target_context)          # the NRT symbols the cached code links against
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


def lean_load(dispatcher: Any) -> Any:
    """Give a ``cache=True`` entry point the lean cache (same files); returns the dispatcher."""
    cache = getattr(dispatcher, "_cache", None)
    if type(cache) is FunctionCache and hasattr(cache, "_load_overload") \
            and hasattr(cache, "_guard_against_spurious_io_errors"):
        dispatcher._cache = _LeanFunctionCache(dispatcher.py_func)
    return dispatcher
