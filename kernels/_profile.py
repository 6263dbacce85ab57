"""Kernel profiles from the compiled code: compile (NVRTC or nvcc), disassemble (NVIDIA's
``cuobjdump -sass``, from PyPI ``nvidia-cuda-cuobjdump`` or the CUDA toolkit) and read the hot
loop (:mod:`kernels._sass`) into a :class:`perfmodel.KernelProfile`.

Per lookup means per row of one bag per warp: the hot loop's figures divided by the lookups one
pass of it handles (its row loads: one vector per lane per row, ``tbe`` rows of more than 128
elements take several), plus, for ``tbe``, the enclosing loop's work (one index load per lane
and the bookkeeping of 32 lookups) spread over its 32 lookups, plus a validation loop over the
bag's indices (``pytorch-current``) per index it checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from kernels._compile import (
    CompileKey,
    Compiler,
    available_compiler,
    cache_file,
    cached_or_built,
    compile_key,
    resolve_compiler,
)
from kernels._sass import PIPES, LoopAnalysis, analyze_function, parse_sass
from perfmodel import InputError, KernelConfig, KernelProfile, ResourceUsage, check_arch, load_resource_table

__all__ = [
    "compiled_figures",
    "cuobjdump_path",
    "disassemble",
    "kernel_profile",
    "kernel_sass",
    "profile_from_analysis",
    "profile_from_sass",
]

#: lookups per pass of tbe's enclosing loop (FBGEMM's kThreadGroupSize: one index per lane)
TBE_LOOKUPS_PER_GROUP = 32


@lru_cache(maxsize=1)
def cuobjdump_path() -> str | None:
    """``cuobjdump`` on PATH, else the one PyPI's ``nvidia-cuda-cuobjdump`` installs, else None;
    None too where the ``nvdisasm`` it runs for ``-sass`` is neither on PATH nor beside it."""
    tool = _find_tool("cuobjdump")
    if tool is None:
        return None
    if shutil.which("nvdisasm") is None and not os.access(Path(tool).with_name("nvdisasm"), os.X_OK):
        return None
    return tool


def _find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    import importlib.util

    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    for base in (spec.submodule_search_locations or []) if spec else []:
        for cand in sorted(Path(base).glob(f"*/bin/{name}")):
            if os.access(cand, os.X_OK):
                return str(cand)
    return None


def disassemble(cubin: bytes, function: str | None = None) -> str:
    """``cuobjdump -sass`` of a cubin (one function's code with ``function``). RuntimeError where
    no cuobjdump is installed."""
    tool = cuobjdump_path()
    if tool is None:
        raise RuntimeError("no disassembler: install recperf[compile] (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm) "
                           "or the CUDA toolkit")
    env = dict(os.environ)
    helper = shutil.which("nvdisasm") or str(Path(tool).with_name("nvdisasm"))
    if os.access(helper, os.X_OK):  # cuobjdump runs nvdisasm, found on PATH or NVDISASM_PATH
        env.setdefault("NVDISASM_PATH", str(Path(helper).parent))
        env["PATH"] = f"{Path(helper).parent}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="recperf-sass-") as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        cmd = [tool, "-sass", *(("-fun", function) if function else ()), str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if proc.returncode:
            raise RuntimeError(f"cuobjdump failed ({' '.join(cmd)}): {proc.stderr.strip()[:400]}")
        return proc.stdout


def profile_from_analysis(
    la: LoopAnalysis, *, row_loads_per_lookup: int = 1, outer_lookups: int = TBE_LOOKUPS_PER_GROUP,
    source: str = "compiled", compiler: str = "",
) -> KernelProfile:
    """Per-lookup figures from a hot-loop analysis (see the module docstring)."""
    lookups = max(1, la.row_loads // max(1, row_loads_per_lookup))
    per = {p: la.by_pipe.get(p, 0) / lookups for p in PIPES}
    index = la.index_loads / lookups
    if la.outer_index_loads:
        for p in PIPES:
            per[p] += la.outer_by_pipe.get(p, 0) / outer_lookups
        index += la.outer_index_loads / outer_lookups
    if la.check_loop_loads:
        for p in PIPES:
            per[p] += la.check_loop_by_pipe.get(p, 0) / la.check_loop_loads
        index += 1.0
    return KernelProfile(
        row_loads_in_flight=max(1, la.row_loads_in_flight),
        instructions_per_lookup=per,
        global_loads_per_lookup={"index": index, "row": la.row_loads / lookups, "other": la.other_loads / lookups},
        local_ops_per_lookup=la.local_ops / lookups,
        index_on_row_chain=la.index_on_row_chain,
        chain=la.chain,
        lookups_per_iteration=lookups,
        in_flight_method=la.in_flight_method,
        source=source,
        compiler=compiler,
    )


def _rows_per_lookup(key: CompileKey) -> int:
    return key.tbe_vecs if key.variant == "tbe" else 1


def profile_from_sass(text: str, entry: str, key: CompileKey, *, source: str = "compiled",
                      compiler: str = "") -> KernelProfile:
    """The profile of function ``entry`` in ``cuobjdump -sass`` text compiled from ``key``."""
    funcs = parse_sass(text)
    if entry not in funcs:
        raise RuntimeError(f"the disassembly has no function {entry!r} (has {sorted(funcs)[:6]})")
    la = analyze_function(funcs[entry])
    return profile_from_analysis(la, row_loads_per_lookup=_rows_per_lookup(key), source=source, compiler=compiler)


def kernel_profile(
    config: KernelConfig,
    arch: str,
    *,
    dtype: str = "float32",
    index_dtype: str = "int64",
    compiler: str = "auto",
    tbe_vecs: int = 1,
    use_cache: bool = True,
) -> KernelProfile:
    """The profile of ``config``'s lookup kernel on ``arch`` (see :class:`perfmodel.KernelProfile`).

    ``compiler``: ``auto`` (a compiler and cuobjdump if installed, else the shipped table),
    ``nvrtc``, ``nvcc`` or ``table``. Compiled profiles are cached per compiler version and
    source hash; ``profile.source`` says ``table``, ``compiled`` or ``cache``.
    """
    check_arch(arch)
    key = compile_key(config, dtype=dtype, index_dtype=index_dtype, tbe_vecs=tbe_vecs)
    comp = resolve_compiler(compiler)
    if comp is not None and compiler == "auto" and cuobjdump_path() is None:
        comp = None  # a compiler but no disassembler: the table answers
    if comp is None:
        prof = load_resource_table().profile(config, arch, dtype=dtype, index_dtype=index_dtype)
        if prof is None or (config.variant == "tbe" and tbe_vecs != 1):
            raise InputError(
                f"the shipped resource table has no profile for {arch} {dtype} {index_dtype} {config.to_dict()} "
                "and no compiler with a disassembler is installed (install recperf[compile])"
            )
        return prof
    found: Compiler = comp
    version = found.version

    def build() -> tuple[KernelProfile, Any]:
        res = found.compile(key.source, key.defines(), arch)
        prof = profile_from_sass(disassemble(res.cubin, key.entry), key.entry, key, compiler=version)
        return prof, prof.figures()

    return cached_or_built(cache_file("profiles", version, arch, key), use_cache,
                           lambda fig: KernelProfile.from_figures(fig, source="cache", compiler=version), build)


def compiled_figures(
    config: KernelConfig, arch: str, dtype: str, index_dtype: str, tbe_vecs: int
) -> tuple[ResourceUsage, KernelProfile] | None:
    """``perfmodel.ProfileProvider``: the resource figures and the profile of a configuration the
    shipped table lacks, compiled now (or from the compile cache); None where no compiler with a
    disassembler is installed. Register it with ``perfmodel.set_profile_provider``."""
    if available_compiler() is None or cuobjdump_path() is None:
        return None
    try:
        from kernels._compile import resource_usage

        return (resource_usage(config, arch, dtype=dtype, index_dtype=index_dtype),
                kernel_profile(config, arch, dtype=dtype, index_dtype=index_dtype, tbe_vecs=tbe_vecs))
    except RuntimeError:
        return None


def kernel_sass(
    config: KernelConfig, arch: str, *, dtype: str = "float32", index_dtype: str = "int64", compiler: str = "auto",
    tbe_vecs: int = 1,
) -> tuple[str, str]:
    """(``cuobjdump -sass`` text of ``config``'s lookup kernel on ``arch``, compiler version).
    RuntimeError where no compiler or no disassembler is installed."""
    check_arch(arch)
    key = compile_key(config, dtype=dtype, index_dtype=index_dtype, tbe_vecs=tbe_vecs)
    if compiler == "table":
        raise RuntimeError("the shipped table holds figures, not the disassembly: --sass needs a compiler "
                           "(--compiler auto, nvrtc or nvcc)")
    comp = resolve_compiler(compiler)
    if comp is None:
        raise RuntimeError("no CUDA compiler is installed (install recperf[compile] or the CUDA toolkit); the shipped "
                           "table holds the profile's figures, not the disassembly")
    res = comp.compile(key.source, key.defines(), arch)
    return disassemble(res.cubin, key.entry), comp.version


def compile_with_profiles(
    key: CompileKey, arch: str, compiler: Compiler, caps: list[int]
) -> dict[int, tuple[dict[str, int], KernelProfile | None]]:
    """For the resource-table build: one program holding the uncapped kernel and one entry per cap
    (as :func:`kernels._compile.compile_figures`), its figures and each entry's profile from one
    disassembly of the cubin (None where the reader finds no loop with row loads)."""
    from kernels._compile import _figures

    capped = sorted({c for c in caps if c > 0})
    listing = " ".join(f"X({c})" for c in capped)
    res = compiler.compile(key.source, [*key.defines(with_cap=False), f"-DRECPERF_CAP_LIST(X)={listing}"], arch)
    funcs = parse_sass(disassemble(res.cubin))
    out = {}
    seen: dict[tuple[tuple[object, ...], ...], KernelProfile | None] = {}
    for cap in [0, *capped]:
        entry = key.entry if cap == 0 else f"{key.entry}_cap{cap}"
        if entry not in funcs:
            raise RuntimeError(f"the disassembly has no function {entry!r}")
        # caps above what the kernel uses often compile to the same code: read it once
        code = tuple((i.address, i.text, i.control) for i in funcs[entry])
        if code not in seen:
            try:
                la = analyze_function(funcs[entry])
                seen[code] = profile_from_analysis(la, row_loads_per_lookup=_rows_per_lookup(key),
                                                   compiler=compiler.version)
            except ValueError:
                seen[code] = None
        out[cap] = (_figures(res, entry), seen[code])
    return out
