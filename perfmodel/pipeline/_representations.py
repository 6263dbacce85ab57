"""Embedding representations: table lookup, DHE and hybrid (MP-Rec, Hsia et al. ASPLOS 2023).

* ``table``: a rows x D table, one gather per lookup (memory-heavy, compute-light).
* ``dhe``: deep hash embedding (Kang et al., KDD 2021): k hash functions map an id to a
  k-wide dense code, an MLP decoder turns it into the D-wide embedding. Memory is the
  decoder's weights only; compute is the decoder per lookup. Defaults from the public
  Kaggle setting (FACTS.md section 2, `bearhw/SecEmb_DHE`): k = 1024, decoder
  1024-512-256-D.
* ``hybrid``: a table of D/2 columns concatenated with a DHE decoding to D/2 (MP-Rec's
  hybrid combines both for accuracy): both costs, at half width each.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from perfmodel._errors import InputError

__all__ = ["REPRESENTATIONS", "DHEConfig", "representation_bytes"]

REPRESENTATIONS = ("table", "dhe", "hybrid")


@dataclass(frozen=True, kw_only=True)
class DHEConfig:
    """A DHE encoder/decoder: ``hashes`` hash functions, then ``hidden`` decoder layers to D."""

    hashes: int = 1024
    hidden: tuple[int, ...] = (512, 256)

    def __post_init__(self) -> None:
        if self.hashes < 1 or any(h < 1 for h in self.hidden):
            raise InputError(f"DHE needs `hashes >= 1` and positive hidden widths, but got ({self.hashes}, {self.hidden})")

    def layers(self, dim: int) -> list[tuple[int, int]]:
        """Decoder layers as (inputs, outputs)."""
        widths = [self.hashes, *self.hidden, dim]
        return list(itertools.pairwise(widths))

    def weight_bytes(self, dim: int, esize: int = 4) -> int:
        """Decoder weights and biases (hash parameters, 2 integers per hash, included)."""
        return sum((i * o + o) * esize for i, o in self.layers(dim)) + 2 * self.hashes * 8

    def flops_per_lookup(self, dim: int) -> float:
        return float(sum(2 * i * o for i, o in self.layers(dim)))


def representation_bytes(rep: str, rows: int, dim: int, esize: int, dhe: DHEConfig) -> int:
    """Memory of one table under representation ``rep``."""
    if rep == "table":
        return rows * dim * esize
    if rep == "dhe":
        return dhe.weight_bytes(dim)
    if rep == "hybrid":
        half = max(1, dim // 2)
        return rows * half * esize + dhe.weight_bytes(dim - half)
    raise InputError(f"unknown representation {rep!r}; valid choices: {', '.join(REPRESENTATIONS)}")
