"""The fuzzer of the ``recperf`` CLI (tests/test_fuzz.py) and its contract check.

A case is a command line of one subcommand with its input files: workloads, kernel
configurations, GPU specs, traces, measurement and microbenchmark files, search spaces,
model files, each drawn near a valid file and then, often, broken in one or two ways (a
value out of range, of the wrong type, not finite or huge; a key missing or unknown; the
text cut short, binary, empty; a folder or a missing path where a file belongs; an output
over an input). Every case is made from one integer seed (:func:`make_case`), so a failure
names its seed and can be replayed alone.

The contract (:func:`check`), CONTRACT.md's error convention and issue #20: exit 0 with
finite results (every number of the JSON object finite, the key figures present), or exit
2 with exactly one ``error:`` line and no traceback; never another status (130 only for an
interrupt); never a changed input file; never a host-memory error standing in for a size
rule.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

ROOT = Path(__file__).resolve().parent.parent
GPU_IDS = ("a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200")
CPU_IDS = ("xeon-8280", "xeon-8480")
MODEL_IDS = ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mt-wnd", "din", "dien")

# ---- running the CLI in this process ------------------------------------------------------


@dataclass
class Result:
    """One run of ``recperf`` in this process."""

    argv: list[str]
    status: int
    stdout: str
    stderr: str
    #: an exception that escaped ``main()`` (a traceback a user would see)
    escaped: str | None = None


def run_cli(argv: Sequence[str]) -> Result:
    """``recperf ARGV`` through :func:`recperf.cli.main`, stdout and stderr captured.

    An exception other than ``SystemExit`` that escapes ``main()`` is what a user would see as
    a traceback: it is recorded in ``escaped`` (with the traceback text) and status 1.
    """
    import traceback

    from recperf.cli import main

    out, err = io.StringIO(), io.StringIO()
    escaped = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            status = 1
            escaped = "".join(traceback.format_exception(exc))
    return Result(list(argv), int(status), out.getvalue(), err.getvalue(), escaped)


# ---- the contract ---------------------------------------------------------------------------

#: figures that must be real numbers (not null) in a successful command's JSON, by command
KEY_FIGURES: dict[str, tuple[str, ...]] = {
    "predict": ("time_s", "l2_hit_rate", "dram_bytes", "occupancy"),
    "simulate": ("time_s", "l2_hit_rate", "dram_bytes", "occupancy"),
    "cache-sim": ("hit_rate", "accesses"),
    "occupancy": ("occupancy", "active_blocks_per_sm"),
    "search": ("best_time_s",),
    "pipeline": ("time_s", "embedding_time_s"),
    "validate report": ("n", "mape"),
}
_NUMBER_WORD = re.compile(r"(?<![A-Za-z_])(nan|inf|-inf|infinity)(?![A-Za-z_])", re.IGNORECASE)


def _bad_numbers(obj: Any, path: str = "") -> list[str]:
    if isinstance(obj, float) and not math.isfinite(obj):
        return [path or "(top)"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _bad_numbers(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _bad_numbers(v, f"{path}[{i}]")]
    return []


def command_of(argv: Sequence[str]) -> str:
    """``validate report`` for ``validate report ...``, else the first word."""
    if argv and argv[0] == "validate" and len(argv) > 1:
        return f"validate {argv[1]}"
    return argv[0] if argv else ""


def check(res: Result) -> list[str]:
    """What breaks the contract in one result (empty: it holds)."""
    problems: list[str] = []
    if res.escaped:
        return [f"an exception escaped main() (a traceback):\n{res.escaped[-3000:]}"]
    if "Traceback" in res.stderr:
        problems.append("a traceback on stderr")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    if res.status == 2:
        if len(errors) != 1:
            problems.append(f"exit 2 with {len(errors)} `error:` lines")
        if any("not enough host memory" in e for e in errors):
            problems.append("a host-memory error instead of a size rule")
        return problems
    if res.status != 0:
        return [*problems, f"exit status {res.status} (only 0 or 2 are allowed)"]
    if errors:
        problems.append("exit 0 with an `error:` line")
    if "--json" in res.argv:
        lines = res.stdout.strip().splitlines()
        if len(lines) != 1:
            return [*problems, f"--json printed {len(lines)} lines, not one JSON object"]
        try:
            doc = json.loads(lines[0], parse_constant=float)
        except json.JSONDecodeError as exc:
            return [*problems, f"--json printed invalid JSON ({exc.msg})"]
        if not isinstance(doc, dict):
            return [*problems, "--json printed a JSON value that is not an object"]
        bad = _bad_numbers(doc)
        if bad:
            problems.append(f"non-finite numbers in the JSON at {bad[:5]}")
        for key in KEY_FIGURES.get(command_of(res.argv), ()):
            v = doc.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                problems.append(f"JSON figure {key!r} is {v!r}, not a finite number")
    elif _NUMBER_WORD.search(res.stdout):
        problems.append(f"a non-finite number in the text output: {_NUMBER_WORD.search(res.stdout)!r}")
    return problems


def digest_tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---- values ---------------------------------------------------------------------------------

NASTY_INTS = (0, -1, 1, 2, 3, 7, 31, 32, 33, 63, 64, 96, 128, 255, 256, 1000, 1023, 1024, 1025, 4096, 65536, 65537,
              10**6, 10**9, 10**12, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), 10**20)
NASTY_FLOATS = (0.0, -0.0, 1e-300, 1e-9, 0.25, 0.5, 0.999, 1.0, 1.05, 2.5, 100.0, 1e20, 1e308, -1.0,
                math.inf, -math.inf, math.nan)
NASTY_STRINGS = ("", "x", "pytorch", "warp", "zipf", "trace", "none", "..", "/", "-1", "nan", "1e9", "a" * 300,
                 "\u00e9\u4e2d", "a100-80gb", "NULL")
NASTY_ARGS = ("0", "-1", "1", "2", "7", "1e9", "1e20", "99999999999999", "9223372036854775808", "nan", "inf", "-inf",
              "", "abc", "0.5", "1.5", "-0", "1_000", " 3", "0x10", "1e-3")


def nasty_value(rng: random.Random) -> Any:
    """A value of a random type, often one that breaks a rule."""
    r = rng.random()
    if r < 0.4:
        return rng.choice(NASTY_INTS)
    if r < 0.7:
        return rng.choice(NASTY_FLOATS)
    if r < 0.85:
        return rng.choice(NASTY_STRINGS)
    if r < 0.92:
        return rng.choice((True, False))
    if r < 0.97:
        return [rng.choice(NASTY_INTS) for _ in range(rng.randint(0, 3))]
    return {"k": rng.choice(NASTY_INTS)}


# ---- TOML and JSON writers (tomllib reads; nothing in the standard library writes) ---------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (JSON escapes are TOML escapes)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(doc: dict[str, Any]) -> str:
    """A TOML document: top-level scalars, then ``[table]`` and ``[[array of tables]]`` (deeper
    tables inline)."""
    lines = []
    tables = []
    for k, v in doc.items():
        if isinstance(v, dict):
            tables.append((k, v, False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v, True))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v, many in tables:
        for t in (v if many else [v]):
            lines.append(f"\n[[{_toml_key(k)}]]" if many else f"\n[{_toml_key(k)}]")
            lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in t.items()]
    return "\n".join(lines) + "\n"


# ---- files ----------------------------------------------------------------------------------


def _mutate_doc(rng: random.Random, doc: dict[str, Any], keys: Sequence[str], required: Sequence[str] = ()) -> None:
    """Break a document in one way: a value, a missing key or an unknown one (in place)."""
    r = rng.random()
    if r < 0.7 and keys:
        doc[rng.choice(list(keys))] = nasty_value(rng)
    elif r < 0.85 and required:
        doc.pop(rng.choice(list(required)), None)
    else:
        doc[rng.choice(("colour", "rows_", "Variant", "extra"))] = nasty_value(rng)


def corrupt_bytes(rng: random.Random, data: bytes) -> bytes:
    """Text broken as files break: cut short, binary garbage, empty, a NUL, a bad UTF-8 byte."""
    r = rng.random()
    if r < 0.3 and data:
        return data[: rng.randrange(len(data))]
    if r < 0.5:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
    if r < 0.6:
        return b""
    pos = rng.randrange(len(data) + 1)
    junk = rng.choice((b"\x00", b"\xec", b"\xff\xfe", b"=", b"[", b"\n[[tables]]\n", b'"', b"\xe2\x82"))
    return data[:pos] + junk + data[pos:]


@dataclass
class Case:
    """A command line and the input files it reads (written into its folder by :meth:`write`)."""

    seed: int
    argv: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    folders: list[str] = field(default_factory=list)

    def describe(self) -> str:
        shown = {k: v[:300] for k, v in self.files.items()}
        return f"seed {self.seed}: recperf {' '.join(self.argv)}\n  files: {shown}"


class Maker:
    """Draws the files and arguments of one case from one seed."""

    def __init__(self, seed: int, folder: Path) -> None:
        self.rng = random.Random(f"recperf-fuzz-{seed}")
        self.folder = folder
        self.case = Case(seed=seed)
        self.n = 0

    def broken(self, p: float = 0.35) -> bool:
        return self.rng.random() < p

    def file(self, stem: str, data: bytes | str, suffix: str = "") -> str:
        self.n += 1
        name = f"{stem}{self.n}{suffix}"
        self.case.files[name] = data.encode() if isinstance(data, str) else data
        return str(self.folder / name)

    def maybe_corrupt(self, data: str, p: float = 0.08) -> bytes | str:
        return corrupt_bytes(self.rng, data.encode()) if self.broken(p) else data

    def path_instead(self, p: float = 0.04) -> str | None:
        """Sometimes a folder or a missing path where a file belongs."""
        if not self.broken(p):
            return None
        if self.rng.random() < 0.5:
            self.n += 1
            name = f"folder{self.n}"
            self.case.folders.append(name)
            return str(self.folder / name)
        return str(self.folder / "missing.toml")

    # -- inputs
    def trace(self, rows: int) -> str:
        rng = self.rng
        n = rng.randint(1, 400)
        vals = [str(rng.randrange(max(rows, 1))) for _ in range(n)]
        if self.broken(0.3):
            i = rng.randrange(n)
            vals[i] = rng.choice(("-1", "18446744073709551617", "9223372036854775808", "1 2 3", "1.5", "x", "",
                                  "1e3", str(rows + 5), "  7  ", "+4", "0x1F", "\t3\r"))
        path = self.path_instead(0.03)
        if path:
            return path
        if self.broken(0.1):
            dtype = rng.choice((np.int64, np.int32, np.uint64, np.float64, np.uint8))
            arr = np.array([rng.randrange(max(rows, 1)) for _ in range(n)]).astype(dtype)
            buf = io.BytesIO()
            np.save(buf, arr if rng.random() < 0.8 else arr.reshape(1, -1))
            return self.file("trace", buf.getvalue(), ".npy")
        return self.file("trace", self.maybe_corrupt("\n".join(vals) + "\n", 0.04))

    def workload_doc(self) -> dict[str, Any]:
        rng = self.rng
        tables = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            rows = rng.choice((1, 7, 100, 1000, 50_000, 200_000, 1_000_000))
            t: dict[str, Any] = {"rows": rows, "dim": rng.choice((1, 3, 16, 32, 64, 128, 300)),
                                 "dtype": rng.choice(("float32", "float16"))}
            if rng.random() < 0.8:
                t["pooling"] = rng.choice((1, 2, 8, 20, 60))
            else:
                t["pooling_mean"] = rng.choice((0.5, 3.0, 20.0))
                t["pooling_dist"] = rng.choice(("uniform", "poisson"))
            if rng.random() < 0.3:
                t["count"] = rng.choice((1, 2, 5))
            kind = rng.choice(("uniform", "zipf", "zipf", "trace"))
            idx: dict[str, Any] = {"kind": kind}
            if kind == "zipf":
                idx["alpha"] = rng.choice((0.6, 1.05, 1.3))
            if kind == "trace":
                idx["path"] = self.trace(rows)
            t["indices"] = idx
            tables.append(t)
        doc: dict[str, Any] = {"batch_size": rng.choice((1, 8, 64, 256, 512)), "tables": tables}
        if self.broken():
            if rng.random() < 0.5:
                _mutate_doc(rng, doc, ("batch_size",), ("batch_size", "tables"))
            else:
                t = rng.choice(tables)
                if rng.random() < 0.2:
                    _mutate_doc(rng, t["indices"], ("kind", "alpha", "path", "seed", "table"), ("kind",))
                else:
                    _mutate_doc(rng, t, ("rows", "dim", "dtype", "pooling", "count", "pooling_mean", "pooling_dist"),
                                ("rows", "dim"))
        return doc

    def workload(self) -> str:
        return self.path_instead() or self.file("workload", self.maybe_corrupt(to_toml(self.workload_doc())))

    def kernel_doc(self) -> dict[str, Any]:
        rng = self.rng
        doc: dict[str, Any] = {}
        choices = {
            "variant": ("pytorch", "warp"), "block_size": (32, 64, 128, 256, 512, 1024),
            "register_cap": (0, 24, 32, 40, 42, 64, 128, 255), "prefetch_distance": (0, 1, 2, 4, 8, 16),
            "pinned_row_fraction": (0.0, 0.05, 0.12, 0.5, 1.0),
            "pin_method": ("access-policy-window", "evict-last-prefetch"),
            "bounds_check": ("inline", "separate", "none"), "prefetch_kind": ("register", "l2-hint"),
        }
        for k, vals in choices.items():
            if rng.random() < 0.5:
                doc[k] = rng.choice(vals)
        if self.broken():
            _mutate_doc(rng, doc, tuple(choices))
        return doc

    def kernel(self) -> str:
        return self.path_instead() or self.file("kernel", self.maybe_corrupt(to_toml(self.kernel_doc())))

    def gpu(self) -> str:
        """A GPU id, an unknown id, or a spec file (a built-in one, often changed)."""
        rng = self.rng
        r = rng.random()
        if r < 0.75:
            return rng.choice(GPU_IDS)
        if r < 0.8:
            return rng.choice(("rtx-4090", "", "a100", "A100-80GB", "../gpus/a100-80gb"))
        base = rng.choice(GPU_IDS)
        doc = tomllib.loads((ROOT / "perfmodel" / "gpus" / f"{base}.toml").read_text(encoding="utf-8"))
        doc["id"] = f"fuzz-{base}"
        spec = doc["spec"]
        for _ in range(rng.choice((0, 1, 1, 2))):
            key = rng.choice(sorted(spec))
            entry = spec[key]
            v = entry["value"] if isinstance(entry, dict) else entry
            if rng.random() < 0.6 and isinstance(v, (int, float)) and not isinstance(v, bool):
                new = v * rng.choice((0, -1, 0.5, 2, 1000, 1e-9))
                entry_v: Any = int(new) if isinstance(v, int) else float(new)
            elif rng.random() < 0.3:
                spec.pop(key)
                continue
            else:
                entry_v = nasty_value(rng)
            if isinstance(entry, dict):
                entry["value"] = entry_v
            else:
                spec[key] = entry_v
        return self.path_instead() or self.file("gpu", self.maybe_corrupt(to_toml(doc), 0.05))

    def measurements(self, workload: str | None = None) -> str:
        rng = self.rng
        wl = workload or self.workload()
        lines = []
        for _ in range(rng.randint(1, 6)):
            rec: dict[str, Any] = {"gpu": rng.choice(GPU_IDS[:3]) if rng.random() < 0.9 else nasty_value(rng),
                                   "workload": wl if rng.random() < 0.8 else self.workload_doc(),
                                   "kernel": self.kernel_doc(), "time_s": rng.choice((1e-5, 3e-5, 1e-4, 2e-3))}
            if self.broken(0.15):
                _mutate_doc(rng, rec, ("gpu", "workload", "kernel", "time_s"), ("gpu", "workload", "kernel", "time_s"))
            lines.append(json.dumps(rec))
        if self.broken(0.05):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(("{", "[1, 2]", "NaN", "[" * 5000, "1" * 5000, "")))
        return self.path_instead() or self.file("measurements", self.maybe_corrupt("\n".join(lines) + "\n", 0.05))

    def latency_file(self) -> str:
        rng = self.rng
        rows = []
        for kb in (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576):
            cyc = rng.choice((30.0, 200.0, 450.0, 600.0)) if not self.broken(0.1) else rng.choice(
                (-5.0, 0.0, math.nan, math.inf, 1e30))
            rows.append(f"  1000000  1410  {kb}  1.0  {cyc}")
        return self.file("latency", self.maybe_corrupt("clock: 1410\n" + "\n".join(rows) + "\n", 0.05))

    def space(self) -> str:
        rng = self.rng
        doc = {"variants": ["pytorch", "warp"][: rng.randint(1, 2)], "block_sizes": [rng.choice((128, 256))],
               "register_caps": [0], "prefetch_distances": [0, rng.choice((1, 2))], "pinned_row_fractions": [0.0],
               "bounds_checks": ["inline"]}
        if self.broken():
            _mutate_doc(rng, doc, tuple(doc))
        return self.file("space", self.maybe_corrupt(to_toml(doc)))

    def model(self) -> str:
        rng = self.rng
        if rng.random() < 0.8:
            return rng.choice(MODEL_IDS)
        name = rng.choice(MODEL_IDS)
        doc = tomllib.loads((ROOT / "perfmodel" / "pipeline" / "models" / f"{name}.toml").read_text(encoding="utf-8"))
        doc["id"] = f"fuzz-{name}"
        if self.broken(0.6):
            if rng.random() < 0.5 and doc.get("tables"):
                t = rng.choice(doc["tables"])
                _mutate_doc(rng, t, tuple(k for k in t if k != "indices"), ("rows", "dim"))
            else:
                _mutate_doc(rng, doc, tuple(k for k in doc if k not in ("tables", "id")))
        return self.file("model", self.maybe_corrupt(to_toml(doc), 0.05))

    def arg(self, *valid: Any, nasty: Sequence[str] = NASTY_ARGS) -> str:
        """An option value: one of ``valid`` mostly, else a nasty one."""
        if valid and not self.broken(0.15):
            return str(self.rng.choice(valid))
        return self.rng.choice(nasty)


def _json(m: Maker, argv: list[str]) -> list[str]:
    return [*argv, "--json"] if m.rng.random() < 0.7 else argv


def _gen_occupancy(m: Maker) -> list[str]:
    a = ["occupancy", "--gpu", m.gpu(), "--block-size", m.arg(32, 128, 256, 1000, 1024),
         "--registers", m.arg(16, 32, 40, 64, 128, 255)]
    if m.rng.random() < 0.4:
        a += ["--smem-bytes", m.arg(0, 1024, 48000, 100000, 166912, 200000)]
    if m.rng.random() < 0.3:
        a += ["--static-smem-bytes", m.arg(0, 1024, 49152, 60000)]
    return _json(m, a)


def _gen_predict(m: Maker) -> list[str]:
    a = ["predict", "--gpu", m.gpu(), "--workload", m.workload()]
    if m.rng.random() < 0.6:
        a += ["--kernel", m.kernel()]
    return _json(m, a)


def _gen_simulate(m: Maker) -> list[str]:
    a = ["simulate", "--gpu", m.gpu(), "--workload", m.workload(),
         "--max-line-requests", m.arg(2000, 20000, 50000)]
    if m.rng.random() < 0.5:
        a += ["--kernel", m.kernel()]
    if m.rng.random() < 0.3:
        a += ["--policy", m.arg("lru", "srrip", "random", "fifo")]
    return _json(m, a)


def _gen_cache_sim(m: Maker) -> list[str]:
    a = ["cache-sim", "--trace", m.trace(m.rng.choice((10, 1000, 10**6))),
         "--row-bytes", m.arg(4, 64, 128, 256, 512, 99999999999999),
         "--capacity-bytes", m.arg(128, 4096, 1 << 20, 40 << 20), "--ways", m.arg(0, 0, 1, 4, 16)]
    if m.rng.random() < 0.3:
        a += ["--policy", m.arg("lru", "srrip", "random")]
    if m.rng.random() < 0.2:
        a += ["--line-bytes", m.arg(64, 128), "--sector-bytes", m.arg(16, 32)]
    return _json(m, a)


def _gen_micro(m: Maker) -> list[str]:
    kind = m.arg("stream-read", "pointer-chase", "l2-read")
    a = ["micro", "--gpu", m.gpu(), "--kind", kind]
    if kind == "stream-read" or m.rng.random() < 0.2:
        a += ["--block-size", m.arg(32, 256, 1024)]
        if m.rng.random() < 0.5:
            a += ["--blocks-per-sm", m.arg(1, 2, 8, 100)]
    if kind != "stream-read" or m.rng.random() < 0.2:
        a += ["--footprint-bytes", m.arg(1024, 1 << 20, 1 << 30, 10**20)]
    return _json(m, a)


def _gen_search(m: Maker) -> list[str]:
    rng = m.rng
    a = ["search", "--gpu", m.gpu(), "--workload", m.workload(), "--no-progress"]
    if rng.random() < 0.9:
        a += ["--space", m.space()]
    # (a large trial count is a long search, not an error: only small and invalid ones here)
    a += ["--trials", m.arg(1, 2, 4, nasty=("0", "-1", "nan", "1.5", "", "x")), "--sampler", m.arg("tpe", "random")]
    r = rng.random()
    if r < 0.6:
        a += ["--storage", ":memory:"]
    elif r < 0.8:
        a += ["--storage", str(m.folder / "out" / rng.choice(("j.log", "s.db")))]
    else:
        a += ["--storage", rng.choice(("mysql://u@h/db", "sqlite:////proc/x.db", "postgresql://u:p@127.0.0.1:1/db",
                                       "bogus://x", str(m.folder)))]
    if rng.random() < 0.2:
        a += ["--seed", m.arg(0, 1, 42, 2**32 - 1, 10**20)]
    if rng.random() < 0.15:
        a += ["--objectives", m.arg("time", "time,l2-bytes", "speed")]
    if rng.random() < 0.1:
        a += ["--fidelity", "gpu", "--measurements", m.measurements()]
    a += ["--out", str(m.folder / "out")] if rng.random() < 0.3 else ["--no-report"]
    return _json(m, a)


def _gen_report(m: Maker) -> list[str]:
    meas = m.measurements()
    a = ["validate", "report", "--measurements", meas]
    if m.rng.random() < 0.2:
        a += ["--gpu-spec", m.gpu()]
    if m.rng.random() < 0.15:
        a += ["--markdown", meas if m.rng.random() < 0.5 else str(m.folder / "out" / "r.md")]
    return _json(m, a)


def _gen_published(m: Maker) -> list[str]:
    a = ["validate", "published", "--kind", m.arg("stream-read", "pointer-chase", "l2-read")]
    if m.rng.random() < 0.4:
        a += ["--gpu-spec", f"{m.arg(*GPU_IDS, 'rtx')}={m.gpu()}"]
    return _json(m, a)


def _gen_calibrate(m: Maker) -> list[str]:
    a = ["validate", "calibrate", "--gpu", m.gpu(), "--latency", m.latency_file()]
    out = m.folder / "out" / "cal.toml"
    a += ["--out", str(out) if m.rng.random() < 0.9 else a[-1]]
    return _json(m, a)


def _gen_pipeline(m: Maker) -> list[str]:
    rng = m.rng
    a = ["pipeline", "--model", m.model(), "--device", m.arg(*GPU_IDS, *CPU_IDS, "tpu"),
         "--batch-size", m.arg(1, 16, 64, 512, 4096, 10**9)]
    if rng.random() < 0.3:
        a += ["--streams", m.arg(1, 2, 4)]
    if rng.random() < 0.2:
        a += ["--embedding-config", m.kernel()]
    if rng.random() < 0.2:
        a += ["--memory-budget-gb", m.arg(1, 10, 100, -1, 0)]
    if rng.random() < 0.1:
        a += ["--representation", m.arg("table", "dhe", "hybrid")]
    if rng.random() < 0.1:
        a += ["--dtype", m.arg("fp32", "tf32", "fp16", "bf16", "fp8")]
    return _json(m, a)


def _gen_sweep(m: Maker) -> list[str]:
    devices = ",".join(m.rng.sample([*GPU_IDS, *CPU_IDS], m.rng.randint(1, 3)))
    a = ["pipeline-sweep", "--model", m.model(), "--devices", m.arg(devices, "", ",", "tpu"),
         "--batch-sizes", m.arg("1,64", "8", "", ",", "1,x", "0", "1e9", "-4")]
    return _json(m, a)


def _gen_small(m: Maker) -> list[str]:
    a = [m.rng.choice(("gpus", "models", "cpus"))]
    if a[0] != "models" and m.rng.random() < 0.3:
        a.append("--sources")
    return _json(m, a)


def _gen_resources(m: Maker) -> list[str]:
    a = ["resources", "--compiler", "table"]
    a += ["--arch", m.arg("sm_80", "sm_90", "sm_86", "sm_12", "")] if m.rng.random() < 0.7 else ["--gpu", m.gpu()]
    if m.rng.random() < 0.6:
        a += ["--kernel", m.kernel()]
    if m.rng.random() < 0.2:
        a += ["--dtype", m.arg("float32", "float16", "bfloat16")]
    return _json(m, a)


def _gen_gpu_only(m: Maker) -> list[str]:
    sub = m.rng.choice(("micro", "sweep"))
    if sub == "micro":
        return ["validate", "micro", "--out", str(m.folder / "out" / "micro.jsonl"), "--quick"]
    return ["validate", "sweep", "--workload", m.workload(), "--grid", m.arg('{"block_size": [128]}', "{", "[]"),
            "--out", str(m.folder / "out" / "sweep.jsonl")]


#: (weight, generator): the share of cases each command gets
GENERATORS: tuple[tuple[int, Callable[[Maker], list[str]]], ...] = (
    (6, _gen_occupancy), (14, _gen_predict), (8, _gen_simulate), (10, _gen_cache_sim), (6, _gen_micro),
    (8, _gen_search), (10, _gen_report), (3, _gen_published), (4, _gen_calibrate), (8, _gen_pipeline),
    (4, _gen_sweep), (3, _gen_small), (5, _gen_resources), (1, _gen_gpu_only),
)


def make_case(seed: int, folder: Path) -> Case:
    """The case of ``seed``; its files are meant for ``folder`` (see :func:`write_case`)."""
    m = Maker(seed, folder)
    weights = [w for w, _ in GENERATORS]
    gen = m.rng.choices([g for _, g in GENERATORS], weights)[0]
    m.case.argv = gen(m)
    return m.case


def write_case(case: Case, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out").mkdir(exist_ok=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    for name in case.folders:
        (folder / name).mkdir(exist_ok=True)


def run_case(case: Case, folder: Path) -> list[str]:
    """Write the case, run it in this process, and return the contract's problems."""
    write_case(case, folder)
    inputs = {k: v for k, v in digest_tree(folder).items() if not k.startswith("out" + os.sep)}
    res = run_cli(case.argv)
    problems = check(res)
    after = digest_tree(folder)
    changed = sorted(k for k, v in inputs.items() if after.get(k) != v)
    if changed:
        problems.append(f"input files changed or removed: {changed}")
    if problems:
        tail = "\n    ".join(res.stderr.strip().splitlines()[-3:])
        problems.append(f"exit {res.status}; stderr ends:\n    {tail}")
    return problems


def main_process_guard() -> None:
    """Nothing in the fuzz may leave the signal handlers changed (checked by the test)."""
    import signal

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGINT)


if __name__ == "__main__":  # replay one case: python tests/_fuzz.py SEED [FOLDER]
    import tempfile

    s = int(sys.argv[1])
    f = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="recperf-fuzz-"))
    c = make_case(s, f)
    print(c.describe())
    print("\n".join(run_case(c, f)) or "contract holds")
