#!/usr/bin/env python3
"""Benchmark the design-space search: the default search against the exhaustive grid, and the
multi-fidelity search against the simulator taken as ground truth.

Default mode. For each workload (the seed paper's, an RMC2-like one, a Criteo-Kaggle-like one;
TOMLs in ``search/data/``): ``recperf search`` with no flags in a fresh process (wall time,
process start included; the method it chose), the whole unpruned grid through
``search.exhaustive`` (the model's optimum; is the default's answer the same?), then TPE and
random search (``--trials`` trials, ``--seeds`` seeds, in-memory studies) and each sampler's
gap to the optimum (best found / optimum - 1): median and worst over the seeds. Both samplers
start from the same known-good points (PyTorch's kernel as shipped and the seed paper's
combination); ``TPE, cold`` is TPE without them.

    .venv/bin/python scripts/bench_search.py [--gpu a100-80gb] [--trials 100] [--seeds 5] [--json [out.json]]

``--sim-truth``. The simulator is the ground truth: every configuration of a space small enough
to simulate whole (:data:`SIM_SPACE`, 720 configurations of a one-table workload of
:data:`SIM_WORKLOADS`, ``--sim-workload``) is simulated once; that table is then the cache every search below looks its evaluations up in. For each
seed, three searches spend ``--budget`` simulator evaluations each: the multi-fidelity search
(``search.run_fidelity_study``: the model's ranking of the space, its best five first, then the
configuration the model ranks fastest one field away from the best simulated so far), TPE alone and random
search (the shipped samplers at simulator fidelity, from the known-good points, as
``recperf search --sampler tpe|random`` starts). It prints how many evaluations each needs to
come within 1% of the simulator's optimum (a search that never does counts ``--budget`` + 1),
the median over the seeds, the Spearman correlation of model and simulator over the whole space,
and the model's rank of the simulator's optimum.

    .venv/bin/python scripts/bench_search.py --sim-truth [--seeds 10] [--budget 60] [--sim-workload a|b] [--json [out.json]]

With ``--json`` the last line of stdout is one JSON object (``--sim-truth``: ``space_size``,
``evals_to_1pct: {multi_fidelity, tpe, random}`` medians, and the details); with a path it is
also written there.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from perfmodel import KernelConfig

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "seed (12x500K x128, reuse_medium)": ROOT / "search" / "data" / "seed_reuse_medium.toml",
    "RMC2-like (32x500K x64, reuse_low)": ROOT / "search" / "data" / "rmc2_like.toml",
    "Criteo-Kaggle-like (26 tables, x16)": ROOT / "search" / "data" / "criteo_kaggle_like.toml",
}
RUNS = (("TPE", "tpe", True), ("TPE, cold", "tpe", False), ("random", "random", True))

#: --sim-truth workloads (one table each): ``a`` (the default) 100K rows x 32 fp32, 8 lookups per bag
#: (Zipf 1.05), 512 bags; ``b`` 2M rows x 16 fp32, one lookup per bag (uniform), 2,048 bags
#: (Criteo-like; about 6x slower to simulate: ~860 s for the space on the development VM)
SIM_WORKLOADS = {
    "a": {"batch_size": 512,
          "tables": [{"rows": 100_000, "dim": 32, "pooling": 8, "indices": {"kind": "zipf", "alpha": 1.05}}]},
    "b": {"batch_size": 2048,
          "tables": [{"rows": 2_000_000, "dim": 16, "pooling": 1, "indices": {"kind": "uniform"}}]},
}
#: --sim-truth: 2 variants x 3 block sizes x 3 caps x 4 prefetch distances x 5 pinnings x 2 checks
SIM_SPACE = {"block_sizes": [128, 512, 1024], "register_caps": [0, 32, 40], "prefetch_distances": [0, 1, 2, 4],
             "pinned_row_fractions": [0.0, 0.05, 0.1]}
SIM_BUDGET = 60
WITHIN = 0.01


def _emit_json(doc: dict[str, Any], path: str | None) -> None:
    """The JSON object as stdout's last line; also to ``path`` unless it is ``-``."""
    if path and path != "-":
        Path(path).write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc))


