"""Write the synthetic replay file described in README.md (run from the repository root)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = {"batch_size": 1024, "tables": [{"rows": 2000000, "dim": 64, "dtype": "float32", "pooling": 40,
                                            "count": 4, "indices": {"kind": "zipf", "alpha": 1.05}}]}


def synthetic_time_s(variant: str, block_size: int, prefetch_distance: int, register_cap: int) -> float:
    t: float = 1e-4 * (1.5 if variant == "pytorch" else 1.0) * (256 / block_size) ** 0.25
    t *= 1 - 0.05 * prefetch_distance
    return t * (1.1 if register_cap == 0 else 1.0)


def main() -> None:
    lines = []
    for variant in ("pytorch", "warp"):
        for block in (128, 256, 512):
            for prefetch in (0, 4):
                for cap in (0, 40):
                    k = {"variant": variant, "block_size": block, "prefetch_distance": prefetch, "register_cap": cap}
                    lines.append(json.dumps({"gpu": "h100-sxm", "workload": WORKLOAD, "kernel": k,
                                             "time_s": synthetic_time_s(variant, block, prefetch, cap),
                                             "note": "synthetic: time_s from the formula in README.md, not a measurement"}))
    (HERE / "h100-sxm-zipf-grid.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
