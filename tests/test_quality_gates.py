"""The lint configuration bites: ruff, with the project's pyproject.toml, rejects a file with
real bugs (a lint config that selects nothing would pass it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BAD = '''import os
def f(x=[]):
    try:
        return x.append(1)
    except:
        pass
    assert (x, "never false")
    return zip(x, x)
'''


def test_ruff_config_catches_real_bugs(tmp_path: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(__file__).resolve().parent.parent / ".venv/bin/ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it comes with the test extra)")
    bad = tmp_path / "bad.py"
    bad.write_text(BAD)
    out = subprocess.run([ruff, "check", "--config", str(ROOT / "pyproject.toml"), "--output-format", "concise",
                          str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode == 1, out.stdout
    for code in ("F401", "B006", "E722", "F631", "B905"):  # unused import, mutable default, bare except, ...
        assert code in out.stdout, (code, out.stdout)
