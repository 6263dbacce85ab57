"""The CLI contract: --json prints one JSON object; bad input exits 2 with one error: line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recperf", *args], capture_output=True, text=True, timeout=120, check=False)


def test_gpus_json() -> None:
    out = run("gpus", "--json")
    assert out.returncode == 0, out.stderr
    ids = {g["id"] for g in json.loads(out.stdout)["gpus"]}
    assert {"a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h200"} <= ids


def test_occupancy_seed_kernel() -> None:
    out = run("occupancy", "--gpu", "a100-80gb", "--block-size", "256", "--registers", "54", "--json")
    assert out.returncode == 0, out.stderr
    o = json.loads(out.stdout)
    assert o["active_warps_per_sm"] == 32 and o["occupancy"] == 0.5 and o["limiter"] == "registers"


def test_occupancy_text_output() -> None:
    out = run("occupancy", "--gpu", "h100-sxm", "--block-size", "256", "--registers", "42")
    assert out.returncode == 0 and "occupancy:" in out.stdout and "62.5%" in out.stdout


def _assert_clean_error(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "Traceback" not in out.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_unknown_gpu_exits_2_with_choices() -> None:
    _assert_clean_error(run("occupancy", "--gpu", "no-such-gpu", "--block-size", "256", "--registers", "32", "--json"),
                        "no-such-gpu", "a100-80gb", "h200")


def test_malformed_spec_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nname = "y"\n[spec]\nsm_count = { value = 1, source = "me" }\n')
    _assert_clean_error(run("occupancy", "--gpu", str(bad), "--block-size", "256", "--registers", "32"),
                        "bad.toml", "missing fields")


@pytest.mark.parametrize(
    "args",
    [
        ("occupancy", "--gpu", "a100-80gb", "--block-size", "0", "--registers", "32"),
        ("occupancy", "--gpu", "a100-80gb", "--block-size", "abc", "--registers", "32"),
        ("occupancy", "--gpu", "a100-80gb"),
        ("no-such-command",),
    ],
)
def test_bad_arguments_exit_2(args: tuple[str, ...]) -> None:
    _assert_clean_error(run(*args))
