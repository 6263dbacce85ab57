#!/usr/bin/env python3
"""Fit the random-gather parameter of perfmodel/data/calibration/gather.toml, per architecture, on
the ledger's CALIBRATION points only (validation/data/published/*.toml, ``role = "calibration"``),
write it with the names of the points used, and print the residuals of every point, check points
included.

The one parameter per architecture: ``loaded_translation_cycles``, the cycles every access
beyond the L1 adds under a full GPU's random gathers once the footprint exceeds the pointer
chase's DRAM-plateau start (perfmodel/_physics.py ``translation_cycles``; attributed to address
translation, whose unloaded cost the single-warp chase shows). The form was chosen from the
MICRO'24 artifact's log (docs/fidelity.md: the time per pair round barely moves with the hit
rate, so the missing cost is per access, not per DRAM miss); its value is fitted here. For each
architecture a golden-section search on the cycles in [LO, HI] minimises the sum of squared log
errors of that architecture's calibration points as their sources timed them (every GPU of that
architecture a point lists). Check points (``role = "check"``) never enter the objective; they
are printed afterwards, with the ratios.

    .venv/bin/python scripts/fit_published.py            # fit, print, write gather.toml
    .venv/bin/python scripts/fit_published.py --check    # only print the residuals of the shipped file
"""

from __future__ import annotations

import argparse
import datetime
import math
import re
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import perfmodel  # noqa: E402
from perfmodel import _model, _physics  # noqa: E402
from validation._ledger import compare_ledger, load_ledger  # noqa: E402

OUT = Path(str(resources.files("perfmodel").joinpath("data/calibration/gather.toml")))
LO, HI = 0.0, 3000.0  # search range, cycles


def _use(arch: str, a: float) -> None:
    """Make the model use ``a`` cycles on ``arch`` (the other figures as they stand)."""
    cur = _physics.gather_params()
    got = replace(cur, loaded_translation_cycles={**cur.loaded_translation_cycles, arch: a})
    _model.clear_cache()
    _physics._GATHER_OVERRIDE[0] = got


def _errors(ledger: object, arch: str | None = None, a: float | None = None) -> list[tuple[str, str, str, float, float]]:
    if arch is not None and a is not None:
        _use(arch, a)
    cmp = compare_ledger(ledger)  # type: ignore[arg-type]
    out = []
    for r in cmp.points:
        if r.ok and r.predicted is not None:
            out.append((r.point.role, r.point.name, r.gpu, r.point.measured_s, r.predicted.as_timed_s))
    return out


def _objective(ledger: object, arch: str, a: float) -> float:
    return sum(math.log(p / m) ** 2 for _role, _n, _g, m, p in _errors(ledger, arch, a))


def _golden(ledger: object, arch: str) -> float:
    lo, hi = LO, HI
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    fc, fd = _objective(ledger, arch, c), _objective(ledger, arch, d)
    for _ in range(30):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - g * (hi - lo)
            fc = _objective(ledger, arch, c)
        else:
            lo, c, fc = c, d, fd
            d = lo + g * (hi - lo)
            fd = _objective(ledger, arch, d)
    return (lo + hi) / 2.0


def _print_ratios(ledger: object) -> None:
    cmp = compare_ledger(ledger)  # type: ignore[arg-type]
    for r in cmp.ratios:
        if r.status == "ok" and r.predicted is not None:
            m = r.ratio.measured
            print(f"ratio        {r.gpu:<10} {m:11.3f} {r.predicted:12.3f} {r.predicted / m - 1:+7.1%}  {r.ratio.name}")


def _print(rows: list[tuple[str, str, str, float, float]]) -> None:
    print(f"{'role':<12} {'gpu':<10} {'measured us':>11} {'predicted us':>12} {'error':>7}  point")
    for role, name, gpu, m, p in rows:
        print(f"{role:<12} {gpu:<10} {m * 1e6:11.1f} {p * 1e6:12.1f} {p / m - 1:+7.1%}  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only print the residuals of the shipped file")
    args = ap.parse_args()
    try:  # configurations the shipped table lacks are compiled when a compiler is installed
        import kernels

        perfmodel.set_profile_provider(kernels.compiled_figures)
    except ImportError:
        pass
    full = load_ledger()
    calib = [p for p in full.points if p.role == "calibration" and p.status is None]
    archs = sorted({perfmodel.get_gpu(g).arch for p in calib for g in p.gpus})
    if not args.check:
        text = OUT.read_text(encoding="utf-8")
        today = datetime.date.today().isoformat()
        for arch in archs:
            pts = tuple(p for p in calib if any(perfmodel.get_gpu(g).arch == arch for g in p.gpus))
            used = sorted({f"{p.source_id}: {p.name} ({', '.join(p.gpus)})" for p in pts})
            led = replace(full, points=tuple(replace(p, gpus=tuple(g for g in p.gpus if perfmodel.get_gpu(g).arch == arch))
                                             for p in pts), ratios=())
            a = _golden(led, arch)
            _use(arch, a)
            print(f"{arch}: loaded_translation_cycles = {a:.1f} (golden section in [{LO}, {HI}]), fitted on "
                  f"{len(used)} calibration point(s): {'; '.join(used)}")
            src = (f"scripts/fit_published.py on {today}: least squares of log(predicted / measured) over this "
                   f"architecture's ledger calibration points only ({'; '.join(used)}); check points never used")
            line = (f'loaded_translation_cycles = {{ value = {a:.1f}, meaning = "cycles every access beyond the L1 '
                    f'adds under load once the footprint exceeds the chase\'s plateau start", source = "{src}" }}')
            text = re.sub(rf"(^\[params\.{arch}\]\n)loaded_translation_cycles = .*$", lambda m, new=line: m.group(1) + new,
                          text, count=1, flags=re.M)
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
    _print(_errors(full))
    _print_ratios(full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
