"""Entry point of the ``recperf`` console script.

Each subcommand lives in a module of :mod:`recperf.commands` that defines
``register(subparsers)``; it adds its parser(s) with ``set_defaults(func=run)``, where
``run(args) -> int``. Heavy imports happen inside ``run``. Error convention (CONTRACT.md):
bad input exits 2 with one ``error:`` line on stderr and no traceback.

One signal path: SIGINT (Ctrl-C) and SIGTERM both raise :class:`Interrupted` (a
``KeyboardInterrupt``) wherever Python code runs; compiled loops defer them to a flag and
raise between chunks (``perfmodel._interrupt``). Commands keep what they completed (a
search's trials are in its storage as they complete) and :func:`main` prints one
``interrupted`` line and returns 128 + the signal number (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, NoReturn, TextIO

from recperf._common import fail, interrupted

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


class Interrupted(KeyboardInterrupt):
    """A signal that stops the command (SIGINT or SIGTERM); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` while a command runs (main thread only;
    a signal the parent set to be ignored stays ignored)."""
    saved: dict[int, Any] = {}
    try:
        for sig in (int(signal.SIGINT), int(signal.SIGTERM)):
            old = signal.getsignal(sig)
            if old is not signal.SIG_IGN:
                saved[sig] = old
                signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings print as one ``warning:`` line on stderr (not Python's two-line form)."""
    saved = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``recperf`` command; returns its exit status (0 done, 2 bad input, 130 Ctrl-C)."""
    with _signals(), _one_line_warnings():
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            func: Any = getattr(args, "func", None)
            if func is None:
                parser.print_help()
                return 2
            import perfmodel

            perfmodel.set_profile_provider(_compile_missing_profiles)
            return int(func(args) or 0)
        except KeyboardInterrupt as exc:
            return interrupted(128 + getattr(exc, "signum", signal.SIGINT))
        except MemoryError as exc:  # the size rules should come first; this is the last resort
            fail(f"not enough host memory for this input: {exc or 'MemoryError'}")
        except (ValueError, OSError) as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
