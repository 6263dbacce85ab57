"""Interrupts around compiled loops: a signal sets a stop flag, the loop's driver polls it.

A signal that arrives while the main thread runs a numba ``nopython`` function cannot be
handled there; Python runs its handler when the call returns, and a handler that raises
(``KeyboardInterrupt``, the default for SIGINT) then raises while numba's dispatcher is
still building the result: a ``SystemError`` traceback, or a segmentation fault (both seen
on ``recperf simulate`` under Ctrl-C). So the long compiled loops run in chunks inside
:func:`interruptible`: for its duration SIGINT and SIGTERM, where Python code handles them,
only set a flag; the driver calls ``check()`` between chunks, which restores the handlers
and calls the one that was installed (so ``KeyboardInterrupt``, or whatever the program
chose, is raised from Python, between two compiled calls). Outside the main thread, or
when the program ignores a signal, nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["interruptible"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class _Deferral:
    """The main thread's deferral: the handlers it replaced and the signals it caught."""

    def __init__(self) -> None:
        self.depth = 0
        self.saved: dict[int, Any] = {}
        self.pending: list[tuple[int, FrameType | None]] = []

    def catch(self, sig: int, frame: FrameType | None) -> None:
        self.pending.append((sig, frame))

    def enter(self) -> None:
        self.depth += 1
        if self.depth > 1:
            return
        self.pending.clear()
        for sig in _SIGNALS:
            old = signal.getsignal(sig)
            if callable(old):  # a Python-level handler (not SIG_DFL / SIG_IGN / None)
                self.saved[sig] = old
                signal.signal(sig, self.catch)

    def restore(self) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        self.saved.clear()

    def check(self) -> None:
        if self.pending and self.saved:
            sig, frame = self.pending[0]
            handler = self.saved.get(sig)
            self.restore()
            if handler is not None:
                handler(sig, frame)

    def exit(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.restore()


_MAIN = _Deferral()


def _nothing() -> None:
    return None


@contextmanager
def interruptible() -> Iterator[Callable[[], None]]:
    """Defer SIGINT/SIGTERM to a flag while compiled code runs; yields ``check()``.

    ``check()`` does nothing until a deferred signal arrived; then it restores the
    previous handlers and calls the one of that signal (raising, typically,
    ``KeyboardInterrupt``). A signal still pending when the block ends is delivered the
    same way on exit. Nested blocks share the outermost one's flag; outside the main
    thread ``check()`` does nothing (signals go to the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        yield _nothing
        return
    _MAIN.enter()
    try:
        yield _MAIN.check
        _MAIN.check()
    finally:
        _MAIN.exit()
