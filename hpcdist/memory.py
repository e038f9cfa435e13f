"""Keep freed memory in the process: big temporaries are reused instead of faulted in again.

glibc returns every allocation above 128 KB-32 MB to the kernel when it is freed (``mmap`` /
``munmap``) and trims the heap's top; the next array of that size is faulted in page by page. On a
VM whose balloon device hands freed pages back to the host, writing into them again costs ~1.3
s/GiB (measured here): a group-by that merges partials of 10^6 keys, each merge creating tens of
16 MB temporaries, spent most of its time in those faults. Many HPC codes run with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1`` for the same reason (and for RDMA registration
caches); this sets the same from inside the process, once, where glibc is the allocator. The price:
the process's resident size stays at its peak until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def keep_freed_memory() -> bool:
    """Serve every allocation from the heap and never trim it (glibc); False where not possible."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False                     # not glibc (musl, macOS): the default allocator stays
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
