#!/usr/bin/env python3
"""Fit the memory-physics parameters (perfmodel/data/calibration/micro.toml) to the published
A100 microbenchmarks shipped in perfmodel/data/gpu-benches/, and print the residuals,
including on the H100 PCIe chase, which the fit does not see.

    .venv/bin/python scripts/fit_micro.py            # fit, print, write the file
    .venv/bin/python scripts/fit_micro.py --check    # only print the residuals of the shipped file
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

import perfmodel
from perfmodel import _micro, _physics
from validation.published import parse_latency, parse_stream

DATA = Path(str(resources.files("perfmodel").joinpath("data/gpu-benches")))
OUT = Path(str(resources.files("perfmodel").joinpath("data/calibration/micro.toml")))
CHASE_FIT = {"a100-40gb": "latency_a100_40.txt", "a100-80gb": "latency_a100_80.txt"}
CHASE_HELD_OUT = {"h100-pcie": "latency_h100_pcie.txt"}
STREAM_FIT = {"a100-40gb": "stream_a100_40.txt", "a100-80gb": "stream_a100_80.txt"}
NAMES = ["l1_capacity_fraction", "l2_near_capacity_fraction", "l2_capacity_fraction",
         "dram_queue_factor", "block_turnaround_cycles"]


_CURRENT: list[_physics.ModelParams | None] = [None]  # parameters under evaluation (None = shipped file)


def _with(params: dict[str, float]) -> None:
    _CURRENT[0] = _physics.ModelParams(**params, sources={})


def chase_errors(files: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for gid, f in files.items():
        gpu = perfmodel.get_gpu(gid)
        rows = parse_latency(DATA / f)
        out[gid] = np.array([_micro.micro_pointer_chase(gpu, footprint_bytes=int(fp), params=_CURRENT[0]) / cyc - 1 for fp, cyc in rows])
    return out


def stream_errors(files: dict[str, str]) -> dict[str, np.ndarray]:
    out = {}
    for gid, f in files.items():
        gpu = perfmodel.get_gpu(gid)
        rows = parse_stream(DATA / f)
        out[gid] = np.array([_micro.micro_stream_read(gpu, block_size=b, blocks_per_sm=2, params=_CURRENT[0]) / bw - 1 for b, bw in rows])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if not args.check:
        x0 = np.array([0.75, 0.5, 1.0, 0.15, 400.0])
        lo = np.array([0.3, 0.2, 0.4, 0.0, 0.0])
        hi = np.array([1.0, 1.0, 1.5, 5.0, 3000.0])

        def chase_res(x: np.ndarray) -> np.ndarray:
            _with(dict(zip(NAMES[:3], x, strict=True)) | {"dram_queue_factor": 0.15, "block_turnaround_cycles": 400.0})
            return np.concatenate(list(chase_errors(CHASE_FIT).values()))

        rc = least_squares(chase_res, x0[:3], bounds=(lo[:3], hi[:3]), diff_step=0.01)

        def stream_res(x: np.ndarray) -> np.ndarray:
            _with(dict(zip(NAMES, [*rc.x, *x], strict=True)))
            return np.concatenate(list(stream_errors(STREAM_FIT).values()))

        rs = least_squares(stream_res, x0[3:], bounds=(lo[3:], hi[3:]))
        fitted = dict(zip(NAMES, [*rc.x, *rs.x], strict=True))
        _with(fitted)
        today = datetime.date.today().isoformat()
        chase_src = "fitted by scripts/fit_micro.py on perfmodel/data/gpu-benches/latency_a100_40.txt and latency_a100_80.txt (all footprints)"
        stream_src = "fitted by scripts/fit_micro.py on perfmodel/data/gpu-benches/stream_a100_40.txt and stream_a100_80.txt (read column, all block sizes, 2 blocks/SM)"
        what = {
            "l1_capacity_fraction": ("effective L1 capacity as a fraction of the combined L1/shared-memory array", chase_src),
            "l2_near_capacity_fraction": ("capacity of the near L2 partition as seen by one SM, fraction of L2", chase_src),
            "l2_capacity_fraction": ("effective L2 capacity under random-like replacement, fraction of L2", chase_src),
            "dram_queue_factor": ("queueing delay scale a in L = L0 + a L_dram rho/(1-rho)", stream_src),
            "block_turnaround_cycles": ("cycles a block adds to its DRAM round trip (launch, retire)", stream_src),
        }
        lines = [f"# Calibrated memory-physics parameters, written by scripts/fit_micro.py on {today}.",
                 "# Each value names the data it was fitted on. Re-run the script to refit.", "", "[params]"]
        for k, v in fitted.items():
            desc, src = what[k]
            lines.append(f'{k} = {{ value = {v:.6g}, meaning = "{desc}", source = "{src}" }}')
        OUT.write_text("\n".join(lines) + "\n")
        _physics.model_params.cache_clear()
        _CURRENT[0] = None
        print(f"wrote {OUT}")
    p = dataclasses.asdict(_physics.model_params())
    print({k: round(v, 4) for k, v in p.items() if k != "sources"})
    for label, errs in [("chase (fitted)", chase_errors(CHASE_FIT)), ("chase (held out)", chase_errors(CHASE_HELD_OUT)),
                        ("stream read (fitted)", stream_errors(STREAM_FIT))]:
        for gid, e in errs.items():
            print(f"{label:22s} {gid:10s} MAPE {np.abs(e).mean():6.2%}  max {np.abs(e).max():6.2%}  n={len(e)}")


if __name__ == "__main__":
    main()
