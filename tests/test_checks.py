"""perfmodel.check_int / check_float: the one scalar-parameter check every package uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

import perfmodel
from perfmodel import InputError, check_float, check_int


def test_check_int_accepts_integers_in_range_and_returns_an_int() -> None:
    assert check_int(3, "n", min_val=0, max_val=3) == 3
    got = check_int(np.int64(7), "n", min_val=1)
    assert got == 7 and type(got) is int
    assert check_int(-5, "n") == -5  # no bounds


@pytest.mark.parametrize(("value", "kwargs", "message"), [
    (True, {}, "`n` must be an integer, but got True"),
    (2.0, {}, "`n` must be an integer, but got 2.0"),
    ("2", {}, "`n` must be an integer, but got '2'"),
    (0, {"min_val": 1}, "`n >= 1` must hold, but got n=0"),
    (9, {"max_val": 8}, "`n <= 8` must hold, but got n=9"),
    (9, {"min_val": 0, "max_val": 8}, "`0 <= n <= 8` must hold, but got n=9"),
])
def test_check_int_says_the_rule_and_the_value(value: object, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InputError) as exc:
        check_int(value, "n", **kwargs)
    assert str(exc.value) == message


def test_check_float() -> None:
    assert check_float(1, "x", min_val=0.0, max_val=1.0) == 1.0
    assert check_float(np.float32(0.5), "x") == 0.5
    with pytest.raises(InputError, match=r"`x` must be a number, but got False"):
        check_float(False, "x")
    with pytest.raises(InputError, match=r"`x > 0` must hold, but got x=0.0"):
        check_float(0.0, "x", min_val=0.0, min_open=True)
    with pytest.raises(InputError, match=r"`0 <= x <= 1` must hold, but got x=nan"):
        check_float(math.nan, "x", min_val=0.0, max_val=1.0)
    with pytest.raises(InputError, match=r"`x >= 0` must hold, but got x=inf"):
        check_float(math.inf, "x", min_val=0.0)


def test_the_packages_use_it() -> None:
    # a NumPy integer from a grid is accepted, and stored as a Python int
    k = perfmodel.KernelConfig(block_size=np.int64(128))
    assert type(k.block_size) is int
    with pytest.raises(InputError, match="`32 <= block_size <= 1024` must hold"):
        perfmodel.KernelConfig(block_size=2048)
    with pytest.raises(InputError, match="`8 <= footprint_bytes <= 85899345920` must hold"):
        perfmodel.micro_pointer_chase(perfmodel.get_gpu("a100-80gb"), footprint_bytes=0)
