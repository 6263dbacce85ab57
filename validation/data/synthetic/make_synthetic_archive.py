"""Write the SYNTHETIC example run archive (run from anywhere; no GPU, no measurement).

    python validation/data/synthetic/make_synthetic_archive.py [OUT_DIR]

It makes a run folder laid out as ``recperf validate run-all`` writes one and packs it with
the same code ``scripts/gpu_validate.sh`` uses (:func:`validation._lease.pack_run`), marked
synthetic in its name (``gpu-validate-synthetic-...``), its manifest (``"synthetic": true``,
``rule``), its environment and every record's ``note``. It exists so that the replay path
(``recperf validate report --measurements A.tar.gz``, ``recperf validate calibrate --archive
A.tar.gz``) is tested in CI. Its numbers say nothing about any GPU or about the model's accuracy.

The rule (:data:`RULE`), independent of the model so that the file never drifts from it:

- kernel times: ``synthetic_time_s(config)`` below times ``exp(0.05 z)``, z standard normal
  from ``random.Random(SEED)`` (Box-Muller over ``random()``, whose sequence Python keeps
  stable across versions);
- pointer chase: latency plateaus of 33 / 260 / 480 / 650 cycles for footprints up to 192 KiB /
  25 MiB / 50 MiB / beyond, times the same kind of noise; stream read: ``3e12 (1 - exp(-b / 200))``
  B/s at block size b, 2 blocks per SM; L2 read: 9e12 B/s up to 50 MiB, 3e12 beyond.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SEED = 11
WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
GPU = "h100-sxm"
NOTE = "synthetic: time_s from the rule in make_synthetic_archive.py, not a measurement"
RULE = ("time_s = synthetic_time_s(config) * exp(0.05 z), micro curves from fixed plateaus * exp(0.05 z), "
        f"z ~ N(0, 1) seeded {SEED}; see validation/data/synthetic/make_synthetic_archive.py")
WORKLOAD = {"batch_size": 1024, "tables": [{"rows": 200000, "dim": 64, "dtype": "float32", "pooling": 40, "count": 4,
                                            "indices": {"kind": "zipf", "alpha": 1.05}}]}
PINS: tuple[dict[str, Any], ...] = ({}, {"pinned_row_fraction": 0.12, "pin_method": "evict-last-prefetch"},
                                    {"pinned_row_fraction": 0.12, "pin_method": "access-policy-window"})


def synthetic_time_s(k: dict[str, Any]) -> float:
    """A made-up kernel time: slower pytorch variant, block size, prefetch, cap, checks, pinning."""
    t: float = 1e-4 * (1.5 if k["variant"] == "pytorch" else 1.0) * (256 / k["block_size"]) ** 0.25
    t *= 1 - 0.05 * k["prefetch_distance"]
    t *= 1.1 if k["register_cap"] == 0 else 1.0
    t *= 1.08 if k["bounds_check"] == "inline" else 1.02
    return t * (0.9 if k.get("pinned_row_fraction") else 1.0)


class _Noise:
    """exp(sigma z) with z from Box-Muller over random.Random(SEED).random()."""

    def __init__(self, sigma: float = 0.05) -> None:
        self.rng, self.sigma = random.Random(SEED), sigma

    def __call__(self) -> float:
        u1, u2 = 1.0 - self.rng.random(), self.rng.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return float(math.exp(self.sigma * z))


def _lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def write_run(run: Path) -> None:
    """The run folder's files, from the rule."""
    noise = _Noise()
    env = {"device_name": "SYNTHETIC (no GPU)", "gpu_id": GPU, "synthetic": True, "note": NOTE}
    micro: list[dict[str, Any]] = [{"benchmark": "env", "gpu": GPU, "env": env}]
    fp = 4096
    while fp <= 256 << 20:
        base = 33 if fp <= 192 << 10 else 260 if fp <= 25 << 20 else 480 if fp <= 50 << 20 else 650
        micro.append({"benchmark": "pointer-chase", "gpu": GPU, "footprint_bytes": fp,
                      "latency_cycles": base * noise(), "note": NOTE})
        fp = int(fp * 1.6) // 64 * 64
    for b in range(64, 1025, 128):
        micro.append({"benchmark": "stream-read", "gpu": GPU, "block_size": b, "blocks_per_sm": 2,
                      "bandwidth_bytes_per_s": 3e12 * (1 - math.exp(-b / 200)) * noise(), "note": NOTE})
    for mib in (2, 8, 24, 40, 60, 120, 400):
        micro.append({"benchmark": "l2-read", "gpu": GPU, "footprint_bytes": mib << 20,
                      "bandwidth_bytes_per_s": (9e12 if mib <= 50 else 3e12) * noise(), "note": NOTE})
    records = []
    for variant in ("pytorch", "warp"):
        for block in (128, 256, 512):
            for cap in (0, 42):
                for prefetch in (0, 2):
                    for check in ("inline", "separate"):
                        for pin in PINS:
                            k = {"variant": variant, "block_size": block, "register_cap": cap,
                                 "prefetch_distance": prefetch, "bounds_check": check, **pin}
                            records.append({"gpu": GPU, "workload": WORKLOAD, "kernel": k,
                                            "time_s": synthetic_time_s(k) * noise(), "verified": True,
                                            "warm_cache": False, "note": NOTE})
    run.mkdir(parents=True, exist_ok=True)
    (run / "env.json").write_text(json.dumps(env, indent=2, sort_keys=True) + "\n")
    (run / "micro.jsonl").write_text(_lines(micro))
    (run / "measurements.jsonl").write_text(_lines(records))
    (run / "summary.json").write_text(json.dumps({"gpu": GPU, "synthetic": True, "note": NOTE, "errors": {}},
                                                 indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> Path:
    sys.path.insert(0, str(ROOT))
    from validation._lease import pack_run

    out_dir = Path(argv[0]) if argv else HERE
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run)
        return pack_run(run, out_dir, gpu=GPU, when=WHEN, synthetic=True,
                        manifest={"rule": RULE, "device_name": "SYNTHETIC (no GPU)",
                                  "generator": "validation/data/synthetic/make_synthetic_archive.py"})


if __name__ == "__main__":
    print(main(sys.argv[1:]))
