"""Reduce by key: per-key partials folded over the fixed shard tree, shuffled to owner ranks.

- :mod:`.fold`: keyed partials and their merge (no MPI): the same bits at any rank count;
- :mod:`._merge`: the linear merge of two sorted key arrays and the row placement (numba);
- :mod:`.aggregate`: the numba kernel of jobs/groupby.py (count, sum, mean, M2, min, max per key);
- :mod:`.partition`: splitters from a sample -> the rank that owns each key range;
- :mod:`.rounds`: bounded exchange rounds (int64 totals, every MPI count below 2**31);
- :mod:`.shuffle`: the Alltoallv rounds that move node slices to their owners;
- :mod:`.write`: every owner writes its sorted key range into the one result file;
- :mod:`.run`: the keyed pass, top to bottom. See docs/keyed.md.
"""

from hpcdist.keyed.fold import KEYS, fold_nodes, keyed_combine, keyed_leaf

__all__ = ["KEYS", "fold_nodes", "keyed_combine", "keyed_leaf"]
