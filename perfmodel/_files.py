"""Reading the files a user names: one reader, one error per way a path can be wrong.

Every text input (workloads, kernel configurations, GPU and CPU specs, plans, search
spaces, measurement files, published curves) is read by :func:`read_text`, so a folder
given as a file, a missing or unreadable file, a file that is not UTF-8 text (a binary
file, a file cut inside a character) or an endless one (``/dev/zero``) all end in one
:class:`~perfmodel.InputError` that names the file and the rule, never in a decoder's
message about "byte 0xec in position 21".
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from perfmodel._errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MAX_TEXT_BYTES", "check_input_file", "parse_json", "parse_toml", "read_text", "read_toml"]

#: the largest text input read whole (256 MiB: far above any configuration or measurement
#: file; a stream without end, such as /dev/zero, stops here)
MAX_TEXT_BYTES = 1 << 28


def check_input_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` when it names an existing file that is not a folder.

    Raises:
        InputError: ``cannot read {what} file '...': ...`` naming what is wrong.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"cannot read {what} file {str(p)!r}: it does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file {str(p)!r}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"cannot read {what} file {str(p)!r}: it is a folder, not a file")
    return p


def read_text(path: str | os.PathLike[str], what: str, *, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of a UTF-8 file the user named (``what`` names its role in messages).

    Raises:
        InputError: the path is missing, a folder or unreadable; the file holds a NUL byte
            or is not valid UTF-8 (the message gives the byte's offset and line); or it is
            larger than ``max_bytes``.
    """
    p = check_input_file(path, what)
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} file {str(p)!r}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise InputError(f"{what} file {str(p)!r} must be at most {max_bytes} bytes of text, but it is longer")
    bad = data.find(b"\0")
    if bad < 0:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.start
    line = data.count(b"\n", 0, bad) + 1
    raise InputError(
        f"{what} file {str(p)!r} must be UTF-8 text, but byte {bad} (line {line}) is 0x{data[bad]:02x}: "
        "is it a binary file?"
    )


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """A TOML document; ``origin`` (e.g. ``workload file 'w.toml'``) starts the error message."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{origin} is not valid TOML: {exc}") from None
    except RecursionError:
        raise InputError(f"{origin} is not valid TOML: arrays or tables nested too deeply") from None


def read_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The TOML document of a file the user named (:func:`read_text`, then :func:`parse_toml`)."""
    return parse_toml(read_text(path, what), f"{what} file {os.fspath(path)!r}")


def parse_json(text: str, origin: str) -> Any:
    """One JSON value; ``origin`` (e.g. ``m.jsonl:3``) starts the error message. ``NaN`` and
    ``Infinity`` parse as floats (the rules on each field reject them where they matter)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{origin}: must be valid JSON, but got {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise InputError(f"{origin}: must be valid JSON, but its arrays or objects are nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{origin}: must be valid JSON, but {exc}") from None
