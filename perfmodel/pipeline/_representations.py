"""Embedding representations (MP-Rec, Hsia et al., ASPLOS 2023) and their memory.

Notation: E rows, D dim, e bytes per element of the table's dtype, k DHE hashes.

* ``table``: an E x D table, one row gather per lookup: E D e bytes.
* ``dhe``: deep hash embedding (Kang et al., KDD 2021): k hash functions map an id to a
  k-wide dense code and an MLP decoder turns it into the D-wide embedding. Memory: the
  decoder's weights (in the run's matrix dtype) and the hash parameters; compute: the
  decoder per lookup. Defaults from the public Kaggle setting of the repository
  ``bearhw/SecEmb_DHE``: k = 1024, decoder 1024-512-256-D.
* ``hybrid``: MP-Rec's hybrid, the full table *and* a DHE decoding to D, their outputs
  concatenated (2D wide): the table's memory plus the decoder's, both costs.
* ``int8``: row-wise quantized rows in FBGEMM's fused 8-bit layout: the D uint8 values,
  then a per-row fp32 scale and fp32 bias (``FloatOrHalfToFused8BitRowwiseQuantizedSBFloat``
  in pytorch/FBGEMM ``src/QuantUtils.cc``: ``output_columns = input_columns + 2 *
  sizeof(float)``, scale and bias written after the row's values), E (D + 8) bytes. It is the
  layout of PyTorch's quantized ``embedding_bag_byte_rowwise_offsets``. (FBGEMM's
  table-batched inference kernel stores int8 rows differently: fp16 scale and bias, 4 bytes,
  in front, rows padded to 16 bytes; ``DEFAULT_SCALE_BIAS_SIZE_IN_BYTES = 4`` in
  ``split_table_batched_embeddings_ops_common.py``.)
* ``fp16``: rows cast to half precision (FBGEMM's ``SparseType.FP16``: D x 2 bytes, no scale
  or bias): E D 2 bytes.

Accuracy proxies: MP-Rec reports that hybrid gives higher-quality embeddings than a table
at more memory and compute, and that its representation-and-platform serving reaches 0.19%
(Kaggle) / 0.22% (Terabyte) better model quality than a table-only CPU-GPU system; the paper
text we could reach gives no per-representation figure, and none for int8/fp16/DHE on its
own, so :data:`ACCURACY_PROXY` states the source or "none" and carries no number. A choice
that should favour accuracy takes explicit weights (``quality``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from perfmodel._errors import InputError

__all__ = [
    "ACCURACY_PROXY",
    "INT8_SCALE_BIAS_BYTES",
    "REPRESENTATIONS",
    "DHEConfig",
    "output_dim",
    "representation_bytes",
    "row_bytes",
]

REPRESENTATIONS = ("table", "dhe", "hybrid", "int8", "fp16")
#: fp32 scale + fp32 bias per int8 row (FBGEMM src/QuantUtils.cc, fused 8-bit row-wise)
INT8_SCALE_BIAS_BYTES = 8
#: what is known of each representation's accuracy, with the source ("none": nothing published we could use)
ACCURACY_PROXY = {
    "table": "reference",
    "dhe": "none (MP-Rec characterizes DHE as memory-light and compute-heavy; no accuracy figure in the text reached)",
    "hybrid": "higher than table (MP-Rec: hybrid gives higher-quality embeddings; its served mix is +0.19% Kaggle, "
              "+0.22% Terabyte over table-only); no per-representation number",
    "int8": "none",
    "fp16": "none",
}


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


def _check(rep: str) -> None:
    if rep not in REPRESENTATIONS:
        raise InputError(f"unknown representation {rep!r}; valid choices: {', '.join(REPRESENTATIONS)}")


def row_bytes(rep: str, dim: int, esize: int) -> int:
    """Bytes of one stored row under ``rep`` (0 for ``dhe``, which stores no rows)."""
    _check(rep)
    if rep == "dhe":
        return 0
    if rep == "int8":
        return dim + INT8_SCALE_BIAS_BYTES
    if rep == "fp16":
        return 2 * dim
    return dim * esize


def representation_bytes(rep: str, rows: int, dim: int, esize: int, dhe: DHEConfig, dhe_esize: int = 4) -> int:
    """Memory of one table under representation ``rep`` (``esize``: the table's element
    bytes; ``dhe_esize``: the decoder weights', the run's matrix dtype)."""
    _check(rep)
    decoder = dhe.weight_bytes(dim, dhe_esize) if rep in ("dhe", "hybrid") else 0
    return rows * row_bytes(rep, dim, esize) + decoder


def output_dim(rep: str, dim: int) -> int:
    """Width of the pooled embedding the representation hands on (hybrid concatenates two)."""
    _check(rep)
    return 2 * dim if rep == "hybrid" else dim


def fp16_equivalent_dim(rep: str, dim: int, esize: int) -> int:
    """The fp16 row width with ``rep``'s row bytes (how an int8 row is given to a model of fp16/fp32 rows)."""
    return max(1, math.ceil(row_bytes(rep, dim, esize) / 2))
