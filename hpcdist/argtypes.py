"""argparse value types shared by every command line (``hpcdist run|gen``, ``hpcdist bench``).

They sit below the command-line modules, so each of them imports this one and none imports another.
"""

from __future__ import annotations

import argparse

from hpcdist.params import parse_int


def whole_number(text: str) -> int:
    """``--rows 1e6``, ``1_000_000`` or ``1000000``; anything else is a usage error naming the text."""
    try:
        return parse_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
