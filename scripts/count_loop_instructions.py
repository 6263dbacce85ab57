#!/usr/bin/env python3
"""Count the SASS instructions one lookup iteration of each kernel executes, from NVIDIA's own
compiler output, and write perfmodel/data/calibration/loop_instructions.toml.

For each (variant, bounds check, prefetch kind, prefetch distance) the kernel source in kernels/
is compiled with nvcc for sm_80 and disassembled (cuobjdump + nvdisasm, from PyPI:
nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm). The hot loop is the backward-branch loop of the
sum path without per-sample weights: the loop with the fewest global loads per row load, and
among those the one with the most row loads (the unrolled main loop). Out-of-line assert
blocks (a predicated branch around a CALL, taken only when an index is bad) are not counted.
Per-iteration figures = counted instructions / row loads in the body.

    .venv/bin/python scripts/count_loop_instructions.py        # needs nvcc on PATH
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(str(resources.files("perfmodel").joinpath("data/calibration/loop_instructions.toml")))
DISTANCES = (0, 1, 2, 4, 8, 16)
#: register caps counted (0 = no cap); a tight cap spills inside the loop (LDL/STL)
CAPS = (0, 24, 32, 40, 48, 64, 96)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    for base in (spec.submodule_search_locations or []) if spec else []:
        for cand in Path(base).glob(f"*/bin/{name}"):
            return str(cand)
    sys.exit(f"error: {name} not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")


def sass(variant: str, defines: dict[str, int], arch: str = "sm_80") -> str:
    src = ROOT / "kernels" / f"embedding_bag_{variant}.cu"
    with tempfile.TemporaryDirectory() as d:
        cubin = os.path.join(d, "k.cubin")
        cmd = ["nvcc", "-cubin", f"-arch={arch}", "-O3", f"-I{ROOT / 'kernels'}",
               *[f"-D{k}={v}" for k, v in defines.items()], str(src), "-o", cubin]
        subprocess.run(cmd, check=True, capture_output=True)
        env = dict(os.environ, PATH=os.path.dirname(_tool("nvdisasm")) + os.pathsep + os.environ["PATH"])
        return subprocess.run([_tool("cuobjdump"), "-sass", cubin], check=True, capture_output=True, text=True,
                              env=env).stdout


def hot_loop(text: str, row_load: re.Pattern[str]) -> tuple[float, float, int]:
    """(instructions per iteration, global loads per iteration, row loads in the body)."""
    ins = [(int(a, 16), t.strip()) for a, t in re.findall(r"/\*([0-9a-f]{4,})\*/\s+(.*?);", text)]
    cold: set[int] = set()
    for a, t in ins:  # predicated forward branch over a block holding a CALL: assert path
        m = re.match(r"@!?P\d+\s+BRA\s+(?:`\(\.L_x_\d+\)\s*)?0x([0-9a-f]+)", t) or re.match(r"@!?P\d+\s+BRA\s+0x([0-9a-f]+)", t)
        if m:
            tgt = int(m.group(1), 16)
            block = [x for x in ins if a < x[0] < tgt]
            # short (< 40 instructions) and holding a call: an out-of-line assert block
            if tgt > a and len(block) < 40 and any("CALL" in x[1] for x in block) and not any(
                row_load.search(x[1]) for x in block
            ):
                cold.update(x[0] for x in block)
    loops = []
    for a, t in ins:
        m = re.search(r"BRA\s+.*?0x([0-9a-f]+)", t)
        if m and int(m.group(1), 16) <= a:
            loops.append((int(m.group(1), 16), a))
    # innermost loops: no other backward branch inside
    inner = [(s, e) for s, e in loops if not any(s <= s2 and e2 < e and (s2, e2) != (s, e) for s2, e2 in loops)]
    best: tuple[float, float, int] | None = None
    best_key: tuple[float, int] | None = None
    for s, e in inner:
        body = [x for x in ins if s <= x[0] <= e and x[0] not in cold]
        rows = sum(bool(row_load.search(x[1])) for x in body)
        idx = sum("LDG.E.64" in x[1] for x in body)
        loads = sum("LDG" in x[1] for x in body)
        # the plain sum loop: one index load per row load (a per-sample-weight loop has more)
        if rows == 0 or rows > idx:
            continue
        key = (loads / rows, -rows)
        if best_key is None or key < best_key:
            best_key = key
            best = (len(body) / rows, loads / rows, rows)
    if best is None:
        raise RuntimeError("no loop with row loads found")
    return best


def main() -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        sys.exit("error: nvcc not found on PATH")
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    patterns = {"pytorch": re.compile(r"LDG\.E(\.SYS|\.CONSTANT)?\s+R"), "warp": re.compile(r"LDG\.E\.128")}
    rows = []
    for variant in ("pytorch", "warp"):
        for check, inline in (("inline", 1), ("none", 0)):
            for kind, hint in (("register", 0), ("l2-hint", 1)):
                # the hint distance is a kernel argument: one build serves every distance >= 1
                for pd in DISTANCES if not hint else (1,):
                    for cap in CAPS:
                        ring = 0 if hint else pd
                        d = {"RECPERF_BOUNDS_INLINE": inline, "RECPERF_PREFETCH_DISTANCE": ring,
                             "RECPERF_PREFETCH_L2HINT": hint, "RECPERF_REGISTER_CAP": cap}
                        per_iter, loads, n_rows = hot_loop(sass(variant, d), patterns[variant])
                        rows.append((variant, check, kind, pd, cap, per_iter, loads, n_rows))
                        print(f"{variant:8s} {check:7s} {kind:8s} pd={pd:2d} cap={cap:3d}: {per_iter:6.2f} instr/iter, "
                              f"{loads:4.2f} loads/iter ({n_rows} rows in the loop body)", flush=True)
    lines = [f"# SASS instructions per lookup iteration, counted by scripts/count_loop_instructions.py on "
             f"{datetime.date.today().isoformat()}",
             f'# compiler: nvcc "{version}", sm_80, fp32 table, int64 indices, mode sum, no per-sample weights.',
             "# The model interpolates between prefetch distances and caps (l2-hint: one build for every distance >= 1;"
             "\n# register_cap 0 = no cap). A tight cap spills inside the loop: its LDL/STL are counted.", "",
             f'compiler = "{version}"', "arch = \"sm_80\"", ""]
    for variant, check, kind, pd, cap, per_iter, loads, n_rows in rows:
        lines.append("[[loop]]")
        lines.append(f'variant = "{variant}"\nbounds_check = "{check}"\nprefetch_kind = "{kind}"\n'
                     f"prefetch_distance = {pd}\nregister_cap = {cap}\ninstructions_per_iteration = {per_iter:.3f}\n"
                     f"global_loads_per_iteration = {loads:.3f}\nrow_loads_in_body = {n_rows}\n")
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
