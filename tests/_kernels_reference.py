"""NumPy reference of torch.nn.functional.embedding_bag and random cases, for the kernel tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def reference(weight: np.ndarray, idx: np.ndarray, offsets: np.ndarray, mode: str, psw: np.ndarray | None,
              padding_idx: int | None = None) -> np.ndarray:
    """embedding_bag in float64, bag by bag (an empty bag gives zeros; mean of empty = 0); rows
    of ``padding_idx`` count neither in the sum nor in the bag size (torch's rule)."""
    B = len(offsets)
    out = np.zeros((B, weight.shape[1]), np.float64)
    ends = [*offsets[1:].tolist(), len(idx)]
    for b in range(B):
        rows = idx[offsets[b] : ends[b]]
        keep = np.ones(len(rows), bool) if padding_idx is None else rows != padding_idx
        if not keep.any():
            continue
        w = weight[rows].astype(np.float64)
        if psw is not None:
            w = w * psw[offsets[b] : ends[b], None].astype(np.float64)
        w = w[keep]
        out[b] = w.sum(0) if mode == "sum" else w.mean(0)
    return out


def random_case(rng: np.random.Generator, *, dtype: str, index_dtype: str, dim: int, weighted: bool) -> dict[str, Any]:
    """Random bags with an empty first, middle and last bag and repeated indices."""
    E = int(rng.integers(20, 300))
    B = int(rng.integers(3, 40))
    lengths = rng.integers(0, 25, B)
    lengths[0] = 0
    lengths[B // 2] = 0
    lengths[-1] = 0 if rng.random() < 0.5 else lengths[-1]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(index_dtype)
    n = int(lengths.sum())
    idx = rng.integers(0, E, n).astype(index_dtype)
    if n > 3:
        idx[1] = idx[0]  # repeated index within a bag
    weight = rng.standard_normal((E, dim)).astype(dtype)
    psw = rng.random(n).astype(dtype) if weighted else None
    return {"weight": weight, "indices": idx, "offsets": offsets, "per_sample_weights": psw}


def assert_matches(got: np.ndarray, case: dict[str, Any], mode: str, what: Any, padding_idx: int | None = None) -> None:
    want = reference(case["weight"], case["indices"], case["offsets"], mode, case["per_sample_weights"], padding_idx)
    assert got.dtype == case["weight"].dtype and got.shape == want.shape, what
    if got.dtype == np.float16:
        # fp32 accumulation, one rounding to fp16 at the end: within half an fp16 ulp (+ fp32 noise)
        tol = np.abs(want) * 2.0**-11 + 1e-4
    else:
        tol = np.abs(want) * 1e-5 + 1e-5
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= tol).all(), f"{what}: max error {err.max():.3g} (tolerance {tol.max():.3g})"
