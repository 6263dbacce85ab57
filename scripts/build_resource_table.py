#!/usr/bin/env python3
"""Build perfmodel/data/resources/resource_table.json.gz: the compiler's figures and the kernel
profile (read from cuobjdump's disassembly of the same cubin) for every lookup-kernel
configuration the search space can produce, and for the replicas (micro24-combined, tbe,
pytorch-current), with the pinned NVRTC release.

Usage (from the repository root, with recperf[compile] installed):

    python scripts/build_resource_table.py                 # sm_80 and sm_90, 2 processes
    python scripts/build_resource_table.py --jobs 1 --limit 20 --out out/table-smoke.json.gz

Space: variant {pytorch, warp} x prefetch (none, a register ring of 1..16 rows, or L2 hints)
plus variant {micro24-combined, tbe, pytorch-current} without prefetch, x bounds {inline,
unchecked} x dtype {float32, float16} x index dtype int64 (``--index-dtypes int64,int32`` adds int32;
the model reads int64 kernels, and other index types compile on demand) x register cap {0, 24, 32,
40, 42, 48, ..., 128, 255}. Per configuration one program holds
the uncapped kernel and one entry per cap (one front-end run). Every cap is compiled and
stored: a cap above the uncapped register count can still change ptxas's allocation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: caps the search space produces: every occupancy step (allocation is per warp in units of
#: 256 registers, i.e. 8 per thread) from ptxas's minimum 24 to 128, the seed paper's 42, and 255
#: (which is not the same as no cap: ptxas allocates differently under any cap)
REGISTER_CAPS = (24, 32, 40, 42, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 255)
#: (distance, kind): none; a register ring of 1..16 rows; L2 hints (the distance is a kernel
#: argument, so one kernel serves every distance)
PREFETCH = [(0, "none"), *((pd, "register") for pd in range(1, 17)), (1, "l2-hint")]
#: variants and the prefetch settings they take (the replicas fix their own)
VARIANT_PREFETCH = {"pytorch": PREFETCH, "warp": PREFETCH, "micro24-combined": [(0, "none")], "tbe": [(0, "none")],
                    "pytorch-current": [(0, "none")]}


def _tasks(archs: list[str], index_dtypes: list[str]) -> list[tuple[str, str, int, str, str, str, str]]:
    tasks = []
    for arch in archs:
        for variant, prefetch in VARIANT_PREFETCH.items():
            for pd, kind in prefetch:
                for bounds in ("inline", "unchecked"):
                    for dtype in ("float32", "float16"):
                        for idx in index_dtypes:
                            tasks.append((arch, variant, pd, kind, bounds, dtype, idx))
    # the configurations most used first (float32 tables, int64 indices, the replicas, no prefetch
    # or rings up to 8), then the long compiles (deep register rings) first for load
    # balance; the table is written as it grows, so a killed build resumes with --resume
    def rank(t: tuple[str, str, int, str, str, str, str]) -> tuple[int, int]:
        _arch, variant, pd, kind, _bounds, dtype, idx = t
        common = dtype == "float32" and idx == "int64" and (variant not in ("pytorch", "warp") or (
            pd <= 8 and kind in ("register", "none")))
        return (0 if common else 1, -(pd if kind == "register" else 0))

    tasks.sort(key=rank)
    return tasks


def _work(task: tuple[str, str, int, str, str, str, str]) -> tuple[str, dict[str, Any], float, float]:
    from kernels._compile import CompileKey, NvrtcCompiler
    from kernels._profile import compile_with_profiles
    from perfmodel import KernelConfig
    from perfmodel._resources import COLUMNS, resource_key

    arch, variant, pd, kind, bounds, dtype, idx = task
    t0 = time.perf_counter()
    c0 = time.process_time()
    key = CompileKey(
        variant=variant,
        ring_distance=pd if kind == "register" else 0,
        l2_hint=kind == "l2-hint",
        bounds_inline=bounds == "inline",
        dtype=dtype,
        index_dtype=idx,
    )
    figs = compile_with_profiles(key, arch, NvrtcCompiler(), caps=[0, *REGISTER_CAPS])
    out: dict[str, Any] = {}
    for cap, (f, prof) in figs.items():
        cfg = KernelConfig(
            variant=variant,
            register_cap=cap,
            prefetch_distance=pd,
            prefetch_kind=kind if pd > 0 else "register",
            bounds_check="inline" if bounds == "inline" else "none",
        )
        out[resource_key(cfg, dtype=dtype, index_dtype=idx)] = (
            [int(f[c]) for c in COLUMNS], prof.figures() if prof is not None else None)
    return arch, out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="sm_80,sm_90")
    ap.add_argument("--index-dtypes", default="int64",
                    help="comma list of int64, int32 (default int64: the indices the model's kernels read; "
                         "other index types compile on demand)")
    ap.add_argument("--jobs", type=int, default=2, help="compile processes (at most 2 on shared machines)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N configurations (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "perfmodel" / "data" / "resources" / "resource_table.json.gz"))
    ap.add_argument("--resume", action="store_true", help="keep the entries of an existing --out built from the "
                    "same sources and compiler; compile only what is missing")
    ap.add_argument("--allow-unpinned", action="store_true",
                    help="build with an NVRTC other than the pinned release (never for the shipped table)")
    args = ap.parse_args(argv)

    from kernels._compile import PINNED_NVRTC, NvrtcCompiler, _nvrtc_version, source_hash
    from perfmodel._resources import COLUMNS

    NvrtcCompiler()  # fails early where NVRTC is missing
    pkg = metadata.version("nvidia-cuda-nvrtc")
    if pkg != PINNED_NVRTC and not args.allow_unpinned:
        print(f"error: nvidia-cuda-nvrtc {pkg} is installed but the table is built with {PINNED_NVRTC} "
              f"(pip install nvidia-cuda-nvrtc=={PINNED_NVRTC}) or pass --allow-unpinned with another --out",
              file=sys.stderr)
        return 2
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    index_dtypes = [d.strip() for d in args.index_dtypes.split(",") if d.strip()]
    tasks = _tasks(archs, index_dtypes)
    if args.limit:
        tasks = tasks[: args.limit]
    dest = Path(args.out)
    entries: dict[str, dict[str, list[int]]] = {a: {} for a in archs}
    profiles: list[dict[str, Any]] = []  # distinct profile figures; entries point into it
    profile_index: dict[str, int] = {}

    def intern(fig: dict[str, Any]) -> int:
        blob = json.dumps(fig, sort_keys=True)
        if blob not in profile_index:
            profile_index[blob] = len(profiles)
            profiles.append(fig)
        return profile_index[blob]

    build = {"wall_s": 0.0, "task_s": 0.0, "cpu_s": 0.0}
    if args.resume and dest.is_file():
        old = json.loads(gzip.decompress(dest.read_bytes()))
        if (old.get("source_hash") == source_hash() and old.get("compiler") == _nvrtc_version()
                and old.get("format") == 2):
            old_profiles = old.get("profiles", [])
            # the table holds exactly the requested space: entries of other archs or index types go
            wanted = {(t[0], _base_key(t).rsplit("/", 1)[1]) for t in tasks}
            for a, rows in old["entries"].items():
                if a not in entries:
                    continue
                entries[a].update(
                    {k: [*v[: len(COLUMNS)], intern(old_profiles[v[len(COLUMNS)]]) if v[len(COLUMNS)] >= 0 else -1]
                     for k, v in rows.items() if (a, k.rsplit("/", 1)[1]) in wanted})
            build = {k: float(old.get("build", {}).get(k, 0.0)) for k in build}
            done = {(a, k) for a, rows in entries.items() for k in rows}
            tasks = [t for t in tasks if (t[0], _base_key(t)) not in done]
            print(f"resuming: {len(done)} entries kept, {len(tasks)} configurations left", flush=True)
        else:
            print("existing table is from other sources or another compiler: rebuilding", flush=True)
    n_total = len(tasks)
    t0 = time.perf_counter()
    task_s = cpu_s = 0.0

    def write(complete: bool) -> None:
        wall = time.perf_counter() - t0
        doc: dict[str, Any] = {
            "format": 2,
            "compiler": _nvrtc_version(),
            "nvrtc_package": f"nvidia-cuda-nvrtc=={pkg}",
            "cuda_bindings": metadata.version("cuda-bindings"),
            "source_hash": source_hash(),
            "complete": complete,
            "register_caps": [0, *REGISTER_CAPS],
            "index_dtypes": index_dtypes,
            "keys": "variant/cap/prefetch(pd0|ring<d>|l2hint)/bounds(inline|unchecked)/dtype/index_dtype; "
                    "warp: 16-byte loads; tbe: rows of up to 128 elements (kMaxVecsPerThread 1)",
            "disassembler": f"cuobjdump (nvidia-cuda-cuobjdump {_pkg_version('nvidia-cuda-cuobjdump')})",
            "profile_columns": "each entry's sixth column indexes `profiles` (perfmodel.KernelProfile figures)",
            # cpu_s: CPU time of the compiles (NVRTC runs in-process); on an otherwise idle machine
            # the wall time is about cpu_s / jobs. The wall time here depends on other load.
            "build": {"wall_s": round(build["wall_s"] + wall, 1), "task_s": round(build["task_s"] + task_s, 1),
                      "cpu_s": round(build["cpu_s"] + cpu_s, 1), "jobs": args.jobs, "cpu_count": os.cpu_count(),
                      "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            "columns": list(COLUMNS),
            "profiles": profiles,
            "entries": {a: dict(sorted(e.items())) for a, e in sorted(entries.items())},
        }
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))
        tmp.replace(dest)

    with mp.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        for n, (arch, out, dt, dc) in enumerate(pool.imap_unordered(_work, tasks), 1):
            entries[arch].update({k: [*row, intern(fig) if fig is not None else -1] for k, (row, fig) in out.items()})
            task_s += dt
            cpu_s += dc
            if n % 8 == 0 or n == n_total:
                write(complete=n == n_total)
                el = time.perf_counter() - t0
                print(f"{n}/{n_total} configurations, {sum(map(len, entries.values()))} entries, {el:.0f} s "
                      f"elapsed, {cpu_s:.0f} s CPU", flush=True)
    if not tasks:
        write(complete=True)
    wall = time.perf_counter() - t0
    missing = sum(1 for rows in entries.values() for v in rows.values() if v[len(COLUMNS)] < 0)
    print(f"profiles: {len(profiles)} distinct; entries without a profile: {missing}")
    print(f"wrote {dest}: {sum(map(len, entries.values()))} entries from {n_total} configurations "
          f"in {wall:.0f} s wall ({cpu_s:.0f} s CPU compiling, {args.jobs} processes)")
    return 0


def _pkg_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _base_key(task: tuple[str, str, int, str, str, str, str]) -> str:
    from perfmodel import KernelConfig
    from perfmodel._resources import resource_key

    _arch, variant, pd, kind, bounds, dtype, idx = task
    cfg = KernelConfig(variant=variant, prefetch_distance=pd, prefetch_kind=kind if pd > 0 else "register",
                       bounds_check="inline" if bounds == "inline" else "none")
    return resource_key(cfg, dtype=dtype, index_dtype=idx)


if __name__ == "__main__":
    raise SystemExit(main())
