"""Hardware-run archives (``gpu-validate-<gpu>-<date>.tar.gz``) as inputs: report and calibrate
read them directly.

An archive holds one run folder (see :mod:`validation.run_all`) and ``manifest.json``
(:mod:`validation._lease`). It is unpacked once, after its manifest, sizes and SHA-256 sums
are checked, into the cache (``$RECPERF_CACHE_DIR/archives/<sha256>/``), so the workload and
trace files its records name stay readable for as long as they are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfmodel import InputError

__all__ = ["RunArchive", "is_archive", "open_run_archive"]


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a run archive (by its ``.tar.gz`` / ``.tgz`` suffix)."""
    name = os.fspath(path).lower()
    return name.endswith((".tar.gz", ".tgz"))


@dataclass(frozen=True, kw_only=True)
class RunArchive:
    """An unpacked run archive: its folder and manifest."""

    path: Path
    root: Path
    manifest: dict[str, Any]

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest.get("synthetic"))

    @property
    def gpu(self) -> str | None:
        g = self.manifest.get("gpu")
        return str(g) if g else None

    def file(self, name: str) -> Path:
        """A file of the run (e.g. ``measurements.jsonl``); InputError naming what the run holds."""
        p = self.root / name
        if not p.is_file():
            held = ", ".join(sorted(self.manifest.get("files", {}))) or "nothing"
            failed = self.manifest.get("phases_failed") or []
            why = f" (phases that failed in that run: {', '.join(failed)})" if failed else ""
            raise InputError(f"archive {str(self.path)!r} holds no {name}{why}; it holds {held}")
        return p

    def summary(self) -> dict[str, Any]:
        """What a report or calibration says about its source archive."""
        keys = ("name", "gpu", "device_name", "synthetic", "created", "driver_version", "cuda_runtime_version",
                "nvrtc_version", "phases_failed", "rule")
        return {k: self.manifest[k] for k in keys if k in self.manifest} | {"path": str(self.path)}


def open_run_archive(path: str | os.PathLike[str]) -> RunArchive:
    """Check and unpack a run archive (once per content) into the cache."""
    from kernels import cache_dir
    from validation._lease import LeaseError, extract_archive

    try:
        root, manifest = extract_archive(path, cache_dir())
    except LeaseError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"cannot unpack archive {os.fspath(path)!r}: {exc.strerror or exc}") from None
    return RunArchive(path=Path(path), root=root, manifest=manifest)
