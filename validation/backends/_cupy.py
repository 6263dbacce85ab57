"""The CuPy backend: :class:`kernels.CupyDevice` plus what measuring needs.

- the device's environment record (name, UUID, driver, CUDA runtime, NVRTC, CuPy and
  cuda-bindings versions, clocks, power limit), stored with every result;
- a clocks snapshot through NVML (``nvidia-ml-py``): SM and memory clocks, power limit and
  draw, temperature, the reasons clocks are held down; taken around every measurement;
- the L2 flush, a *read* of a buffer twice the L2's size (a memset would leave dirty lines
  to be written back inside the next timed kernel), and a hold kernel that keeps the stream
  busy while the host enqueues a timed region (so host launch overhead is never timed);
- compiling and launching the microbenchmarks' own kernels.

Every GPU library is imported inside the methods that need it, never at import time.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kernels import CupyDevice
from kernels import gpu_available as _kernels_gpu_available

__all__ = [
    "INSTRUMENT_SOURCE",
    "CupyBackend",
    "device_clocks_khz",
    "gpu_available",
    "match_gpu_id",
    "nvml_snapshot",
    "software_versions",
]


def gpu_available() -> bool:
    """True when CuPy imports and device 0 answers a real query (FACTS.md section 5)."""
    return _kernels_gpu_available()[0]


#: (substring of the device name, in order of precedence) -> recperf GPU id
_NAME_TO_ID: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h200",), "h200"),
    (("h20",), "h20"),  # after h200: "h20" is a prefix of "h200"
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


#: distributions whose versions a measurement depends on (prefix match on the normalized name)
_VERSIONED = ("cupy", "cuda-bindings", "cuda-python", "cuda-pathfinder", "nvidia-cuda-nvrtc", "nvidia-ml-py",
              "numpy", "scipy", "recperf")


def software_versions() -> dict[str, str]:
    """Versions of the Python-side software that a measurement depends on (installed
    distributions: CuPy's wheel name says its CUDA major, the NVRTC wheel its release)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in metadata.distributions():
        name = str(dist.name or "").lower().replace("_", "-")
        if name and any(name == p or name.startswith(p + "-") for p in _VERSIONED):
            out[name] = str(dist.version)
    return dict(sorted(out.items()))


def source_revision() -> dict[str, str]:
    """Which recperf code measured: the checkout's git commit (when it is a git checkout) and
    the hash of the kernel sources (what was compiled, also without git)."""
    from pathlib import Path

    from kernels import source_hash

    out = {"kernel_source_hash": source_hash()}
    root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git and (root / ".git").exists():
        try:
            proc = subprocess.run([git, "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10, check=False)
            if proc.returncode == 0:
                out["git_commit"] = proc.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def device_clocks_khz(props: Mapping[str, Any], attributes: Mapping[str, Any]) -> dict[str, int]:
    """Peak SM and memory clocks (kHz) from ``cudaGetDeviceProperties`` or, where the
    properties lack them (CUDA 13's ``cudaDeviceProp`` has no ``clockRate`` or
    ``memoryClockRate``), from the device attributes ``ClockRate`` and ``MemoryClockRate``
    (``cudaDevAttrClockRate`` = 13, ``cudaDevAttrMemoryClockRate`` = 36, still in CUDA 13)."""

    def pick(prop: str, attr: str) -> int:
        for source, key in ((props, prop), (attributes, attr)):
            value = source.get(key)
            if isinstance(value, (int, np.integer)) and int(value) > 0:
                return int(value)
        return 0

    return {"sm_clock_khz_max": pick("clockRate", "ClockRate"),
            "memory_clock_khz_max": pick("memoryClockRate", "MemoryClockRate")}


def nvml_snapshot(nvml: Any, handle: Any) -> dict[str, Any]:
    """The clocks and power state of one GPU through NVML (``pynvml`` from nvidia-ml-py):
    SM and memory clocks now and at most (MHz), power limit and draw (W), temperature (C),
    and the active clock-event (throttle) reasons as a bit mask. A query a GPU does not
    support is left out."""
    out: dict[str, Any] = {"source": "nvml"}

    def put(name: str, fn: str, *args: Any, scale: float = 1.0) -> None:
        f = getattr(nvml, fn, None)
        if f is None:
            return
        try:
            value = f(handle, *args)
        except Exception:  # NVMLError_NotSupported and friends
            return
        out[name] = value * scale if scale != 1.0 else value

    put("sm_clock_mhz", "nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM)
    put("memory_clock_mhz", "nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM)
    put("sm_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", nvml.NVML_CLOCK_SM)
    put("memory_clock_max_mhz", "nvmlDeviceGetMaxClockInfo", nvml.NVML_CLOCK_MEM)
    put("power_limit_w", "nvmlDeviceGetEnforcedPowerLimit", scale=1e-3)
    put("power_draw_w", "nvmlDeviceGetPowerUsage", scale=1e-3)
    put("temperature_c", "nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0))
    reasons = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
    for fn in reasons:
        if getattr(nvml, fn, None) is not None:
            put("clock_event_reasons", fn)
            break
    return out


_SMI_FIELDS = ("clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem", "power.limit", "temperature.gpu",
               "persistence_mode", "mig.mode.current")


def _nvidia_smi(device: int) -> dict[str, str]:
    """The nvidia-smi view of the device (clocks, power limit, persistence and MIG modes), or {}."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    # the clock-event reasons field was renamed (clocks_throttle_reasons -> clocks_event_reasons);
    # an unknown field fails the whole query, so try each spelling, then none
    for extra in (("clocks_event_reasons.active",), ("clocks_throttle_reasons.active",), ()):
        fields = [*_SMI_FIELDS, *extra]
        try:
            proc = subprocess.run([exe, f"--id={device}", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return {}
        values = [v.strip() for v in proc.stdout.strip().split(",")]
        if proc.returncode == 0 and len(values) == len(fields):
            return dict(zip(fields, values, strict=True))
    return {}


#: the measuring instruments (written for recperf):
#: ``recperf_flush_read`` reads every 8-byte word of a buffer (L2 lines are filled clean, and
#: the dirty lines of the previous call are written back here, outside the timed region);
#: ``recperf_hold`` spins on the global timer for ``ns`` nanoseconds.
INSTRUMENT_SOURCE = r"""
extern "C" __global__ void recperf_flush_read(const unsigned long long* __restrict__ buf, long long n,
                                              unsigned long long* sink) {
    unsigned long long acc = 0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        acc ^= buf[i];
    }
    if (acc == 0x5eedf1a5ull) {  // the buffer holds zeros: never true, keeps the loads
        sink[0] = acc;
    }
}

extern "C" __global__ void recperf_hold(long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while ((long long)(t - t0) < ns);
}
"""
_INSTRUMENTS = ("recperf_flush_read", "recperf_hold")


class CupyBackend(CupyDevice):
    """One CUDA device through CuPy, with the environment record, clocks, L2 flush and hold."""

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        self._flush_buf: Any = None
        self._sink: Any = None
        self._instruments: dict[str, Any] | None = None
        self._nvml: Any = None
        self._nvml_handle: Any = None
        self._nvml_error: str | None = None

    # ---- facts about the device ------------------------------------------------------------
    @property
    def name(self) -> str:
        n = self.props.get("name", b"")
        return n.decode() if isinstance(n, bytes) else str(n)

    def uuid(self) -> str:
        raw = self.props.get("uuid")
        if isinstance(raw, (bytes, bytearray)) and len(raw) == 16:
            h = bytes(raw).hex()
            return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
        return str(raw) if raw is not None else ""

    def gpu_id(self) -> str | None:
        return match_gpu_id(self.name, int(self.props.get("totalGlobalMem", 0)))

    def _nvml_device(self) -> tuple[Any, Any]:
        """(pynvml, handle) of this device, or (None, None) with the reason kept."""
        if self._nvml is None and self._nvml_error is None:
            try:
                nvml = importlib.import_module("pynvml")
                nvml.nvmlInit()
                try:
                    handle = nvml.nvmlDeviceGetHandleByUUID(self.uuid().encode())
                except Exception:
                    handle = nvml.nvmlDeviceGetHandleByIndex(self.device_id)
                self._nvml, self._nvml_handle = nvml, handle
            except Exception as exc:  # no nvidia-ml-py, no libnvidia-ml
                self._nvml_error = f"NVML unavailable ({type(exc).__name__}: {exc})"
        return self._nvml, self._nvml_handle

    def clocks(self) -> dict[str, Any]:
        """SM and memory clocks, power limit and draw, temperature, clock-event reasons now."""
        nvml, handle = self._nvml_device()
        if nvml is None:
            return {"source": "unavailable", "reason": self._nvml_error}
        return nvml_snapshot(nvml, handle)

    def environment(self) -> dict[str, Any]:
        """Device, UUID, driver, CUDA, NVRTC and library versions, clocks: stored with every result."""
        nvrtc = self.nvrtc_version()
        env: dict[str, Any] = {
            "device_name": self.name,
            "device_uuid": self.uuid(),
            "gpu_id": self.gpu_id(),
            "compute_capability": f"{self.props.get('major')}.{self.props.get('minor')}",
            "sm_count": self.sm_count,
            **device_clocks_khz(self.props, self.attributes),
            "memory_bytes": int(self.props.get("totalGlobalMem", 0)),
            "l2_size_bytes": self.l2_size_bytes,
            "persisting_l2_max_bytes": self.persisting_l2_max_bytes,
            "access_policy_max_window_bytes": int(self.props.get("accessPolicyMaxWindowSize", 0)),
            "shared_mem_per_sm_bytes": int(self.props.get("sharedMemPerMultiprocessor", 0)),
            "driver_version": self.driver_version(),
            "cuda_runtime_version": self.runtime_version(),
            "nvrtc_version": f"{nvrtc[0]}.{nvrtc[1]}",
            "software": software_versions(),
            "recperf_source": source_revision(),
            "host": platform.node(),
            "os": platform.platform(),
            "python_executable": sys.executable,
            "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        nvml, _ = self._nvml_device()
        if nvml is not None:
            for key, fn in (("driver_release", "nvmlSystemGetDriverVersion"),
                            ("nvml_cuda_driver_version", "nvmlSystemGetCudaDriverVersion_v2")):
                try:
                    value = getattr(nvml, fn)()
                    env[key] = value.decode() if isinstance(value, bytes) else value
                except Exception:
                    continue
        env["clocks"] = self.clocks()
        env.update({f"smi_{k}": v for k, v in _nvidia_smi(self.device_id).items()})
        return env

    # ---- kernels of the microbenchmarks --------------------------------------------------
    def compile_kernel(self, source: str, name: str, options: Sequence[str] = ("-std=c++17",)) -> Any:
        """One entry of ``source`` compiled by NVRTC through CuPy."""
        return self.compile(source, options, [name])[name]

    def max_active_blocks(self, kernel: Any, block_size: int, shared_mem: int) -> int | None:
        """The driver's occupancy answer for this kernel and launch, or None if it cannot be asked."""
        try:
            ptr = kernel.kernel.ptr
            return int(self.cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(ptr, block_size, shared_mem))
        except Exception:
            return None

    # ---- cache control and the hold ------------------------------------------------------
    def _instrument(self, name: str) -> Any:
        if self._instruments is None:
            self._instruments = self.compile(INSTRUMENT_SOURCE, ("-std=c++17",), _INSTRUMENTS)
            self._sink = self.zeros((1,), np.uint64)
        return self._instruments[name]

    def flush_l2(self, stream: Any = None) -> None:
        """Evict the L2 by reading a buffer twice its size (enqueued on ``stream``; not timed)."""
        fn = self._instrument("recperf_flush_read")
        if self._flush_buf is None:
            words = max(2 * self.l2_size_bytes, 8 << 20) // 8
            self._flush_buf = self.zeros((words,), np.uint64)
        n = int(self._flush_buf.shape[0])
        self.launch(fn, (self.sm_count * 8, 1, 1), (256, 1, 1), (self._flush_buf, np.int64(n), self._sink), stream=stream)

    def hold(self, stream: Any, seconds: float) -> None:
        """Keep ``stream`` busy for ``seconds`` (enqueued; returns at once)."""
        fn = self._instrument("recperf_hold")
        self.launch(fn, (1, 1, 1), (1, 1, 1), (np.int64(round(seconds * 1e9)),), stream=stream)
