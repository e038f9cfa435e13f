"""Checkpoint and restart: what is saved, how it is saved, and how ranks agree on it."""

from hpcdist.checkpoint.coordinator import Coordinator, Interrupted, Policy
from hpcdist.checkpoint.fingerprint import differences, fingerprint
from hpcdist.signals import StopFlag, stop_on_signals
from hpcdist.checkpoint.store import Checkpoint, load, remove, save

EXIT_REQUEUE = 75  # EX_TEMPFAIL: checkpointed after a signal, run again to resume

__all__ = ["Checkpoint", "Coordinator", "EXIT_REQUEUE", "Interrupted", "Policy", "StopFlag",
           "differences", "fingerprint", "load", "remove", "save", "stop_on_signals"]
