"""Errors raised for bad user input, and the checks that raise them.

Every input error is a :class:`ValueError` (so ``except ValueError`` catches it) whose
message states the rule and the value that broke it. The CLI turns these into one
``error:`` line and exit status 2. :func:`check_int` and :func:`check_float` are the one
check of a scalar parameter (in the manner of scikit-learn's ``check_scalar``) that every
package uses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["InputError", "check_float", "check_int", "choices_text"]


class InputError(ValueError):
    """Bad input from a user: a file, a parameter or a name that does not hold."""


def choices_text(choices: list[str] | tuple[str, ...]) -> str:
    """Format valid choices for an error message."""
    return ", ".join(sorted(choices))


def _num(v: float) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _rule(name: str, min_val: float | None, max_val: float | None, *, min_open: bool = False) -> str:
    if min_val is not None and max_val is not None:
        return f"{_num(min_val)} {'<' if min_open else '<='} {name} <= {_num(max_val)}"
    if min_val is not None:
        return f"{name} {'>' if min_open else '>='} {_num(min_val)}"
    return f"{name} <= {_num(max_val)}" if max_val is not None else name


def check_int(value: Any, name: str, *, min_val: int | None = None, max_val: int | None = None) -> int:
    """``value`` as an ``int`` when it is an integer (Python or NumPy, not a bool) within
    ``[min_val, max_val]`` (either bound None: none).

    Raises:
        InputError: ``"`name` must be an integer, but got ..."`` for another type, and
            ``"`min_val <= name <= max_val` must hold, but got name=..."`` out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"`{name}` must be an integer, but got {value!r}")
    v = int(value)
    if (min_val is not None and v < min_val) or (max_val is not None and v > max_val):
        raise InputError(f"`{_rule(name, min_val, max_val)}` must hold, but got {name}={v}")
    return v


def check_float(
    value: Any, name: str, *, min_val: float | None = None, max_val: float | None = None, min_open: bool = False
) -> float:
    """``value`` as a finite ``float`` when it is a real number (not a bool) within
    ``[min_val, max_val]`` (``(min_val, max_val]`` with ``min_open``; either bound None: none).

    Raises:
        InputError: ``"`name` must be a number, but got ..."`` for another type, and
            ``"`min_val <= name <= max_val` must hold, but got name=..."`` when it is not
            finite or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"`{name}` must be a number, but got {value!r}")
    v = float(value)
    low = min_val is not None and (v <= min_val if min_open else v < min_val)
    if not math.isfinite(v) or low or (max_val is not None and v > max_val):
        raise InputError(f"`{_rule(name, min_val, max_val, min_open=min_open)}` must hold, but got {name}={value!r}")
    return v
