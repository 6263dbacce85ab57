"""Does another NVRTC release compile the replica kernels to different code, and would the model
predict differently from it? (The published sources name the CUDA they built with, e.g. PyTorch
PR #167834: 'PyTorch 2.9.0 compiled with CUDA 12.8'; the shipped table is NVRTC 13.5.)

Compiles each variant with the project's options (``kernels._compile.compile_key(...).defines()``)
with the pinned NVRTC (``cuda.bindings``) and with a second ``libnvrtc.so`` loaded by path, reads
both cubins with the project's own readers (``.nv.info`` + ``ptxas -v`` figures, ``cuobjdump
-sass``, :func:`kernels._profile.profile_from_sass`), says whether the instruction streams
match (ignoring the control words: stall counts and scoreboard numbers), and, for a ledger
source, runs :func:`validation._ledger.compare_ledger` twice: as shipped, and with every
kernel's figures and profile taken from the second compiler.

The pinned NVRTC is loaded first: in a process that already holds another release's libnvrtc,
cuda.bindings uses that one (and ``kernels._compile._nvrtc_version`` then names it).

    python3 -m venv /tmp/nvrtc128 && /tmp/nvrtc128/bin/pip install 'nvidia-cuda-nvrtc-cu12==12.8.*'
    .venv/bin/python scripts/compare_toolchains.py \
        --nvrtc /tmp/nvrtc128/lib/python3.11/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 \
        [--arch sm_90 --arch sm_80] [--variant pytorch --variant pytorch-current] [--ledger pytorch-pr-167834]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import perfmodel
from kernels._compile import KERNEL_DIR, Compiler, CompileResult, _figures, compile_key, get_compiler
from kernels._profile import disassemble, profile_from_sass
from kernels._sass import parse_sass
from perfmodel import KernelConfig, KernelProfile, ResourceUsage


class LibNvrtc(Compiler):
    """NVRTC from a ``libnvrtc.so`` given by path (ctypes; any release, no cuda-bindings of its major)."""

    name = "nvrtc"

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)

    @property
    def version(self) -> str:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return f"nvrtc {major.value}.{minor.value} (ctypes)"

    def _check(self, err: int, what: str) -> None:
        if err:
            raise RuntimeError(f"{what} failed: NVRTC error {err}")

    def _text(self, prog: ctypes.c_void_p, size_fn: Any, get_fn: Any) -> bytes:
        n = ctypes.c_size_t()
        self._check(size_fn(prog, ctypes.byref(n)), "size")
        buf = ctypes.create_string_buffer(n.value)
        self._check(get_fn(prog, buf), "get")
        return buf.raw

    def compile(self, source: Path, options: Sequence[str], arch: str) -> CompileResult:
        lib = self._lib
        prog = ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.read_bytes(), source.name.encode(), 0, None,
                                           None), "nvrtcCreateProgram")
        try:
            # the options NvrtcCompiler passes
            opts = [f"-arch={arch}", "-Xptxas=-v", f"-I{KERNEL_DIR}", "-std=c++17", *options]
            res = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts]))
            log = self._text(prog, lib.nvrtcGetProgramLogSize, lib.nvrtcGetProgramLog)
            log_text = log.rstrip(b"\x00").decode(errors="replace")
            if res:
                raise RuntimeError(f"NVRTC failed to compile {source.name}:\n{log_text}")
            cubin = self._text(prog, lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN)
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))
        return CompileResult(cubin=cubin, log=log_text, compiler=self.version)


def compiled(comp: Compiler, kernel: KernelConfig, arch: str) -> tuple[ResourceUsage, KernelProfile, list[str], int]:
    """(figures, profile, instruction texts, control words) of ``kernel``'s lookup kernel."""
    key = compile_key(kernel)
    res = comp.compile(key.source, key.defines(), arch)
    sass = disassemble(res.cubin, key.entry)
    prof = profile_from_sass(sass, key.entry, key, compiler=comp.version)
    ru = ResourceUsage(**_figures(res, key.entry), compiler=comp.version, source="compiled")
    instrs = parse_sass(sass)[key.entry]
    return ru, prof, [i.text for i in instrs], hash(tuple(i.control for i in instrs))


