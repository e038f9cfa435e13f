"""Checkpoint and restart: what is saved (store), what makes a resume wrong (fingerprint), rank 0's
writes during a run (writer), and describing a file (inspect). Off the run's path without
``--checkpoint``; the messages that carry progress to rank 0 are :mod:`hpcdist.control`'s."""

from hpcdist.checkpoint.fingerprint import differences, fingerprint
from hpcdist.checkpoint.store import Checkpoint, load, remove, save
from hpcdist.checkpoint.writer import CheckpointWriter
from hpcdist.control import Interrupted
from hpcdist.errors import EXIT_REQUEUE

__all__ = ["Checkpoint", "CheckpointWriter", "EXIT_REQUEUE", "Interrupted", "differences", "fingerprint",
           "load", "remove", "save"]
