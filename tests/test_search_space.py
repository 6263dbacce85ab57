"""The search space as data: bounds from the GPU, grid enumeration, Optuna encoding round trips."""

from __future__ import annotations

import itertools

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import perfmodel
from perfmodel import InputError, KernelConfig
from search import REGISTER_CAP_CHOICES, SearchSpace, build_space, max_pinned_row_fraction
from search._space import PARAM_NAMES, pinned_fraction_grid


def _workload(rows: int = 500_000, dim: int = 128, count: int = 12) -> perfmodel.Workload:
    return perfmodel.Workload(batch_size=2048, tables=(perfmodel.Table(rows=rows, dim=dim, pooling=150, count=count),))


def test_seed_workload_bound_is_the_persisting_limit() -> None:
    gpu = perfmodel.get_gpu("a100-80gb")
    f = max_pinned_row_fraction(_workload(), gpu)
    # A100: 31,457,280 B / 512 B rows = 61,440 rows of 500,000 (FACTS.md section 3)
    assert f == pytest.approx(61_440 / 500_000)
    space = build_space(_workload(), gpu)
    assert space.pinned_row_fractions[0] == 0.0
    assert space.pinned_row_fractions[-1] <= f
    assert len(space.pinned_row_fractions) >= 12
    top = space.pinned_row_fractions[-1]
    assert int(top * 500_000) * 512 <= gpu.persisting_l2_max_bytes


def test_bound_follows_the_largest_table_and_caps_at_one() -> None:
    gpu = perfmodel.get_gpu("h100-sxm")
    small = perfmodel.Table(rows=1000, dim=16, pooling=1)
    big = perfmodel.Table(rows=10_000_000, dim=16, pooling=1)
    assert max_pinned_row_fraction(perfmodel.Workload(batch_size=1, tables=(small,)), gpu) == 1.0
    f = max_pinned_row_fraction(perfmodel.Workload(batch_size=1, tables=(small, big)), gpu)
    assert f == pytest.approx((gpu.persisting_l2_max_bytes // 64) / 10_000_000)


@given(upper=st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_fraction_grid_properties(upper: float) -> None:
    grid = pinned_fraction_grid(upper)
    assert grid[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(grid))
    assert grid[-1] <= upper + 1e-12
    assert len(grid) <= 101
    if upper >= 12 * 0.0001:
        assert len(grid) >= 12


def test_block_sizes_bounded_by_the_gpu_and_caps_constant() -> None:
    gpu = perfmodel.get_gpu("a100-40gb")
    space = build_space(_workload(), gpu)
    assert space.block_sizes[0] == 64 and space.block_sizes[-1] == gpu.max_threads_per_block
    assert all(b % 32 == 0 for b in space.block_sizes)
    assert space.register_caps == REGISTER_CAP_CHOICES == (0, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128)
    assert space.bounds_checks == ("inline", "separate")
    assert "none" in build_space(_workload(), gpu, allow_no_bounds_check=True).bounds_checks


def test_grid_enumerates_distinct_configs_and_size_matches() -> None:
    space = SearchSpace(block_sizes=(64, 128), register_caps=(0, 32), prefetch_distances=(0, 2),
                        prefetch_kinds=("register", "l2-hint"), pinned_row_fractions=(0.0, 0.05, 0.1))
    configs = [c for chunk in space.grid_chunks(5) for c in chunk]
    assert len(configs) == space.grid_size == len(set(configs))
    # duplicates left out: pin_method only varies when pinning, prefetch_kind only when prefetching
    assert {c.pin_method for c in configs if c.pinned_row_fraction == 0} == {"access-policy-window"}
    assert {c.prefetch_kind for c in configs if c.prefetch_distance == 0} == {"register"}
    assert all(space.contains(c) for c in configs)
    # 2 variants x 2 blocks x 2 caps x (1 + 2) prefetch x (1 + 2 x 2) pinning x 2 checks
    assert space.grid_size == 2 * 2 * 2 * 3 * 5 * 2


def test_param_round_trip_through_optuna() -> None:
    gpu = perfmodel.get_gpu("a100-80gb")
    space = build_space(_workload(), gpu)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = []
    for _ in range(60):
        trial = study.ask()
        cfg = space.suggest(trial)
        assert space.contains(cfg)
        assert space.config_from_params(trial.params) == cfg
        assert space.params_from_config(cfg) == trial.params
        seen.append(cfg)
        study.tell(trial, 1.0)
    assert len({c.register_cap for c in seen}) > 3


def test_register_cap_rank_orders_no_cap_last() -> None:
    space = SearchSpace()
    assert space.config_from_params({**_all_params(space), "register_cap_rank": 0}).register_cap == 24
    top = len(space.register_caps) - 1
    assert space.config_from_params({**_all_params(space), "register_cap_rank": top}).register_cap == 0


def _all_params(space: SearchSpace) -> dict[str, object]:
    return space.params_from_config(space.project(KernelConfig()))


def test_project_snaps_to_nearest_values() -> None:
    space = build_space(_workload(), perfmodel.get_gpu("a100-80gb"))
    p = space.project(KernelConfig(register_cap=42, block_size=1024 - 32, pinned_row_fraction=0.5))
    assert p.register_cap == 40
    assert p.pinned_row_fraction == space.pinned_row_fractions[-1]
    assert space.contains(p)


def test_default_baseline_is_in_the_space() -> None:
    space = build_space(_workload(), perfmodel.get_gpu("a100-80gb"))
    assert space.contains(KernelConfig())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": ("pytorch", "cuda")}, "valid choices"),
        ({"block_sizes": (64, 100)}, "multiple of 32"),
        ({"register_caps": (16,)}, "register_cap"),
        ({"block_sizes": ()}, "at least one value"),
        ({"block_sizes": (128, 64)}, "increasing"),
        ({"pinned_row_fractions": (0.0, 1.5)}, "pinned_row_fraction"),
    ],
)
def test_invalid_space_raises_with_the_rule(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        SearchSpace(**kwargs)  # type: ignore[arg-type]


def test_param_names_cover_kernel_config() -> None:
    assert set(PARAM_NAMES) == set(KernelConfig().to_dict())