def _row(ru: ResourceUsage, p: KernelProfile) -> str:
    u, k = max(1, p.lookups_per_iteration), max(1, p.row_loads_in_flight)
    rounds = -(-u // k) / u  # KernelFacts.memory_rounds_per_lookup: ceil(u / k) / u
    return (f"regs {ru.registers:3d} spill {ru.spill_store_bytes + ru.spill_load_bytes:3d}  in flight "
            f"{p.row_loads_in_flight}  lookups/pass {p.lookups_per_iteration}  rounds/lookup {rounds:.2f}  "
            f"instr/lookup {p.total_instructions_per_lookup:6.3f}  index on chain {p.index_on_row_chain}  "
            f"loads/lookup {dict(p.global_loads_per_lookup)}")


@contextmanager
def figures_from(comp: Compiler) -> Iterator[None]:
    """The model takes every kernel's figures and profile from ``comp`` (the shipped table and the
    memoized facts set aside while inside)."""
    import perfmodel._kernel as pk

    saved = pk._compiled_figures

    def from_comp(k: KernelConfig, arch: str, dtype: str, tbe_vecs: int) -> tuple[ResourceUsage, KernelProfile]:
        if dtype != "float32" or tbe_vecs != 1:
            raise RuntimeError("this script compiles float32 rows, one vector per lane")
        ru, prof, _, _ = compiled(comp, k, arch)
        return ru, prof

    pk._compiled_figures = from_comp
    perfmodel.clear_caches()
    try:
        yield
    finally:
        pk._compiled_figures = saved
        perfmodel.clear_caches()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nvrtc", required=True, help="path of the other release's libnvrtc.so")
    ap.add_argument("--arch", action="append", help="architectures (default sm_90)")
    ap.add_argument("--variant", action="append", help="variants, bounds check inline (default pytorch, pytorch-current)")
    ap.add_argument("--ledger", default="pytorch-pr-167834", help="ledger source to predict ('' for none)")
    args = ap.parse_args()
    # the pinned NVRTC first: loaded after another libnvrtc, cuda.bindings would find that one
    pinned = get_compiler("nvrtc")
    pinned_version = pinned.version
    other = LibNvrtc(args.nvrtc)
    if pinned.version != pinned_version or pinned_version.split()[1] == other.version.split()[1]:
        raise SystemExit(f"the two compilers are not told apart: {pinned_version} / {pinned.version} / {other.version}")
    for arch in args.arch or ["sm_90"]:
        for v in args.variant or ["pytorch", "pytorch-current"]:
            k = KernelConfig(variant=v, block_size=256, bounds_check="inline")
            a = compiled(pinned, k, arch)
            b = compiled(other, k, arch)
            same = "same instructions" if a[2] == b[2] else f"instructions differ ({len(a[2])} vs {len(b[2])})"
            ctl = "same control words" if a[3] == b[3] else "control words differ"
            print(f"{arch} {v}: {same}, {ctl}")
            print(f"  {pinned.version:>40}: {_row(a[0], a[1])}")
            print(f"  {other.version:>40}: {_row(b[0], b[1])}")
    if args.ledger:
        from validation._ledger import compare_ledger

        def show(title: str) -> None:
            c = compare_ledger(sources=[args.ledger])
            print(title)
            for p in c.points:
                if p.ok and p.predicted is not None:
                    print(f"  {p.gpu:10} {p.predicted.as_timed_s * 1e6:7.1f} us (measured "
                          f"{p.point.measured_s * 1e6:.1f})  {p.point.name}")
            for r in c.ratios:
                if r.ok and r.predicted is not None:
                    print(f"  {r.gpu:10} ratio {r.predicted:.3f} (measured {r.ratio.measured:.3f})  {r.ratio.name}")

        show(f"ledger {args.ledger}, shipped table ({pinned.version}):")
        with figures_from(other):
            show(f"ledger {args.ledger}, every kernel compiled by {other.version}:")
    return 0


if __name__ == "__main__":
    sys.exit(main())
