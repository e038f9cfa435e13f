"""Imported by Python at start-up when tests/faults is on PYTHONPATH (see __init__.py here).

Wraps ``hpcdist.atomic.fsync_path``: after the temporary file of the named target is fsync'd, and
before it is renamed into place, sleep. Production code has no hook for this.
"""

import os

_SECONDS = float(os.environ.get("HPCDIST_TEST_SLOW_WRITE_S", "0") or 0)
_TARGET = os.environ.get("HPCDIST_TEST_SLOW_WRITE_OF", "")

if _SECONDS > 0 and _TARGET:
    import time

    import hpcdist.atomic as _atomic

    _fsync = _atomic.fsync_path

    def _slow_fsync(path: str) -> None:
        _fsync(path)
        if os.path.basename(path).startswith(f".{_TARGET}{_atomic.TEMP_MARK}"):
            time.sleep(_SECONDS)

    _atomic.fsync_path = _slow_fsync
