"""Helpers shared by the subcommands: output (text or one JSON object) and the error line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def fail(message: str) -> NoReturn:
    """Exit 2 with one ``error:`` line on stderr (CONTRACT.md error convention)."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(2)


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
