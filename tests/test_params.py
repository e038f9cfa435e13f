"""Job parameters: typed, defaulted, and a clear error for anything else."""

import pytest

from hpcdist import Param, UserError
from hpcdist.params import parse_assignments, resolve_params

DECLARED = {"bins": Param(int, 64), "lo": Param(float, 0.0), "name": Param(str, "x"),
            "fast": Param(bool, False)}


def test_defaults_and_overrides_with_types():
    values = resolve_params(DECLARED, {"bins": "1e3", "lo": "-2.5", "fast": "yes"}, "stats")
    assert values == {"bins": 1000, "lo": -2.5, "name": "x", "fast": True}


def test_underscored_integers_are_accepted():
    assert resolve_params(DECLARED, {"bins": "1_000_000"}, "stats")["bins"] == 1_000_000


def test_unknown_param_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown param 'bin'; valid params: bins, fast, lo, name"):
        resolve_params(DECLARED, {"bin": "3"}, "stats")


@pytest.mark.parametrize("name,text", [("bins", "many"), ("bins", "2.5"), ("lo", "abc"), ("fast", "maybe")])
def test_ill_typed_values_name_the_param_and_type(name, text):
    with pytest.raises(UserError, match=f"param {name}: expected"):
        resolve_params(DECLARED, {name: text}, "stats")


def test_assignments_need_an_equals_sign():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(UserError, match="name=value"):
        parse_assignments(["bins"])
