"""Select rows by the range of one column: writes /rows and /index.

The rows whose column ``col`` lies in ``[lo, hi]`` go to ``/rows`` (the input's dtype, in input
order) and their global row numbers to ``/index`` (int64). NaN is never in range. Result:
``kept``, the number of rows selected.
"""

import numpy as np

from hpcdist import Param, UserError
from hpcdist.sinks import Output

PARAMS = {
    "col": Param(int, 0, "the column tested (0 for 1-D data)"),
    "lo": Param(float, float("-inf"), "lowest value kept"),
    "hi": Param(float, float("inf"), "highest value kept"),
}
INPUT_NDIM = (1, 2)
OUTPUTS = {"rows": Output(rows="filter"), "index": Output(rows="filter", dtype=np.int64, row_shape=())}


def default_input(params):
    return "synthetic:rows=100000,cols=4,seed=0,dist=normal"


def check(ctx):
    col, cols = ctx.params["col"], ctx.cols
    if not 0 <= col < cols:
        raise UserError(f"param col must be in 0..{cols - 1} for data with {cols} column(s), got {col}")


def _kept(shard, ctx):
    values = shard if shard.ndim == 1 else shard[:, ctx.params["col"]]
    return np.flatnonzero((values >= ctx.params["lo"]) & (values <= ctx.params["hi"]))


def transform(shard, ctx):
    where = _kept(shard, ctx)
    return {"rows": shard[where], "index": where.astype(np.int64) + ctx.start}


def map(shard, ctx):
    return np.asarray(len(_kept(shard, ctx)), np.int64)


def combine(a, b):
    return a + b


def finalize(partial, ctx):
    return {"kept": partial}
