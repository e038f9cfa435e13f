"""jobs/groupby.py slowed down (``sleep`` seconds per shard) for kill and signal tests."""

import importlib.util
import time
from pathlib import Path

from hpcdist import Param

_spec = importlib.util.spec_from_file_location("groupby_for_tests", Path(__file__).parents[2] / "jobs" / "groupby.py")
groupby = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(groupby)

PARAMS = {**groupby.PARAMS, "sleep": Param(float, 0.02, "seconds each shard takes")}
INPUT_NDIM = groupby.INPUT_NDIM
check, combine, finalize = groupby.check, groupby.combine, groupby.finalize


def map_keyed(shard, ctx):
    time.sleep(ctx.params["sleep"])
    return groupby.map_keyed(shard, ctx)
