"""Published reference measurements: parsers of the gpu-benches files and the comparison.

The files are the measurement outputs of GitHub ``te42kyfo/gpu-benches`` shipped in
``perfmodel/data/gpu-benches/`` (see the README there for provenance; only the
measurements are shipped, none of that repository's GPL-3 code). Units, checked against
the benchmarks' print statements:

- ``latency_*``: columns ``iterations, SM clock MHz, footprint kB, total ms, cycles per
  access``. "kB" is KiB (the benchmark prints bytes / 1024, truncated to an integer); the
  footprint is the chain's span: one 8-byte pointer every 64 bytes. The fourth column is
  the whole run's time in milliseconds (it equals ns per access only while iterations =
  1,000,000); :func:`parse_latency` returns the last column, cycles per access.
- ``stream_*``: ``block size, threads, occupancy %, |, GB/s:``, then GB/s (1e9 B/s) for
  init, **read**, scale, triad and two stencils; at 2 blocks per SM.
- ``l2-cache_*``: ``per-block data kB, footprint kB, time ms, spread %, effective GB/s``,
  then four profiler columns (zero in the shipped file); kB is KiB, GB/s is 1e9 B/s.

The parsers need nothing but the standard library: ``perfmodel`` may use them for fitting.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "KIB",
    "parse_l2",
    "parse_latency",
    "parse_stream",
]

#: the gpu-benches "kB" (bytes / 1024)
KIB = 1024
_GB = 1e9


def _lines(path: str | os.PathLike[str]) -> list[tuple[int, str]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        from perfmodel import InputError

        raise InputError(f"cannot read measurement file {str(p)!r}: {exc.strerror}") from None
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]


def _bad(path: str | os.PathLike[str], lineno: int, what: str, line: str) -> Exception:
    from perfmodel import InputError

    return InputError(f"{os.fspath(path)}:{lineno}: {what}, but got {line.strip()!r}")


def parse_stream(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(block_size, read_bytes_per_s)`` rows of a gpu-benches ``stream_*`` file.

    The read column is the second bandwidth after ``GB/s:`` (init, read, ...), at 2 blocks
    per SM (the benchmark's shared-memory spoiler).
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        if "GB/s:" not in line:
            continue  # the header
        head, _, tail = line.partition("GB/s:")
        fields, values = head.replace("|", " ").split(), tail.split()
        if not fields or len(values) < 2:
            raise _bad(path, lineno, "a stream row needs a block size and at least two bandwidths", line)
        try:
            out.append((int(fields[0]), float(values[1]) * _GB))
        except ValueError:
            raise _bad(path, lineno, "a stream row starts with an integer block size", line) from None
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no stream rows (lines with 'GB/s:') found")
    return out


def parse_latency(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(footprint_bytes, cycles_per_access)`` rows of a gpu-benches ``latency_*`` file.

    ``footprint_bytes`` is the printed KiB figure times 1024 (the print truncates, so it is
    up to 1023 bytes short). Header lines (``clock: ...``) are skipped.
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        parts = line.split()
        if not parts[0].lstrip("-").isdigit():
            continue  # "clock: ..." header
        if len(parts) != 5:
            raise _bad(path, lineno, "a latency row has 5 columns (iterations, MHz, kB, ms, cycles)", line)
        try:
            out.append((int(parts[2]) * KIB, float(parts[4])))
        except ValueError:
            raise _bad(path, lineno, "a latency row has an integer kB column and a number of cycles", line) from None
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no latency rows found")
    return out


def parse_l2(path: str | os.PathLike[str]) -> list[tuple[int, float]]:
    """``(footprint_bytes, bytes_per_s)`` rows of a gpu-benches ``l2-cache_*`` file.

    The footprint is the second "kB" column (KiB), the bandwidth the first "GB/s" column.
    """
    out: list[tuple[int, float]] = []
    for lineno, line in _lines(path):
        if "GB/s" not in line or "kB" not in line:
            continue  # the header
        parts = line.split()
        try:
            kb = [int(parts[i - 1]) for i, tok in enumerate(parts) if tok == "kB"]
            gbs = [float(parts[i - 1]) for i, tok in enumerate(parts) if tok == "GB/s"]
        except ValueError:
            raise _bad(path, lineno, "an l2-cache row has numbers before its 'kB' and 'GB/s' units", line) from None
        if len(kb) < 2 or not gbs:
            raise _bad(path, lineno, "an l2-cache row has two 'kB' columns and a 'GB/s' column", line)
        out.append((kb[1] * KIB, gbs[0] * _GB))
    if not out:
        from perfmodel import InputError

        raise InputError(f"{os.fspath(path)}: no l2-cache rows found")
    return out
