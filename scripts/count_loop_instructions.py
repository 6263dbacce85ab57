#!/usr/bin/env python3
"""Instructions per lookup of each kernel's hot loop, from NVIDIA's compiler output, beside the
hand-counted perfmodel/data/calibration/loop_instructions.toml the model still reads.

The counting now lives in kernels/_sass.py (kernel profiles: the hot loop found as a natural
loop, out-of-line assert calls left out, spill code counted, per-bag work of tbe spread over
its 32 lookups); this script prints the profiles' counts so the two can be compared until the
model reads the profiles (issue 9, phase 2) and the TOML file is retired. It writes nothing.

    .venv/bin/python scripts/count_loop_instructions.py [--compiler nvrtc|nvcc|table] [--arch sm_80]
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISTANCES = (0, 1, 2, 4, 8, 16)
CAPS = (0, 32, 48, 64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compiler", default="auto", help="auto, nvrtc, nvcc or table (the shipped profiles)")
    ap.add_argument("--arch", default="sm_80")
    args = ap.parse_args(argv)

    import kernels
    from perfmodel import KernelConfig

    toml = tomllib.loads(resources.files("perfmodel").joinpath("data/calibration/loop_instructions.toml")
                         .read_text(encoding="utf-8"))
    counted = {(e["variant"], e["bounds_check"], e["prefetch_kind"], e["prefetch_distance"], e["register_cap"]):
               e["instructions_per_iteration"] for e in toml["loop"]}
    print(f"{'variant':17s} {'check':7s} {'pd':>3s} {'cap':>4s} {'profile':>8s} {'toml':>6s} {'in flight':>9s} "
          f"{'spill ops':>9s}  compiler")
    configs = [(v, c, pd, cap) for v in ("pytorch", "warp") for c in ("inline", "none") for pd in DISTANCES
               for cap in CAPS]
    configs += [(v, c, 0, cap) for v in ("micro24-combined", "tbe", "pytorch-current") for c in ("inline", "none")
                for cap in (0, 42)]
    for variant, check, pd, cap in configs:
        k = KernelConfig(variant=variant, bounds_check=check, prefetch_distance=pd, register_cap=cap)
        prof = kernels.kernel_profile(k, args.arch, compiler=args.compiler)
        old = counted.get((variant, check, "register", pd, cap))
        print(f"{variant:17s} {check:7s} {pd:3d} {cap:4d} {prof.total_instructions_per_lookup:8.2f} "
              f"{'' if old is None else f'{old:6.2f}':>6s} {prof.row_loads_in_flight:9d} "
              f"{prof.local_ops_per_lookup:9.2f}  {prof.compiler} ({prof.source})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
