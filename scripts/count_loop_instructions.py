#!/usr/bin/env python3
"""The issue interval of the compiled hot loops: cycles one warp waits between two of its own
instructions, read from the control bits of NVIDIA's disassembly (``--write``: into
perfmodel/data/calibration/issue.toml, which the model reads).

Every SASS instruction of Volta and later carries a stall count: the cycles the scheduler waits
before it issues the same warp's next instruction (Jia et al., "Dissecting the NVIDIA Volta GPU
Architecture via Microbenchmarking", 2018, section on control codes; the fixed latencies of
dependent instructions are encoded there by the compiler). A warp therefore needs at least the
sum of its loop's stall counts to issue one pass, whatever the memory does. The kernel profiles
(kernels/_sass.py) count instructions per lookup but not their stalls, so the model multiplies
the profile's count by the mean stall per instruction measured here, per architecture, over a
representative set of configurations (every variant, both checks, register rings 0..8, four
register caps, both table dtypes). No timing enters: the figure is a property of the compiler's
output for these kernels.

It also prints each configuration's profile figures (instructions per lookup, row loads in
flight, spill operations) as a cross-check of kernels/_sass.py against the raw disassembly.

    .venv/bin/python scripts/count_loop_instructions.py [--arch sm_80 sm_90] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DISTANCES = (0, 1, 2, 4, 8)
CAPS = (0, 32, 48, 64)
OUT = ROOT / "perfmodel" / "data" / "calibration" / "issue.toml"


def configs() -> list[tuple[dict[str, object], str]]:
    """(kernel fields, table dtype) of the sample."""
    out: list[tuple[dict[str, object], str]] = []
    for v in ("pytorch", "warp"):
        for check in ("inline", "separate"):
            for pd in DISTANCES:
                for cap in CAPS:
                    out.append(({"variant": v, "bounds_check": check, "prefetch_distance": pd, "register_cap": cap},
                                "float32"))
            out.append(({"variant": v, "bounds_check": check}, "float16"))
    for v in ("micro24-combined", "tbe", "pytorch-current"):
        for check in ("inline", "separate"):
            for cap in (0, 42):
                out.append(({"variant": v, "bounds_check": check, "register_cap": cap}, "float32"))
            out.append(({"variant": v, "bounds_check": check}, "float16"))
    return out


def hot_loop_stalls(text: str) -> tuple[int, int, int]:
    """(stall cycles, instructions, row loads) of the hot loop of the one function in ``text``."""
    from kernels._sass import analyze_function, cold_blocks, parse_sass

    funcs = parse_sass(text)
    ins = next(iter(funcs.values()))
    cold = cold_blocks(ins)
    ins = [x for k, x in enumerate(ins) if k not in cold]
    la = analyze_function(ins)
    s = next(k for k, i in enumerate(ins) if i.address == la.start)
    e = next(k for k, i in enumerate(ins) if i.address == la.end)
    body = ins[s:e + 1]
    if any(i.control is None for i in body):
        raise RuntimeError("the disassembly carries no control bits (cuobjdump without the encoding words)")
    return sum(max(i.control.stall, 1) for i in body if i.control is not None), len(body), la.row_loads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=["sm_80", "sm_90"])
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)

    import kernels
    from perfmodel import KernelConfig

    results: dict[str, tuple[int, int, int, str]] = {}
    print(f"{'arch':5s} {'dtype':7s} {'kernel':70s} {'instr/lookup':>12s} {'in flight':>9s} {'spill ops':>9s} "
          f"{'stall/instr':>11s}")
    for arch in args.arch:
        stall_sum = instr_sum = n = 0
        version = ""
        for fields, dtype in configs():
            k = KernelConfig(**fields)  # type: ignore[arg-type]
            text, version = kernels.kernel_sass(k, arch, dtype=dtype)
            prof = kernels.kernel_profile(k, arch, dtype=dtype)
            stalls, count, _rows = hot_loop_stalls(text)
            stall_sum += stalls
            instr_sum += count
            n += 1
            print(f"{arch:5s} {dtype:7s} {fields!s:70s} {prof.total_instructions_per_lookup:12.2f} "
                  f"{prof.row_loads_in_flight:9d} {prof.local_ops_per_lookup:9.2f} {stalls / count:11.2f}", flush=True)
        results[arch] = (stall_sum, instr_sum, n, version)
        print(f"{arch}: {stall_sum} stall cycles over {instr_sum} hot-loop instructions of {n} configurations: "
              f"{stall_sum / instr_sum:.3f} cycles per instruction ({version})")
    if args.write:
        today = datetime.date.today().isoformat()
        lines = [
            "# Mean issue interval of one warp's instructions in the compiled hot loops, written by",
            f"# scripts/count_loop_instructions.py on {today}: the control bits' stall counts summed over the hot",
            "# loop of each configuration of its sample, divided by the instructions. Derived from the compiler's",
            "# output only (no timing). The model multiplies a kernel profile's instructions per lookup by it.",
            "",
            "[issue_interval_cycles]",
        ]
        for arch, (stalls, count, n, version) in results.items():
            lines.append(f'{arch} = {{ value = {stalls / count:.4f}, source = "{stalls} stall cycles / {count} '
                         f'instructions, hot loops of {n} configurations (scripts/count_loop_instructions.py), '
                         f'{version}, cuobjdump -sass control bits" }}')
        OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
