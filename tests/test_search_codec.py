"""The occupancy-level encoding of register caps (search._codec): levels follow NVIDIA's
compiler figures and the occupancy rules, every sampled point decodes to a configuration of
the space, and the grid's optimum stays reachable."""

from __future__ import annotations

import itertools

import optuna

import perfmodel
from perfmodel import KernelConfig
from search import CapLevelCodec, SearchSpace, build_space, exhaustive, trial_config
from search._codec import CONFIG_ATTR, LEVEL_PARAM, dominant_dtype

GPU = perfmodel.get_gpu("a100-80gb")


def _warps(cfg: KernelConfig, dtype: str = "float32") -> int:
    regs = perfmodel.kernel_registers(cfg, GPU, dtype)[0]
    try:
        return perfmodel.occupancy(GPU, block_size=cfg.block_size, registers_per_thread=regs).active_warps_per_sm
    except ValueError:
        return 0


def _workload() -> perfmodel.Workload:
    return perfmodel.Workload(batch_size=2048, tables=(perfmodel.Table(rows=500_000, dim=128, pooling=150, count=12),))


def test_levels_raise_occupancy_and_keep_the_loosest_cap() -> None:
    codec = CapLevelCodec(build_space(_workload(), GPU), GPU)
    caps = SearchSpace().register_caps
    for variant, block, pd, check in itertools.product(("pytorch", "warp"), (96, 256, 640, 1024), (0, 1, 2, 4, 8),
                                                        ("inline", "separate")):
        base = KernelConfig(variant=variant, block_size=block, prefetch_distance=pd, bounds_check=check)
        lv = codec.levels(base)
        assert lv[0] == 0, "level 0 is always the uncapped kernel"
        warps = [_warps(KernelConfig(**{**base.to_dict(), "register_cap": c})) for c in lv]
        assert all(b > a for a, b in itertools.pairwise(warps)), (base, lv, warps)
        # every cap's occupancy is one of the levels', and the level is the loosest cap with it
        for c in caps:
            w = _warps(KernelConfig(**{**base.to_dict(), "register_cap": c}))
            assert w <= warps[-1], (base, c)
            if w in warps and c != 0:
                loosest = lv[warps.index(w)]
                assert loosest == 0 or c <= loosest, (base, c, lv)


def test_level_count_bounds_every_build() -> None:
    space = build_space(_workload(), GPU)
    codec = CapLevelCodec(space, GPU)
    top = codec.distributions()[LEVEL_PARAM].high  # type: ignore[attr-defined]
    for variant, block, pd in itertools.product(("pytorch", "warp"), space.block_sizes[::5], (0, 3, 16)):
        assert len(codec.levels(KernelConfig(variant=variant, block_size=block, prefetch_distance=pd))) <= top + 1


def test_sampled_points_decode_into_the_space_and_are_recorded() -> None:
    space = build_space(_workload(), GPU)
    codec = CapLevelCodec(space, GPU)
    assert "register_cap_rank" not in codec.distributions()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    caps = set()
    for _ in range(80):
        trial = study.ask()
        cfg = codec.suggest(trial)
        assert space.contains(cfg)
        assert codec.config_from_params(trial.params) == cfg
        assert trial.user_attrs[CONFIG_ATTR] == cfg.to_dict()
        assert cfg.register_cap in codec.levels(cfg)
        # a sampled configuration's own level decodes back to it
        assert codec.config_from_params(codec.params_from_config(cfg)) == cfg
        caps.add(cfg.register_cap)
        study.tell(trial, 1.0)
    assert len(caps) >= 3
    frozen = study.trials[0]
    assert trial_config(space, frozen) == codec.config_from_params(frozen.params)


def test_a_cap_between_levels_projects_to_its_occupancy() -> None:
    codec = CapLevelCodec(build_space(_workload(), GPU), GPU)
    paper = KernelConfig(register_cap=40, prefetch_distance=2)  # seed paper's cap 42, on the grid
    got = codec.config_from_params(codec.params_from_config(paper))
    assert _warps(got) == _warps(paper)
    assert got.register_cap in codec.levels(paper)


def test_old_studies_decode_from_the_rank_parameter() -> None:
    space = build_space(_workload(), GPU)
    study = optuna.create_study()
    trial = study.ask()
    cfg = space.suggest(trial)  # the rank encoding, no recorded configuration
    study.tell(trial, 1.0)
    assert trial_config(space, study.trials[0]) == cfg


def test_dominant_dtype_is_the_one_moving_most_bytes() -> None:
    t32 = perfmodel.Table(rows=1000, dim=16, pooling=1, dtype="float32")
    t16 = perfmodel.Table(rows=1000, dim=128, pooling=20, dtype="float16", count=2)
    assert dominant_dtype(perfmodel.Workload(batch_size=8, tables=(t32, t16))) == "float16"
    assert dominant_dtype(perfmodel.Workload(batch_size=8, tables=(t32,))) == "float32"


def test_grid_optimum_is_reachable_through_the_levels() -> None:
    """The best configuration the levels can reach is within 1% of the exhaustive optimum (a
    small space over the seed table: 0.49% since the kernel facts come from the compiled
    profiles, where a tighter cap of the same occupancy can keep other loads in flight; 0.03%
    before)."""
    wl = _workload()
    space = SearchSpace(block_sizes=(128, 256, 512, 1024), prefetch_distances=(0, 1, 2, 4, 8),
                        pinned_row_fractions=(0.0, 0.06, 0.12))
    codec = CapLevelCodec(space, GPU)
    ex = exhaustive(wl, GPU, space=space, top_k=1)
    reachable = [c for chunk in space.grid_chunks() for c in chunk if c.register_cap in codec.levels(c)]
    best = float(perfmodel.predict_batch(wl, reachable, GPU).min())
    assert best <= ex.best_time_s * 1.01, (best, ex.best_time_s)
