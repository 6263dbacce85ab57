"""Errors raised for bad user input.

Every input error is a :class:`ValueError` (so ``except ValueError`` catches it) whose
message states the rule and the value that broke it. The CLI turns these into one
``error:`` line and exit status 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user: a file, a parameter or a name that does not hold."""


def choices_text(choices: list[str] | tuple[str, ...]) -> str:
    """Format valid choices for an error message."""
    return ", ".join(sorted(choices))
