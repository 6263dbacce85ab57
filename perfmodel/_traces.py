"""Trace files read in chunks: the head a call uses, per-row access counts, a digest.

Notation: N indices in the file, D distinct rows among them, E rows of the table, n the
accesses of one call, k pinned rows.

Nothing here allocates per table row or holds the whole file: a trace is read
``CHUNK_INDICES`` indices at a time, so memory is O(D + chunk) for the counts and O(n) for
a call's head, however large the table or the file.

- text: one non-negative decimal index below 2**63 per line (blank lines and spaces around
  it allowed), parsed by :func:`parse_trace_text` (also ``recperf cache-sim``'s): text of
  digits and white space, one number of at most 18 digits per line, by numpy; anything else
  by one compiled scanner, for which an index beyond int64, a sign, a fraction or a second
  number on a line is an error naming the line, never a wrapped, clamped or extra access;
- ``.npy``: 1-D integers, read after the header chunk by chunk;
- ``.pt`` (Meta ``dlrm_datasets``): a tuple ``(indices, offsets, lengths)``, memory-mapped by
  ``torch.load(mmap=True, weights_only=True)`` when torch is installed.

Ranks: the hottest row first by access count over the whole file, ties by row id; rows the
file never reads come after, by row id (only their ids are ever needed, and only the first
few, for pinning).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt

from perfmodel._errors import InputError

__all__ = ["CHUNK_INDICES", "TraceCounts", "iter_trace_chunks", "parse_trace_text", "trace_counts", "trace_digest",
           "trace_head"]

IntArray = npt.NDArray[np.int64]

#: indices per chunk (64 MB of int64)
CHUNK_INDICES = 1 << 23
#: bytes per text chunk (about CHUNK_INDICES short lines)
_TEXT_CHUNK_BYTES = 1 << 26
_INDEX_MAX = (1 << 63) - 1


def _key(path: str | os.PathLike[str]) -> tuple[str, float, int]:
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError as exc:
        raise InputError(f"cannot read trace {p!r}: {exc.strerror}") from None
    return p, st.st_mtime, st.st_size


#: the bytes a well-formed text trace holds: digits and white space
_TEXT_BYTES = np.zeros(256, dtype=bool)
_TEXT_BYTES[list(b"0123456789 \t\r\n")] = True


def _parse_plain(data: bytes) -> IntArray | None:
    """The indices of text that breaks no rule visibly (digits and white space only, one
    number per line, at most 18 digits each), without the compiled scanner (importing numba
    and loading its compiled code take over a second in a fresh process); None for anything
    else, which the scanner then parses or refuses with its line-numbered error."""
    if not _TEXT_BYTES[np.frombuffer(data, dtype=np.uint8)].all():
        return None
    tokens = data.split()
    if tokens and max(map(len, tokens)) > 18:  # 10**18 - 1 < 2**63: longer ones are checked by the scanner
        return None
    if len(tokens) != sum(1 for line in data.split(b"\n") if line.strip()):  # two numbers on a line
        return None
    return np.array(tokens, dtype=np.int64)


def parse_trace_text(data: bytes, path: str, first_line: int = 1) -> IntArray:
    """The indices of trace text (see the module docstring); ``first_line``: the line number
    of ``data``'s first line in the file, for the error."""
    plain = _parse_plain(data)
    if plain is not None:
        return plain
    from perfmodel._interrupt import interruptible
    from perfmodel.sim import _l2jit

    with interruptible():
        out: IntArray = _l2jit.parse_ints(np.frombuffer(data, dtype=np.uint8))
    if out.size == 2 and out[0] < 0:  # indices are never negative: [-(position + 1), rule]
        pos = int(-out[0] - 1)
        start = data.rfind(b"\n", 0, pos) + 1
        end = data.find(b"\n", pos)
        text = data[start: end if end >= 0 else len(data)][:40].strip().decode("utf-8", errors="replace")
        line = first_line + data.count(b"\n", 0, pos)
        rule = {_l2jit.PARSE_TWO_ON_A_LINE: "one index, but line {line} holds more: {text!r}",
                _l2jit.PARSE_TOO_LARGE: "an index below 2**63, but line {line} holds {text!r}",
                }.get(int(out[1]), "one non-negative decimal integer, but line {line} holds {text!r}")
        raise InputError(f"trace {path!r}: every line must hold " + rule.format(line=line, text=text))
    return out


