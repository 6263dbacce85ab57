"""The model and the CPU-side packages import no GPU library (STYLE.md practice 5)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_core_packages_loads_no_cupy() -> None:
    code = (
        "import sys\n"
        "import perfmodel, search, validation, kernels\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('cupy', 'cupyx', 'cuda', 'numba', 'torch'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"GPU or heavy libraries imported at package import: {out.stdout.strip()}"