# ---- default mode ------------------------------------------------------------------------------


def _default_search(path: Path, gpu: str, out: Path) -> dict[str, Any]:
    """``recperf search`` with no flags in a new process: wall time and its JSON."""
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "recperf", "search", "--gpu", gpu, "--workload", str(path), "--out",
                          str(out), "--json", "--no-progress"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(f"recperf search failed on {path}: {run.stderr.strip()[-300:]}")
    doc: dict[str, Any] = json.loads(run.stdout)
    doc["wall_s"] = wall
    return doc


def default_mode(args: argparse.Namespace) -> int:
    import tempfile

    import optuna

    import perfmodel
    import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gpu = perfmodel.get_gpu(args.gpu)
    workloads = {Path(p).stem: Path(p) for p in args.workloads} if args.workloads else WORKLOADS
    rows: list[dict[str, Any]] = []
    for label, path in workloads.items():
        wl = perfmodel.load_workload(path)
        with tempfile.TemporaryDirectory() as tmp:
            d = _default_search(path, gpu.id, Path(tmp))
        t0 = time.perf_counter()
        ex = search.exhaustive(wl, gpu)
        ex_s = time.perf_counter() - t0
        row: dict[str, Any] = {"workload": label, "grid": ex.n_evaluated, "exhaustive_s": ex_s,
                               "optimum_s": ex.best_time_s, "baseline_s": ex.baseline_time_s, "speedup": ex.speedup,
                               "best_config": ex.best_config.to_dict(),
                               "default": {"method": d["method"], "wall_s": d["wall_s"], "best_time_s": d["best_time_s"],
                                           "equal_to_exhaustive": d["best_time_s"] == ex.best_time_s,
                                           "predicted": d.get("grid", {}).get("n_evaluated")}}
        for name, sampler, warm in RUNS if args.seeds else ():
            gaps = []
            t1 = time.perf_counter()
            for seed in range(args.seeds):
                r = search.optimize(wl, gpu, n_trials=args.trials, seed=seed, storage=":memory:", study_name="bench",
                                    sampler=sampler, enqueue_known_good=warm)
                gaps.append(r.best_time_s / ex.best_time_s - 1)
            row[name] = {"median_gap": statistics.median(gaps), "max_gap": max(gaps), "gaps": gaps,
                         "within_2pct": sum(g <= 0.02 for g in gaps),
                         "seconds_per_search": (time.perf_counter() - t1) / args.seeds}
        rows.append(row)
        print(f"done: {label} ({ex.n_evaluated} configurations, exhaustive {ex_s:.1f} s)", file=sys.stderr)

    print(f"GPU {gpu.id}. The default search (`recperf search` with no flags, a new process) against the unpruned grid:")
    head = ["workload", "grid", "default: method", "wall (s)", "predicted", "= exhaustive optimum", "grid alone (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for row in rows:
        d = row["default"]
        pred = f"{d['predicted']:,}" if d["predicted"] else "-"
        lines.append(f"| {row['workload']} | {row['grid']:,} | {d['method']} | {d['wall_s']:.1f} | {pred} | "
                     f"{'yes' if d['equal_to_exhaustive'] else 'no'} | {row['exhaustive_s']:.1f} |")
    print("\n".join(lines))
    runs = RUNS if args.seeds else ()
    print(f"\nSampled searches: {args.trials} trials; {args.seeds} seeds; gap = best found / exhaustive optimum - 1")
    head = ["workload", "baseline (µs)", "optimum (µs)", "speedup"]
    head += [f"{n} gap median / worst (runs within 2%)" for n, _, _ in runs]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for row in rows:
        cells = [row["workload"], f"{row['baseline_s'] * 1e6:.1f}", f"{row['optimum_s'] * 1e6:.1f}",
                 f"{row['speedup']:.2f}x"]
        cells += [f"{row[n]['median_gap']:.2%} / {row[n]['max_gap']:.2%} ({row[n]['within_2pct']}/{args.seeds})"
                  for n, _, _ in runs]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    exact = all(row["default"]["equal_to_exhaustive"] and row["default"]["method"] == "exhaustive" for row in rows)
    print(f"default search returns the exhaustive optimum on every workload: {'yes' if exact else 'no'}")
    if args.json is not None:
        _emit_json({"gpu": gpu.id, "trials": args.trials, "seeds": args.seeds, "rows": rows,
                    "default_exact": exact}, args.json)
    return 0 if exact else 1


# ---- --sim-truth -------------------------------------------------------------------------------


def evals_to_target(values: Sequence[float], target: float, budget: int) -> int:
    """1-based index of the first value within ``target``; ``budget + 1`` if none is."""
    return next((i for i, v in enumerate(values, 1) if v <= target), budget + 1)


def _values_in_order(study: optuna.Study) -> list[float]:
    import math as _m

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return [float(t.values[0]) if t.values and _m.isfinite(t.values[0]) else _m.inf for t in trials]


def sim_truth_mode(args: argparse.Namespace) -> int:
    import numpy as np
    import optuna
    from scipy.stats import spearmanr

    import perfmodel
    import search

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gpu = perfmodel.get_gpu(args.gpu)
    wl = perfmodel.workload_from_mapping(SIM_WORKLOADS[args.sim_workload])
    t = wl.tables[0]
    wl_text = (f"one table of {t.rows:,} rows x {t.dim} {t.dtype}, {t.mean_pooling:g} lookups per bag "
               f"({t.indices.kind}{f' {t.indices.alpha:g}' if t.indices.kind == 'zipf' else ''}), "
               f"{wl.batch_size:,} bags")
    space = search.space_from_mapping(SIM_SPACE)
    configs = [c for chunk in space.grid_chunks() for c in chunk]
    budget = args.budget

    # the ground truth: every configuration simulated once (the cache of every search below)
    t0 = time.perf_counter()
    truth: dict[KernelConfig, float] = {}
    for i, c in enumerate(configs):
        try:
            truth[c] = perfmodel.simulate(wl, c, gpu).time_s
        except perfmodel.InputError:  # the kernel cannot launch (no resident block)
            truth[c] = math.inf
        if (i + 1) % 120 == 0:
            print(f"  simulated {i + 1}/{len(configs)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    truth_s = time.perf_counter() - t0
    finite = {c: t for c, t in truth.items() if math.isfinite(t)}
    optimum = min(finite.values())
    target = optimum * (1 + WITHIN)
    sim_best = min(finite, key=lambda c: finite[c])
    model_all = search.evaluate_model(wl, gpu, configs).time_s
    model_of = dict(zip(configs, (float(x) for x in model_all), strict=True))
    ranking = sorted(configs, key=lambda c: (model_of[c], configs.index(c)))
    within = [c for c in finite if finite[c] <= target]
    both = [c for c in configs if math.isfinite(truth[c]) and math.isfinite(model_of[c])]
    rho = float(spearmanr([model_of[c] for c in both], [truth[c] for c in both]).statistic)

    def evaluate(batch: list[KernelConfig]) -> search.Evaluation:
        t = np.array([truth[space.canonical(c)] for c in batch])
        return search.Evaluation(time_s=t, l2_bytes=search.l2_bytes_set_aside(wl, batch),
                                 infeasible=tuple("" if math.isfinite(x) else "cannot launch" for x in t))

    def model_times(batch: list[KernelConfig]) -> Any:
        return search.evaluate_model(wl, gpu, batch).time_s

    def multi_fidelity(seed: int) -> list[float]:
        study = optuna.create_study()
        search.run_fidelity_study(study, space, "sim", evaluate, model_times, budget_evals=budget,
                                  warm_start=ranking, seed=seed)
        return _values_in_order(study)

    def sampled(kind: str) -> Callable[[int], list[float]]:
        def run(seed: int) -> list[float]:
            study = optuna.create_study()
            codec = search.CapLevelCodec.for_workload(space, gpu, wl)
            search.run_trials(study, codec, evaluate, 1, budget, 1, search.make_sampler(kind, seed),
                       search.known_good_configs(space))
            return _values_in_order(study)

        return run

    methods = {"multi_fidelity": multi_fidelity, "tpe": sampled("tpe"), "random": sampled("random")}
    per_seed: dict[str, list[int]] = {m: [] for m in methods}
    t1 = time.perf_counter()
    for seed in range(args.seeds):
        for name, fn in methods.items():
            per_seed[name].append(evals_to_target(fn(seed), target, budget))
    search_s = time.perf_counter() - t1
    medians = {m: statistics.median(v) for m, v in per_seed.items()}

    print(f"Simulator as ground truth on GPU {gpu.id}, workload {args.sim_workload}: {wl_text}; a space of "
          f"{len(configs)} configurations ({len(finite)} that run), "
          f"all simulated in {truth_s:.0f} s ({truth_s / len(configs):.2f} s each).")
    print(f"Simulator optimum {optimum * 1e6:.3f} µs ({search.format_config(sim_best)}); {len(within)} configurations "
          f"within 1% of it. The model ranks the simulator's optimum #{ranking.index(sim_best) + 1} and its own best "
          f"is {truth[ranking[0]] / optimum - 1:.1%} off at simulator fidelity; Spearman model vs simulator over the "
          f"space: {rho:.3f}.")
    print(f"Simulator evaluations to come within 1% of the optimum ({budget} at most; never = {budget + 1}), "
          f"{args.seeds} seeds, searches {search_s:.0f} s in all:")
    head = ["method", "median", "per seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for m, v in per_seed.items():
        lines.append(f"| {m.replace('_', '-')} | {medians[m]:g} | {', '.join(map(str, v))} |")
    print("\n".join(lines))
    ok = medians["multi_fidelity"] <= 30 and all(medians["multi_fidelity"] < medians[m] for m in ("tpe", "random"))
    print(f"multi-fidelity within 30 evaluations and ahead of TPE and random (medians): {'yes' if ok else 'no'}")
    if args.json is not None:
        _emit_json({"gpu": gpu.id, "workload": args.sim_workload, "space_size": len(configs), "feasible": len(finite), "truth_s": truth_s,
                    "seconds_per_simulation": truth_s / len(configs), "budget": budget, "seeds": args.seeds,
                    "optimum_s": optimum, "within_1pct": len(within), "spearman_space": rho,
                    "model_rank_of_optimum": ranking.index(sim_best) + 1,
                    "evals_to_1pct": medians, "per_seed": per_seed}, args.json)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--gpu", default="a100-80gb")
    ap.add_argument("--trials", type=int, default=100, help="default mode: trials per sampled search")
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds (default 5; 10 with --sim-truth; 0 in the default mode: the default search only)")
    ap.add_argument("--workloads", nargs="*", default=None, help="default mode: workload TOML files")
    ap.add_argument("--sim-truth", action="store_true", help="the simulator as ground truth (see above)")
    ap.add_argument("--budget", type=int, default=SIM_BUDGET, help="--sim-truth: evaluations per search (default 60)")
    ap.add_argument("--sim-workload", choices=sorted(SIM_WORKLOADS), default="a",
                    help="--sim-truth: which workload (default a; see SIM_WORKLOADS)")
    ap.add_argument("--json", nargs="?", const="-", default=None,
                    help="print one JSON object as stdout's last line; with a path, also write it there")
    args = ap.parse_args(argv)
    if args.seeds is None:
        args.seeds = 10 if args.sim_truth else 5
    if args.seeds < (1 if args.sim_truth else 0) or args.budget < 1:
        raise SystemExit("error: `--seeds >= 1` (0 in the default mode: no sampled searches) and `--budget >= 1` "
                         "must hold")
    return sim_truth_mode(args) if args.sim_truth else default_mode(args)


if __name__ == "__main__":
    raise SystemExit(main())
