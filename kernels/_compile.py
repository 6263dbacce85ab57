"""Offline compilation of the kernel sources (no GPU needed) and the compiler's resource report.

Two compilers: NVRTC from PyPI through cuda-python (``cuda.bindings.nvrtc``; the
``compile`` extra pins the release the shipped table is built with) and ``nvcc`` where it is
installed. Registers and stack come from the cubin's ``.nv.info`` records (EIATTR_REGCOUNT,
EIATTR_FRAME_SIZE, read with pyelftools) and are cross-checked with the ptxas ``-v`` report,
which is the only place spill bytes appear. Static shared memory is the size of the cubin's
``.nv.shared.<kernel>`` section (the lookup kernels use none).

Figures move between compiler versions, so every figure carries its compiler's name and
version, results are cached per compiler version and source hash, and figures from a compiler
other than the pinned NVRTC release are never written into the shipped table.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from perfmodel import DTYPES, INDEX_DTYPES, InputError, KernelConfig, ResourceUsage, load_resource_table

__all__ = [
    "COMPILERS",
    "KERNEL_DIR",
    "PINNED_NVRTC",
    "CompileKey",
    "CompileResult",
    "Compiler",
    "NvccCompiler",
    "NvrtcCompiler",
    "available_compiler",
    "cache_dir",
    "compile_key",
    "get_compiler",
    "parse_cubin",
    "parse_ptxas_log",
    "resource_usage",
    "source_hash",
]

KERNEL_DIR = Path(__file__).resolve().parent
#: the NVRTC release the shipped resource table is built with (pyproject's `compile` extra)
PINNED_NVRTC = "13.5.37"
SOURCES = {
    "pytorch": "embedding_bag_pytorch.cu",
    "pytorch-current": "embedding_bag_pytorch.cu",
    "warp": "embedding_bag_warp.cu",
    "micro24-combined": "embedding_bag_micro24.cu",
    "tbe": "embedding_bag_tbe.cu",
    "aux": "embedding_bag_aux.cu",
}
ENTRY_NAMES = {
    "pytorch": "recperf_embedding_bag_pytorch",
    "pytorch-current": "recperf_embedding_bag_pytorch",
    "warp": "recperf_embedding_bag_warp",
    "micro24-combined": "recperf_embedding_bag_micro24",
    "tbe": "recperf_embedding_bag_tbe",
}
COMPILERS = ("auto", "nvrtc", "nvcc", "table")
#: widest vector load of the warp variant (bytes per lane per row)
WARP_VEC_BYTES = 16


def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of every kernel source file, in name order."""
    h = hashlib.sha256()
    for p in sorted(KERNEL_DIR.glob("*.cu")) + sorted(KERNEL_DIR.glob("*.cuh")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """Where compiled results are cached: $RECPERF_CACHE_DIR, else ~/.cache/recperf."""
    root = os.environ.get("RECPERF_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "recperf"


# ---- what is compiled ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompileKey:
    """Everything that changes the compiled lookup kernel (block size and the L2-hint distance,
    a kernel argument, do not)."""

    variant: str
    register_cap: int = 0
    #: rows held ahead in a register ring (prefetch_kind="register"); 0 = no ring
    ring_distance: int = 0
    #: prefetch.global.L2 hints (prefetch_kind="l2-hint"), distance given at launch
    l2_hint: bool = False
    bounds_inline: bool = True
    dtype: str = "float32"
    index_dtype: str = "int64"
    #: warp variant only: bytes per lane per load
    vec_bytes: int = WARP_VEC_BYTES
    #: tbe only: 4-element vectors per lane per row (kMaxVecsPerThread; rows of up to 128 x this)
    tbe_vecs: int = 1

    def defines(self, *, with_cap: bool = True) -> list[str]:
        d = [
            f"-DRECPERF_DTYPE_F16={int(self.dtype == 'float16')}",
            f"-DRECPERF_INDEX_I32={int(self.index_dtype == 'int32')}",
            f"-DRECPERF_PREFETCH_DISTANCE={self.ring_distance}",
            f"-DRECPERF_PREFETCH_L2HINT={int(self.l2_hint)}",
            f"-DRECPERF_BOUNDS_INLINE={int(self.bounds_inline)}",
        ]
        if self.variant == "warp":
            d.append(f"-DRECPERF_VEC_BYTES={self.vec_bytes}")
        if self.variant == "tbe":
            d.append(f"-DRECPERF_TBE_MAX_VECS={self.tbe_vecs}")
        if self.variant == "pytorch-current" and self.bounds_inline:
            d.append("-DRECPERF_BOUNDS_PRELOOP=1")
        if with_cap:
            d.append(f"-DRECPERF_REGISTER_CAP={self.register_cap}")
        return d

    @property
    def source(self) -> Path:
        return KERNEL_DIR / SOURCES[self.variant]

    @property
    def entry(self) -> str:
        return ENTRY_NAMES[self.variant]


def compile_key(
    kernel: KernelConfig,
    *,
    dtype: str = "float32",
    index_dtype: str = "int64",
    vec_bytes: int = WARP_VEC_BYTES,
    tbe_vecs: int = 1,
) -> CompileKey:
    """The compile key of ``kernel``'s lookup kernel (``vec_bytes``: the warp variant's load width;
    ``tbe_vecs``: the tbe variant's vectors per lane, see :func:`kernels.tbe_vecs_for`)."""
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; valid choices: {', '.join(DTYPES)}")
    if index_dtype not in INDEX_DTYPES:
        raise InputError(f"unknown index dtype {index_dtype!r}; valid choices: {', '.join(INDEX_DTYPES)}")
    if vec_bytes not in (2, 4, 8, 16) or vec_bytes < DTYPES[dtype]:
        raise InputError(f"`vec_bytes` in (2, 4, 8, 16) and >= the element size must hold, but got {vec_bytes}")
    if isinstance(tbe_vecs, bool) or not isinstance(tbe_vecs, int) or not 1 <= tbe_vecs <= 16:
        raise InputError(f"`1 <= tbe_vecs <= 16` must hold, but got tbe_vecs={tbe_vecs!r}")
    pd = kernel.prefetch_distance
    ring = kernel.prefetch_kind == "register"
    return CompileKey(
        variant=kernel.variant,
        register_cap=kernel.register_cap,
        ring_distance=pd if ring else 0,
        l2_hint=pd > 0 and not ring,
        bounds_inline=kernel.bounds_check == "inline",
        dtype=dtype,
        index_dtype=index_dtype,
        vec_bytes=vec_bytes if kernel.variant == "warp" else WARP_VEC_BYTES,
        tbe_vecs=tbe_vecs if kernel.variant == "tbe" else 1,
    )


# ---- reading the compiler's report ------------------------------------------------------------

_ENTRY_RE = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
_PROPS_RE = re.compile(r"Function properties for (\S+)")
_STACK_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED_RE = re.compile(r"Used (\d+) registers")
_SMEM_RE = re.compile(r"(\d+) bytes smem")


def parse_ptxas_log(log: str) -> dict[str, dict[str, int]]:
    """Per entry function: registers, spill store/load bytes, stack frame and smem from ``ptxas -v``."""
    out: dict[str, dict[str, int]] = {}
    entry: str | None = None
    props: str | None = None
    for line in log.splitlines():
        m = _ENTRY_RE.search(line)
        if m:
            entry = m.group(1)
            out.setdefault(entry, {"registers": 0, "spill_store_bytes": 0, "spill_load_bytes": 0,
                                   "stack_bytes": 0, "shared_mem_bytes": 0})
            continue
        m = _PROPS_RE.search(line)
        if m:
            props = m.group(1)
            continue
        m = _STACK_RE.search(line)
        if m and props is not None and props in out:
            out[props]["stack_bytes"] = int(m.group(1))
            out[props]["spill_store_bytes"] = int(m.group(2))
            out[props]["spill_load_bytes"] = int(m.group(3))
            continue
        m = _USED_RE.search(line)
        if m and entry is not None:
            out[entry]["registers"] = int(m.group(1))
            s = _SMEM_RE.search(line)
            out[entry]["shared_mem_bytes"] = int(s.group(1)) if s else 0
    return out


# .nv.info attribute ids (cuobjdump -elf prints these names)
_EIATTR_FRAME_SIZE = 0x11
_EIATTR_REGCOUNT = 0x2F
_EIFMT_NVAL, _EIFMT_BVAL, _EIFMT_HVAL, _EIFMT_SVAL = 1, 2, 3, 4


def parse_cubin(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per kernel: ``registers`` and ``stack_bytes`` from ``.nv.info``, static ``shared_mem_bytes``.

    Needs pyelftools (the ``compile`` extra); returns {} without it.
    """
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError:  # pragma: no cover - pyelftools is in the compile extra
        return {}
    elf = ELFFile(io.BytesIO(cubin))
    symtab = elf.get_section_by_name(".symtab")
    names = [s.name for s in symtab.iter_symbols()] if symtab is not None else []  # type: ignore[attr-defined]
    out: dict[str, dict[str, int]] = {}
    for sec in elf.iter_sections():
        if sec.name.startswith(".nv.shared.") and not sec.name.startswith(".nv.shared.reserved"):
            out.setdefault(sec.name[len(".nv.shared."):], {})["shared_mem_bytes"] = int(sec["sh_size"])
        if sec.name != ".nv.info":
            continue
        data = sec.data()
        pos = 0
        while pos + 4 <= len(data):
            fmt, attr, size = data[pos], data[pos + 1], struct.unpack_from("<H", data, pos + 2)[0]
            if fmt == _EIFMT_SVAL:
                payload = data[pos + 4 : pos + 4 + size]
                pos += 4 + size
                if attr in (_EIATTR_REGCOUNT, _EIATTR_FRAME_SIZE) and len(payload) >= 8:
                    sym, value = struct.unpack_from("<II", payload, 0)
                    if sym < len(names):
                        field = "registers" if attr == _EIATTR_REGCOUNT else "stack_bytes"
                        out.setdefault(names[sym], {})[field] = int(value)
            elif fmt in (_EIFMT_NVAL, _EIFMT_BVAL, _EIFMT_HVAL):
                pos += 4
            else:  # unknown record format: stop rather than misread
                break
    return out


# ---- compilers ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CompileResult:
    cubin: bytes
    log: str
    compiler: str


class Compiler:
    """A CUDA compiler that turns one source with options into a cubin and a ptxas report."""

    name = "compiler"

    @property
    def version(self) -> str:
        raise NotImplementedError

    def compile(self, source: Path, options: Sequence[str], arch: str) -> CompileResult:
        raise NotImplementedError


class NvrtcCompiler(Compiler):
    """NVRTC from PyPI (``nvidia-cuda-nvrtc``) through ``cuda.bindings.nvrtc``; no GPU needed."""

    name = "nvrtc"

    def __init__(self) -> None:
        from cuda.bindings import nvrtc  # lazy: GPU library

        self._nvrtc = nvrtc

    @property
    def version(self) -> str:
        return _nvrtc_version()

    def compile(self, source: Path, options: Sequence[str], arch: str) -> CompileResult:
        nvrtc = self._nvrtc
        err, archs = nvrtc.nvrtcGetSupportedArchs()  # an arch it does not know fails with an empty log
        if err == nvrtc.nvrtcResult.NVRTC_SUCCESS and int(arch[3:].rstrip("a")) not in archs:
            raise InputError(f"the architecture must be one {self.version} compiles for "
                             f"({', '.join(f'sm_{a}' for a in archs)}), but got arch={arch!r}")
        err, prog = nvrtc.nvrtcCreateProgram(source.read_bytes(), source.name.encode(), 0, [], [])
        _nvrtc_check(nvrtc, err, "nvrtcCreateProgram")
        try:
            opts = [f"-arch={arch}", "-Xptxas=-v", f"-I{KERNEL_DIR}", "-std=c++17", *options]
            (res,) = nvrtc.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
            err, n = nvrtc.nvrtcGetProgramLogSize(prog)
            buf = b" " * n
            nvrtc.nvrtcGetProgramLog(prog, buf)
            log = buf.rstrip(b"\x00").decode(errors="replace")
            if res != nvrtc.nvrtcResult.NVRTC_SUCCESS:
                raise RuntimeError(f"NVRTC failed to compile {source.name} {' '.join(options)}:\n{log}")
            err, n = nvrtc.nvrtcGetCUBINSize(prog)
            _nvrtc_check(nvrtc, err, "nvrtcGetCUBINSize")
            cubin = b" " * n
            (err,) = nvrtc.nvrtcGetCUBIN(prog, cubin)
            _nvrtc_check(nvrtc, err, "nvrtcGetCUBIN")
        finally:
            nvrtc.nvrtcDestroyProgram(prog)
        return CompileResult(cubin=cubin, log=log, compiler=self.version)


def _nvrtc_check(nvrtc: Any, err: Any, what: str) -> None:
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"{what} failed: {err}")


@lru_cache(maxsize=1)
def _nvrtc_version() -> str:
    from importlib import metadata

    from cuda.bindings import nvrtc

    _err, major, minor = nvrtc.nvrtcVersion()
    try:
        pkg = metadata.version("nvidia-cuda-nvrtc")
    except metadata.PackageNotFoundError:
        pkg = "?"
    return f"nvrtc {major}.{minor} (nvidia-cuda-nvrtc {pkg})"


class NvccCompiler(Compiler):
    """``nvcc -cubin -Xptxas -v`` (the CUDA toolkit on PATH)."""

    name = "nvcc"

    def __init__(self, nvcc: str | None = None) -> None:
        path = nvcc or shutil.which("nvcc")
        if path is None:
            raise RuntimeError("nvcc is not on PATH")
        self._nvcc = path

    @property
    def version(self) -> str:
        return _nvcc_version(self._nvcc)

    def compile(self, source: Path, options: Sequence[str], arch: str) -> CompileResult:
        with tempfile.TemporaryDirectory(prefix="recperf-nvcc-") as tmp:
            out = Path(tmp) / "k.cubin"
            cmd = [self._nvcc, "-cubin", f"-arch={arch}", "-Xptxas", "-v", f"-I{KERNEL_DIR}", "-std=c++17",
                   *options, str(source), "-o", str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{proc.stderr}")
            return CompileResult(cubin=out.read_bytes(), log=proc.stderr + proc.stdout, compiler=self.version)


@lru_cache(maxsize=4)
def _nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    return f"nvcc {m.group(1) if m else '?'}"


def _nvrtc_available() -> bool:
    try:
        _nvrtc_version()
    except Exception:  # missing package, or libnvrtc not loadable
        return False
    return True


def get_compiler(name: str) -> Compiler:
    """``nvrtc`` or ``nvcc``; RuntimeError with the reason where it is not installed."""
    if name == "nvrtc":
        if not _nvrtc_available():
            raise RuntimeError("NVRTC is not available: install recperf[compile] (cuda-bindings, nvidia-cuda-nvrtc)")
        return NvrtcCompiler()
    if name == "nvcc":
        return NvccCompiler()
    raise InputError(f"unknown compiler {name!r}; valid choices: nvrtc, nvcc")


def available_compiler() -> Compiler | None:
    """NVRTC if installed, else nvcc if on PATH, else None."""
    if _nvrtc_available():
        return NvrtcCompiler()
    if shutil.which("nvcc"):
        return NvccCompiler()
    return None


# ---- resource usage -------------------------------------------------------------------------------


def _figures(result: CompileResult, entry: str) -> dict[str, int]:
    from_log = parse_ptxas_log(result.log).get(entry)
    if from_log is None:
        raise RuntimeError(f"the compiler's report has no entry {entry!r}:\n{result.log}")
    from_cubin = parse_cubin(result.cubin).get(entry, {})
    for name in ("registers", "stack_bytes"):
        if name in from_cubin and from_cubin[name] != from_log[name]:
            raise RuntimeError(
                f"{entry}: the cubin's .nv.info says {name}={from_cubin[name]} but ptxas reports {from_log[name]}"
            )
    if "shared_mem_bytes" in from_cubin:
        from_log["shared_mem_bytes"] = from_cubin["shared_mem_bytes"]
    return from_log


def compile_figures(
    key: CompileKey, arch: str, compiler: Compiler, caps: Sequence[int] | None = None
) -> dict[int, dict[str, int]]:
    """Compile ``key``'s lookup kernel and read its figures.

    ``caps=None``: the kernel with ``key.register_cap``. Else one program holding the uncapped
    kernel and one entry per cap in ``caps`` (one front-end run for all); returns {cap: figures}
    with 0 for the uncapped kernel. Every cap is compiled: a cap above the uncapped kernel's
    count can still change ptxas's allocation (sm_90: 48 registers uncapped, 62 with cap 255).
    """
    if caps is None:
        res = compiler.compile(key.source, key.defines(), arch)
        return {key.register_cap: _figures(res, key.entry)}
    capped = sorted({c for c in caps if c > 0})
    listing = " ".join(f"X({c})" for c in capped)
    res = compiler.compile(key.source, [*key.defines(with_cap=False), f"-DRECPERF_CAP_LIST(X)={listing}"], arch)
    out = {0: _figures(res, key.entry)}
    for c in capped:
        out[c] = _figures(res, f"{key.entry}_cap{c}")
    return out


def cache_file(kind: str, compiler: str, arch: str, key: CompileKey) -> Path:
    """Where the ``kind`` (``resources`` or ``profiles``) of ``key`` compiled by ``compiler``
    for ``arch`` is cached: per compiler version and kernel-source hash."""
    tag = [compiler] if kind == "resources" else ["profile", compiler]  # the entries' names as shipped
    blob = json.dumps([*tag, arch, source_hash(), key.__dict__], sort_keys=True).encode()
    return cache_dir() / kind / f"{hashlib.sha256(blob).hexdigest()[:24]}.json"


T = TypeVar("T")


def cached_or_built(path: Path, use_cache: bool, read: Callable[[Any], T], build: Callable[[], tuple[T, Any]]) -> T:
    """``read`` of the cache entry at ``path``, or the value ``build`` returns, its figures then
    written there (an unreadable entry is rebuilt; ``use_cache`` False: always built, never written)."""
    if use_cache and path.is_file():
        try:
            return read(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError):
            pass  # unreadable cache entry: rebuild
    value, figures = build()
    if use_cache:
        write_cache(path, figures)
    return value


def resolve_compiler(compiler: str) -> Compiler | None:
    """The compiler ``compiler`` names (``auto``: the first installed, None if none; ``table``: None)."""
    if compiler not in COMPILERS:
        raise InputError(f"unknown compiler {compiler!r}; valid choices: {', '.join(COMPILERS)}")
    if compiler == "table":
        return None
    if compiler == "auto":
        return available_compiler()
    return get_compiler(compiler)


def resource_usage(
    config: KernelConfig,
    arch: str,
    *,
    dtype: str = "float32",
    index_dtype: str = "int64",
    compiler: str = "auto",
    use_cache: bool = True,
) -> ResourceUsage:
    """Registers, spills, stack and static shared memory of ``config``'s lookup kernel on ``arch``.

    ``compiler``: ``auto`` (NVRTC if installed, else nvcc, else the shipped table), ``nvrtc``,
    ``nvcc`` or ``table``. Compiled figures are cached under :func:`cache_dir` per compiler
    version and source hash. The result's ``compiler`` names the compiler and version.
    """
    if compiler not in COMPILERS:
        raise InputError(f"unknown compiler {compiler!r}; valid choices: {', '.join(COMPILERS)}")
    if not isinstance(arch, str) or not re.match(r"^sm_[0-9]{2,3}a?$", arch):
        raise InputError(f"an architecture name like 'sm_80' or 'sm_90' is required, but got arch={arch!r}")
    key = compile_key(config, dtype=dtype, index_dtype=index_dtype)
    comp = resolve_compiler(compiler)
    if comp is None:
        usage = load_resource_table().lookup(config, arch, dtype=dtype, index_dtype=index_dtype)
        if usage is None:
            raise InputError(
                f"the shipped resource table has no entry for {arch} {dtype} {index_dtype} {config.to_dict()} "
                "and no compiler is installed (install recperf[compile] or the CUDA toolkit)"
            )
        return usage
    found: Compiler = comp
    version = found.version

    def build() -> tuple[ResourceUsage, Any]:
        fig = compile_figures(key, arch, found)[key.register_cap]
        return ResourceUsage(**fig, compiler=version, source="compiled"), fig

    return cached_or_built(cache_file("resources", version, arch, key), use_cache,
                           lambda fig: ResourceUsage(**fig, compiler=version, source="cache"), build)


def write_cache(path: Path, doc: Any) -> None:
    """Write a cache entry atomically (a read-only cache is not an error)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
    except OSError:
        pass
