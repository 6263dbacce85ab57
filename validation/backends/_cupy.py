"""The CuPy backend: device probe, environment record, kernel compilation, L2 flush and reset.

CuPy validates nothing about ``RawKernel`` arguments (STYLE.md practice 7): callers pass
contiguous arrays of the dtype the kernel expects and scalars as explicit NumPy types;
:meth:`CupyBackend.launch` checks them.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CupyBackend", "cuda_python_runtime", "gpu_available", "match_gpu_id", "software_versions"]


def gpu_available() -> bool:
    """True when CuPy imports and device 0 answers a real query (FACTS.md section 5)."""
    try:
        import cupy

        _ = cupy.cuda.Device(0).attributes
        return True
    except Exception:
        return False


#: (substring of the device name, in order of precedence) -> recperf GPU id
_NAME_TO_ID: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h200",), "h200"),
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),
    (("a100", "80gb"), "a100-80gb"),
    (("a100",), "a100-40gb"),
)


def match_gpu_id(device_name: str, memory_bytes: int | None = None) -> str | None:
    """The recperf GPU id for a CUDA device name (``NVIDIA H100 80GB HBM3`` -> ``h100-sxm``), or None.

    An A100 whose name does not state its memory is told apart by ``memory_bytes`` (> 48 GB -> 80 GB part).
    """
    name = device_name.lower()
    for needles, gpu_id in _NAME_TO_ID:
        if all(n in name for n in needles):
            if gpu_id == "a100-40gb" and memory_bytes is not None and memory_bytes > 48 * 1024**3:
                return "a100-80gb"
            return gpu_id
    return None


def software_versions() -> dict[str, str]:
    """Versions of the Python-side software that a measurement depends on."""
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("cupy", "cuda.bindings", "scipy", "perfmodel"):
        try:
            m = importlib.import_module(mod)
            out[mod] = str(getattr(m, "__version__", "installed"))
        except Exception:
            continue
    try:
        from importlib.metadata import version

        out["recperf"] = version("recperf")
    except Exception:
        pass
    return out


def cuda_python_runtime() -> Any:
    """``cuda.bindings.runtime`` (cuda-python >= 12.8), or the older ``cuda.cudart``."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


