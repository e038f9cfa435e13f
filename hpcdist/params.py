"""Typed job parameters: declared by a job, given as ``--param name=value``, validated once."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from hpcdist.errors import UserError

_TYPES = (int, float, str, bool)


@dataclass(frozen=True)
class Param:
    """One job parameter: its type (int, float, str or bool), default and a one-line help."""

    type: type
    default: Any
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise TypeError(f"Param type must be one of int, float, str, bool, not {self.type!r}")

    def parse(self, name: str, text: str) -> Any:
        """Turn the command-line text into a value of this parameter's type, or a UserError."""
        try:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if self.type is int:
                return parse_int(text)
            if self.type is float:
                return float(text.replace("_", ""))
            return text
        except ValueError:
            raise UserError(
                f"param {name}: expected {self.type.__name__}, got {text!r}"
            ) from None


def parse_int(text: str) -> int:
    """Integers as users write them: ``1000000``, ``1_000_000`` or ``1e6`` (ValueError otherwise)."""
    cleaned = text.strip().replace("_", "")
    try:
        return int(cleaned)
    except ValueError:
        value = float(cleaned)
        if not math.isfinite(value) or value != int(value):
            raise
        return int(value)




def resolve_params(
    declared: Mapping[str, Param], given: Mapping[str, str], job_name: str
) -> dict[str, Any]:
    """Defaults overridden by the given ``name=value`` texts; unknown names list the valid ones."""
    values = {name: p.default for name, p in declared.items()}
    for name, text in given.items():
        if name not in declared:
            valid = ", ".join(sorted(declared)) or "(none)"
            raise UserError(f"job {job_name}: unknown param {name!r}; valid params: {valid}")
        values[name] = declared[name].parse(name, text)
    return values


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["bins=64", "lo=0"]`` -> ``{"bins": "64", "lo": "0"}``."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--param expects name=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def params_json(values: Mapping[str, Any]) -> str:
    """A stable text form of parameter values (for output attributes and fingerprints)."""
    return json.dumps(dict(values), sort_keys=True, allow_nan=True)
