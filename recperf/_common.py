"""Helpers shared by the subcommands: argument types, output (text or one JSON object), the
error line, the interrupt line, and the guard that keeps outputs off the inputs."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn


def fail(message: str) -> NoReturn:
    """Exit 2 with one ``error:`` line on stderr (CONTRACT.md error convention)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


def interrupted(status: int = 130) -> int:
    """Print the one ``interrupted`` line on stderr; returns the exit status (128 + signal)."""
    sys.stderr.flush()
    print("interrupted", file=sys.stderr)
    return status


# ---- argument types: one parser per kind of value; the rules on the value live in the library


def integer(text: str) -> int:
    """An integer argument: ``123``, ``1_000`` or a whole number in exponent form (``1e9``)."""
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        v = math.nan
    if not math.isfinite(v) or v != math.floor(v):
        raise argparse.ArgumentTypeError(f"must be an integer, but got {text!r}")
    return int(v)


def number(text: str) -> float:
    """A finite real-number argument (``nan`` and ``inf`` are refused)."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, but got {text!r}")
    return v


def refuse_overwrite(outputs: Mapping[str, str | os.PathLike[str] | None],
                     inputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Fail (exit 2) when an output path names the same file as an input, or as another output.

    ``outputs`` and ``inputs`` map an option name (``--markdown``) to its path (None: not
    given; an input that names no existing file, such as a GPU id, is skipped). Paths are
    compared after resolving links and ``..``; an existing file is also compared by device
    and inode (hard links).
    """
    def same(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False

    outs = [(k, v) for k, v in outputs.items() if v]
    ins = [(k, v) for k, v in inputs.items() if v and os.path.exists(v)]
    for i, (name, path) in enumerate(outs):
        for other, src in [*ins, *outs[:i]]:
            if same(path, src):
                fail(f"`{name}` must not be the file `{other}` names (it would be overwritten), but both are "
                     f"{os.fspath(path)!r}")


def storage_file(storage: str | None) -> str | None:
    """The file a ``--storage`` argument writes (an SQLite or journal file), or None (a server, memory)."""
    if not storage or storage == ":memory:":
        return None
    if storage.startswith("sqlite:///"):
        return storage[len("sqlite:///"):] or None
    return None if "://" in storage else storage


def workload_files(workload: Any, option: str = "--workload") -> dict[str, str]:
    """The trace files a workload reads, keyed for :func:`refuse_overwrite`."""
    return {f"{option} trace of table {i}": t.indices.path for i, t in enumerate(workload.tables)
            if t.indices.path}


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def emit(args: argparse.Namespace, payload: dict[str, Any], text: Callable[[], str] | str) -> int:
    """Print ``payload`` as JSON under ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(_clean(payload)) + "\n")
    else:
        sys.stdout.write((text() if callable(text) else text).rstrip("\n") + "\n")
    sys.stdout.flush()
    return 0


def add_gpu_arg(parser: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    parser.add_argument(
        "--gpu",
        required=required,
        default=default,
        help="GPU id (see `recperf gpus`) or a path to a GPU spec file (.toml)",
    )


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
