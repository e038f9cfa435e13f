"""A writing job whose transform changes its output dtype on shard 3 (a job bug)."""

import numpy as np

from hpcdist.sinks import Output

OUTPUTS = {"y": Output(rows="same")}


def transform(shard, ctx):
    return {"y": shard.astype(np.float32) if ctx.index == 3 else shard}