def _text_chunks(path: str, chunk: int) -> Iterator[IntArray]:
    line = 1
    carry = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(min(max(chunk, 1 << 13) * 8, _TEXT_CHUNK_BYTES))
            if not data:
                break
            block = carry + data
            cut = block.rfind(b"\n")  # whole lines only: the one-index-per-line rule sees each line whole
            if cut < 0:  # one line longer than the chunk: keep reading
                carry = block
                continue
            carry = block[cut + 1:]
            arr = parse_trace_text(block[: cut + 1], path, line)
            line += block.count(b"\n", 0, cut + 1)
            if arr.size:
                yield arr
    arr = parse_trace_text(carry, path, line)
    if arr.size:
        yield arr


def _npy_chunks(path: str, chunk: int) -> Iterator[IntArray]:
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
            shape, _fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                      else fmt.read_array_header_2_0(f))
        except ValueError as exc:
            raise InputError(f"trace {path!r}: not a readable .npy file ({exc})") from None
        if len(shape) != 1 or not np.issubdtype(dtype, np.integer):
            raise InputError(f"trace {path!r}: a .npy trace must be a 1-D integer array, but got {dtype} {shape}")
        left = int(shape[0])
        while left > 0:  # plain reads, not a memory map: resident memory stays one chunk
            arr = np.fromfile(f, dtype=dtype, count=min(chunk, left))
            if arr.size == 0:
                raise InputError(f"trace {path!r}: the file ends before its {shape[0]} indices")
            left -= arr.size
            if arr.size and ((dtype.kind == "u" and int(arr.max()) > _INDEX_MAX) or (dtype.kind == "i" and arr.min() < 0)):
                bad = int(arr.max()) if dtype.kind == "u" else int(arr.min())
                raise InputError(f"trace {path!r}: every index must be in [0, 2**63), but the file holds {bad}")
            yield arr.astype(np.int64, copy=False)


def _pt_chunks(path: str, table: int, chunk: int) -> Iterator[IntArray]:
    try:
        import torch
    except ImportError:
        raise InputError(f"trace {path!r}: reading Meta dlrm_datasets .pt files needs torch (pip install torch)") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # an old (non-zip) serialization cannot be memory-mapped
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 3):
        raise InputError(f"trace {path!r}: expected a tuple (indices, offsets, lengths), but got {type(obj).__name__}")
    indices, _offsets, lengths = obj
    lens = np.asarray(lengths.numpy() if hasattr(lengths, "numpy") else lengths)
    lens = lens.reshape(lens.shape[0], -1) if lens.ndim > 1 else lens.reshape(1, -1)
    if not 0 <= table < lens.shape[0]:
        raise InputError(f"`0 <= indices.table < {lens.shape[0]}` must hold for {path!r}, but got table={table}")
    per_table = lens.sum(axis=1).astype(np.int64)
    start = int(per_table[:table].sum())
    stop = start + int(per_table[table])
    idx = indices.numpy() if hasattr(indices, "numpy") else np.asarray(indices)
    for i in range(start, stop, chunk):
        yield np.asarray(idx[i : min(i + chunk, stop)], dtype=np.int64)


def iter_trace_chunks(path: str | os.PathLike[str], table: int = 0, chunk: int = CHUNK_INDICES) -> Iterator[IntArray]:
    """The file's indices, ``chunk`` (about, for text) at a time, checked to be >= 0."""
    p, _mtime, _size = _key(path)
    if p.endswith(".npy"):
        gen = _npy_chunks(p, chunk)
    elif p.endswith(".pt"):
        gen = _pt_chunks(p, table, chunk)
    else:
        gen = _text_chunks(p, chunk)
    pos = 0
    for arr in gen:
        if arr.size and int(arr.min()) < 0:
            at = int(np.argmax(arr < 0))
            raise InputError(f"trace {p!r}: indices must be >= 0, but position {pos + at} holds {int(arr[at])}")
        pos += arr.size
        yield arr
    if pos == 0:
        raise InputError(f"trace {p!r} holds no indices")


def trace_head(path: str | os.PathLike[str], n: int, table: int = 0) -> IntArray:
    """The first ``n`` indices of the file, wrapping around at its end (read-only)."""
    got: list[IntArray] = []
    have = 0
    for arr in iter_trace_chunks(path, table, chunk=min(CHUNK_INDICES, max(n, 1))):
        got.append(arr[: n - have])
        have += got[-1].size
        if have >= n:
            break
    head = np.concatenate(got) if got else np.zeros(0, dtype=np.int64)
    if head.size < n:  # the file is shorter than the call: wrap around
        head = head[np.arange(n, dtype=np.int64) % head.size]
    out = np.ascontiguousarray(head, dtype=np.int64)
    out.setflags(write=False)
    return out


def _merge_counts(ids: IntArray, counts: IntArray, new_ids: IntArray, new_counts: IntArray) -> tuple[IntArray, IntArray]:
    if ids.size == 0:
        return new_ids, new_counts
    both, inv = np.unique(np.concatenate([ids, new_ids]), return_inverse=True)
    summed = np.bincount(inv, weights=np.concatenate([counts, new_counts]).astype(np.float64), minlength=both.size)
    return both.astype(np.int64), np.rint(summed).astype(np.int64)