def _nvidia_smi(device: int) -> dict[str, str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    fields = ["clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "power.limit", "temperature.gpu",
              "persistence_mode", "mig.mode.current", "clocks_throttle_reasons.active"]
    try:
        out = subprocess.run([exe, f"--id={device}", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in out.split(",")]
    return dict(zip(fields, values, strict=False)) if len(values) == len(fields) else {"nvidia_smi": out}


class CupyBackend:
    """One CUDA device through CuPy. Creating it imports CuPy and touches the device."""

    def __init__(self, device: int = 0) -> None:
        import cupy

        self.cp: Any = cupy
        self.device_id = device
        self.device: Any = cupy.cuda.Device(device)
        self.device.use()
        self.props: dict[str, Any] = cupy.cuda.runtime.getDeviceProperties(device)
        self._flush_buf: Any = None

    # ---- facts about the device ------------------------------------------------------------
    @property
    def name(self) -> str:
        n = self.props.get("name", b"")
        return n.decode() if isinstance(n, bytes) else str(n)

    @property
    def l2_size_bytes(self) -> int:
        return int(self.props.get("l2CacheSize", 0))

    @property
    def persisting_l2_max_bytes(self) -> int:
        return int(self.props.get("persistingL2CacheMaxSize", 0))

    @property
    def sm_count(self) -> int:
        return int(self.props["multiProcessorCount"])

    def uuid(self) -> str:
        raw = self.props.get("uuid")
        if isinstance(raw, (bytes, bytearray)) and len(raw) == 16:
            h = raw.hex()
            return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        return str(raw) if raw is not None else ""

    def gpu_id(self) -> str | None:
        return match_gpu_id(self.name, int(self.props.get("totalGlobalMem", 0)))

    def environment(self) -> dict[str, Any]:
        """Device, UUID, driver, CUDA and library versions, clocks: stored with every result."""
        rt = self.cp.cuda.runtime
        env: dict[str, Any] = {
            "device_name": self.name,
            "device_uuid": self.uuid(),
            "gpu_id": self.gpu_id(),
            "compute_capability": f"{self.props.get('major')}.{self.props.get('minor')}",
            "sm_count": self.sm_count,
            "sm_clock_khz_max": int(self.props.get("clockRate", 0)),
            "memory_clock_khz_max": int(self.props.get("memoryClockRate", 0)),
            "memory_bytes": int(self.props.get("totalGlobalMem", 0)),
            "l2_size_bytes": self.l2_size_bytes,
            "persisting_l2_max_bytes": self.persisting_l2_max_bytes,
            "access_policy_max_window_bytes": int(self.props.get("accessPolicyMaxWindowSize", 0)),
            "shared_mem_per_sm_bytes": int(self.props.get("sharedMemPerMultiprocessor", 0)),
            "driver_version": int(rt.driverGetVersion()),
            "cuda_runtime_version": int(rt.runtimeGetVersion()),
            "software": software_versions(),
            "host": platform.node(),
            "os": platform.platform(),
            "python_executable": sys.executable,
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        env.update({f"smi_{k}": v for k, v in _nvidia_smi(self.device_id).items()})
        return env

    # ---- kernels -------------------------------------------------------------------------
    def compile(self, source: str, name: str, options: Sequence[str] = ("-std=c++17",)) -> Any:
        """A ``cupy.RawKernel`` for ``name`` in ``source`` (NVRTC through CuPy)."""
        return self.cp.RawKernel(source, name, options=tuple(options))

    def launch(self, kernel: Any, grid: tuple[int, ...], block: tuple[int, ...], args: Sequence[Any],
               *, shared_mem: int = 0, stream: Any = None) -> None:
        """Launch after checking what CuPy does not: contiguity and explicit scalar types."""
        for i, a in enumerate(args):
            if isinstance(a, self.cp.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError(f"kernel argument {i} must be C-contiguous")
            elif not isinstance(a, np.generic):
                raise TypeError(f"kernel argument {i} must be a CuPy array or a NumPy scalar, but got {type(a).__name__}")
        if shared_mem > 48 * 1024:
            kernel.max_dynamic_shared_size_bytes = int(shared_mem)
        kernel(grid, block, tuple(args), shared_mem=int(shared_mem), stream=stream)

    def max_active_blocks(self, kernel: Any, block_size: int, shared_mem: int) -> int | None:
        """The driver's occupancy answer for this kernel and launch, or None if it cannot be asked."""
        try:
            ptr = kernel.kernel.ptr
            return int(self.cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(ptr, block_size, shared_mem))
        except Exception:
            return None

    # ---- cache control ---------------------------------------------------------------------
    def flush_l2(self, stream: Any = None) -> None:
        """Evict the L2 by writing a buffer of twice its size (not timed)."""
        if self._flush_buf is None:
            self._flush_buf = self.cp.empty(max(2 * self.l2_size_bytes, 8 << 20), dtype=self.cp.uint8)
        s = stream if stream is not None else self.cp.cuda.get_current_stream()
        self.cp.cuda.runtime.memsetAsync(self._flush_buf.data.ptr, 0, self._flush_buf.nbytes, s.ptr)

    def reset_persisting_l2(self) -> None:
        """Return persisting lines to normal (``cudaCtxResetPersistingL2Cache``)."""
        rt = cuda_python_runtime()
        _check(rt.cudaCtxResetPersistingL2Cache(), "cudaCtxResetPersistingL2Cache")

    def set_persisting_l2_limit(self, nbytes: int) -> None:
        rt = cuda_python_runtime()
        _check(rt.cudaDeviceSetLimit(rt.cudaLimit.cudaLimitPersistingL2CacheSize, int(nbytes)),
               "cudaDeviceSetLimit(persisting L2)")

    def set_access_policy_window(self, stream: Any, base_ptr: int, num_bytes: int, hit_ratio: float) -> None:
        """Mark ``[base_ptr, base_ptr + num_bytes)`` persisting for ``stream`` (num_bytes = 0 clears it)."""
        rt = cuda_python_runtime()
        value = rt.cudaStreamAttrValue()
        win = value.accessPolicyWindow
        win.base_ptr = int(base_ptr)
        win.num_bytes = int(num_bytes)
        win.hitRatio = float(hit_ratio)
        win.hitProp = rt.cudaAccessProperty.cudaAccessPropertyPersisting
        win.missProp = rt.cudaAccessProperty.cudaAccessPropertyStreaming
        value.accessPolicyWindow = win
        attr = getattr(rt, "cudaStreamAttributeAccessPolicyWindow", None)
        if attr is None:
            attr = rt.cudaStreamAttrID.cudaLaunchAttributeAccessPolicyWindow
        _check(rt.cudaStreamSetAttribute(rt.cudaStream_t(stream.ptr), attr, value), "cudaStreamSetAttribute")

    def synchronize(self) -> None:
        self.device.synchronize()


def _check(result: Any, what: str) -> None:
    err: Any = result[0] if isinstance(result, tuple) else result
    code = int(err.value) if hasattr(err, "value") else int(err)
    if code != 0:
        raise RuntimeError(f"{what} failed: {err}")
