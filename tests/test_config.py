"""Kernel configurations and workloads: defaults, files, and errors that state the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

import perfmodel


def test_kernel_defaults_are_pytorch_as_shipped() -> None:
    k = perfmodel.KernelConfig()
    assert (k.variant, k.block_size, k.register_cap, k.prefetch_distance, k.pinned_row_fraction, k.pin_method,
            k.bounds_check) == ("pytorch", 256, 0, 0, 0.0, "access-policy-window", "inline")


def test_kernel_file_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "k.toml"
    p.write_text('variant = "warp"\nblock_size = 128\nregister_cap = 42\nprefetch_distance = 2\n'
                 'pinned_row_fraction = 0.12\npin_method = "evict-last-prefetch"\nbounds_check = "separate"\n')
    k = perfmodel.load_kernel_config(p)
    assert k == perfmodel.KernelConfig(variant="warp", block_size=128, register_cap=42, prefetch_distance=2,
                                       pinned_row_fraction=0.12, pin_method="evict-last-prefetch", bounds_check="separate")


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"variant": "fast"}, "unknown variant 'fast'; valid choices: micro24-combined, pytorch, pytorch-current, tbe, warp"),
        ({"block_size": 100}, "multiple of 32"),
        ({"block_size": 2048}, "32 <= block_size <= 1024"),
        ({"register_cap": 10}, "register_cap == 0 or 24 <= register_cap"),
        ({"prefetch_distance": 17}, "0 <= prefetch_distance <= 16"),
        ({"pinned_row_fraction": 1.5}, "0 <= pinned_row_fraction <= 1"),
        ({"bounds_check": "maybe"}, "valid choices: inline, none, separate"),
    ],
)
def test_kernel_errors(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError) as info:
        perfmodel.KernelConfig(**kw)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_kernel_file_unknown_key(tmp_path: Path) -> None:
    p = tmp_path / "k.toml"
    p.write_text("blocksize = 128\n")
    with pytest.raises(ValueError, match="unknown keys \\['blocksize'\\]"):
        perfmodel.load_kernel_config(p)


def test_workload_file_resolves_trace_relative(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("1\n2\n3\n")
    p = tmp_path / "w.toml"
    p.write_text('batch_size = 4\n[[tables]]\nrows = 10\ndim = 8\npooling = 2\ncount = 3\n'
                 '[tables.indices]\nkind = "trace"\npath = "t.txt"\n'
                 '[[tables]]\nrows = 100\ndim = 16\ndtype = "float16"\npooling_mean = 3.5\npooling_dist = "poisson"\n'
                 '[tables.indices]\nkind = "zipf"\nalpha = 1.1\n')
    w = perfmodel.load_workload(p)
    assert w.batch_size == 4 and w.table_calls == 4
    assert w.tables[0].indices.path == str((tmp_path / "t.txt").resolve())
    assert w.tables[1].row_bytes == 32 and w.tables[1].mean_pooling == 3.5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[tables]]\nrows = 10\ndim = 8\npooling = 2\n", "`batch_size` is required"),
        ("batch_size = 4\n", "at least one [[tables]]"),
        ("batch_size = 4\n[[tables]]\nrows = 10\ndim = 8\n", "needs `pooling`"),
        ("batch_size = 4\n[[tables]]\nrows = 10\ndim = 8\npooling = 2\ndtype = \"int8\"\n", "valid choices: float16, float32"),
        ("batch_size = 4\n[[tables]]\nrows = 10\ndim = 8\npooling = 2\n[tables.indices]\nkind = \"trace\"\npath = \"nope.txt\"\n",
         "does not exist"),
        ("batch_size = 0\n[[tables]]\nrows = 10\ndim = 8\npooling = 2\n", "batch_size >= 1"),
    ],
)
def test_workload_errors(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "w.toml"
    p.write_text(text)
    with pytest.raises(ValueError) as info:
        perfmodel.load_workload(p)
    assert needle in str(info.value)