@dataclass(frozen=True)
class TraceCounts:
    """Access counts of every row the file reads, and their ranks (module docstring)."""

    #: distinct row ids, ascending
    ids: IntArray
    #: accesses of each, over the whole file
    counts: IntArray
    #: rank (0 hottest) of each of ``ids``
    ranks: IntArray
    #: ``ids`` hottest first
    hot_ids: IntArray
    total: int

    def rank_of(self, rows: npt.ArrayLike, table_rows: int | None = None) -> IntArray:
        """Ranks of rows the file reads (every index of a call is one); with ``table_rows``,
        ranks among the ids below it only (a file may hold ids past a table's end)."""
        r = np.asarray(rows, dtype=np.int64)
        dense = self._dense_ranks
        if dense is not None:
            out: IntArray = dense[np.minimum(r, dense.size - 1)]
            if r.size and (int(out.min()) < 0 or int(r.max()) >= dense.size):
                raise ValueError("rank_of: some rows are not in the trace")
        else:
            pos = np.minimum(np.searchsorted(self.ids, r), max(self.ids.size - 1, 0))
            if r.size and not np.array_equal(self.ids[pos], r):
                raise ValueError("rank_of: some rows are not in the trace")
            out = self.ranks[pos]
        if table_rows is not None and self.ids.size and int(self.ids[-1]) >= table_rows:
            inside_before = np.cumsum(self.hot_ids < table_rows) - 1  # rank among the ids below table_rows
            out = inside_before[out]
        return out

    @cached_property
    def _dense_ranks(self) -> IntArray | None:
        """Rank by row id (-1: not in the file) when the ids are small enough for a table
        (below 4 D + 2^20); else None (binary search)."""
        if self.ids.size == 0 or int(self.ids[-1]) >= 4 * self.ids.size + (1 << 20):
            return None
        table = np.full(int(self.ids[-1]) + 1, -1, dtype=np.int64)
        table[self.ids] = self.ranks
        return table

    def hottest(self, k: int, rows: int) -> IntArray:
        """Row ids of the ``k`` hottest rows of a table of ``rows`` rows (O(k + D) work)."""
        k = max(0, min(int(k), int(rows)))
        inside = self.hot_ids[self.hot_ids < rows]
        if k <= inside.size:
            return np.ascontiguousarray(inside[:k])
        # then the rows the file never reads, by id: the first `need` ids missing from `ids`
        need = k - inside.size
        present = self.ids[self.ids < rows]
        candidates = np.arange(min(rows, need + present.size), dtype=np.int64)
        cold = np.setdiff1d(candidates, present, assume_unique=True)[:need]
        return np.concatenate([inside, cold]).astype(np.int64)


def trace_counts(path: str | os.PathLike[str], table: int = 0) -> TraceCounts:
    """Per-row access counts over the whole file (cached by path, modification time and size)."""
    return _trace_counts_cached(*_key(path), table)


@lru_cache(maxsize=16)
def _trace_counts_cached(path: str, mtime: float, size: int, table: int) -> TraceCounts:
    ids = np.zeros(0, dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    total = 0
    for arr in iter_trace_chunks(path, table):
        top = int(arr.max())
        if top < 4 * arr.size + (1 << 20):  # small ids: a histogram, O(chunk + top)
            hist = np.bincount(arr)
            u = np.flatnonzero(hist)
            c = hist[u]
        else:
            u, c = np.unique(arr, return_counts=True)
        ids, counts = _merge_counts(ids, counts, u.astype(np.int64), c.astype(np.int64))
        total += arr.size
    order = np.lexsort((ids, -counts))  # hottest first, ties by row id
    ranks = np.empty(ids.size, dtype=np.int64)
    ranks[order] = np.arange(ids.size, dtype=np.int64)
    for a in (ids, counts, ranks):
        a.setflags(write=False)
    hot = ids[order]
    hot.setflags(write=False)
    return TraceCounts(ids=ids, counts=counts, ranks=ranks, hot_ids=hot, total=total)


def trace_digest(path: str | os.PathLike[str], table: int = 0) -> str:
    """SHA-256 of the file's bytes (read in chunks) and the table index, for cache keys."""
    return _trace_digest_cached(*_key(path), table)


@lru_cache(maxsize=64)
def _trace_digest_cached(path: str, mtime: float, size: int, table: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            data = f.read(1 << 24)
            if not data:
                break
            h.update(data)
    h.update(repr(("table", table)).encode())
    return h.hexdigest()
