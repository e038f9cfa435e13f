"""Who maps which shard: the static split, or dynamic claiming with work stealing (no master rank).

Three layers, each its own module (how and why: docs/schedule.md):

- :mod:`~hpcdist.schedule.claiming`: the rules, pure and MPI-free (words, claim sizes, victims, steal shares);
- :mod:`~hpcdist.schedule.window`: the words in an MPI-3 window, and the end of a pass;
- :mod:`~hpcdist.schedule.schedules`: :class:`Static` and :class:`Dynamic`, what the runtime iterates.

Which rank maps a shard never changes the result: :meth:`hpcdist.tree.Fold.add_leaf` folds leaves
in any order into the same fixed-order tree.
"""

from hpcdist.schedule.claiming import (CLAIM_S, MAX_POSITIONS, SAMPLE, STEAL_MIN_GAIN_S, SURVEY_ALL, Claimer,
                                       LocalWords, Request, Words, block_size, initial_block, pack,
                                       steal_split, unpack)
from hpcdist.schedule.schedules import (DRY_PAUSE_S, SCHEDULES, Dynamic, Poll, Schedule, Static, open_schedule,
                                        resolve)

__all__ = [
    "CLAIM_S", "DRY_PAUSE_S", "MAX_POSITIONS", "SAMPLE", "SCHEDULES", "STEAL_MIN_GAIN_S", "SURVEY_ALL",
    "Claimer", "Dynamic", "LocalWords", "Poll", "Request", "Schedule", "Static", "Words",
    "block_size", "initial_block", "open_schedule", "pack", "resolve", "steal_split", "unpack",
]
