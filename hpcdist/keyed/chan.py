"""Chan et al.'s merge of two group-by partials (count, sum, mean, M2, min, max per key and column).

The ``combine`` of jobs/groupby.py. Here, in a package module, because numba's cache of a function
refers to its module by name: a kernel in a job file loaded under two names (by hpcdist and by a
test or script) would leave a cache entry the other cannot load.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpcdist.kernels import lean_load

NAMES = ("count", "sum", "mean", "m2", "min", "max")   # a partial's fields, in the kernels' order


@njit(cache=True, nogil=True)
def _chan(ca, sa, ma, qa, la, ha, cb, sb, mb, qb, lb, hb, count, total, mean, m2, lo, hi):
    for i in range(ca.shape[0]):
        for j in range(ca.shape[1]):
            n = ca[i, j] + cb[i, j]
            share = cb[i, j] / n if n > 0 else 0.0
            delta = mb[i, j] - ma[i, j]
            count[i, j] = n
            total[i, j] = sa[i, j] + sb[i, j]
            mean[i, j] = ma[i, j] + delta * share
            m2[i, j] = qa[i, j] + qb[i, j] + delta * delta * (ca[i, j] * share)
            lo[i, j] = np.fmin(la[i, j], lb[i, j])
            hi[i, j] = np.fmax(ha[i, j], hb[i, j])


def chan_combine(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two partials of :func:`group_stats_of` (rows aligned, ``a`` from earlier shards) merged
    with Chan et al.'s update for mean and M2, in one numba pass (numpy's expression made ~14
    temporaries of the partials' size)."""
    ins = [np.ascontiguousarray(a[name]) for name in NAMES] + [np.ascontiguousarray(b[name]) for name in NAMES]
    out = {name: np.empty(a["sum"].shape, dtype=np.int64 if name == "count" else np.float64) for name in NAMES}
    _chan(*ins, *(out[name] for name in NAMES))
    return out


lean_load(_chan)      # arrays only, called from Python: loaded without numba's compiler start-up
