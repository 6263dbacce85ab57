"""Entry point of the ``recperf`` console script.

Each subcommand lives in a module of :mod:`recperf.commands` that defines
``register(subparsers)``; it adds its parser(s) with ``set_defaults(func=run)``, where
``run(args) -> int``. Heavy imports happen inside ``run``. Error convention (CONTRACT.md):
bad input exits 2 with one ``error:`` line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from recperf._common import fail

# Subcommand modules, in help order. A module missing from an installation is skipped.
COMMAND_MODULES = (
    "recperf.commands.gpus",
    "recperf.commands.occupancy",
    "recperf.commands.resources",
    "recperf.commands.predict",
    "recperf.commands.simulate",
    "recperf.commands.micro",
    "recperf.commands.search",
    "recperf.commands.validate",
    "recperf.commands.pipeline",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recperf",
        description="Predict, simulate, search and validate the performance of the DLRM embedding stage on NVIDIA GPUs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def _compile_missing_profiles(kernel: Any, arch: str, dtype: str, index_dtype: str, tbe_vecs: int) -> Any:
    """perfmodel's profile provider for the CLI: a configuration the shipped table lacks is compiled
    on demand where kernels' compiler and disassembler are installed (None otherwise: the model then
    refuses it with an error line). kernels is imported only when such a configuration comes up."""
    try:
        import kernels
    except ImportError:  # pragma: no cover - an installation without the kernels package
        return None
    return kernels.compiled_figures(kernel, arch, dtype, index_dtype, tbe_vecs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Any = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    import perfmodel

    perfmodel.set_profile_provider(_compile_missing_profiles)
    try:
        return int(func(args) or 0)
    except (ValueError, OSError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
