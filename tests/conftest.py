"""Shared test fixtures and skip helpers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background of a non-interactive shell (`nohup make test &`) inherits
# SIGINT ignored, and so would every command the tests start: the Ctrl-C tests need Python's
# own handler, as a terminal run has.
signal.signal(signal.SIGINT, signal.default_int_handler)


def cuda_include_dir() -> str | None:
    """The CUDA toolkit's include folder, found the way nvcc reports it, or None."""
    env = os.environ.get("CUDA_INCLUDE_DIR")
    if env and Path(env, "cuda_occupancy.h").is_file():
        return env
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        try:
            out = subprocess.run(
                [nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                capture_output=True, text=True, timeout=60, check=False,
            ).stderr
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if 'INCLUDES="-I' in line:
                candidates.append(line.split('INCLUDES="-I', 1)[1].split('"', 1)[0].strip())
    candidates += ["/usr/local/cuda/include"]
    for c in candidates:
        if Path(c, "cuda_occupancy.h").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def occupancy_oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NVIDIA's cuda_occupancy.h compiled into a small reference program."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: the occupancy oracle is compiled against NVIDIA's cuda_occupancy.h with g++")
    inc = cuda_include_dir()
    if inc is None:
        pytest.skip("cuda_occupancy.h not found (no CUDA toolkit; set CUDA_INCLUDE_DIR): no oracle to compare with")
    exe = tmp_path_factory.mktemp("oracle") / "occupancy_oracle"
    subprocess.run([gxx, "-O2", f"-I{inc}", str(ROOT / "tests/oracles/occupancy_oracle.cpp"), "-o", str(exe)], check=True)
    return exe
