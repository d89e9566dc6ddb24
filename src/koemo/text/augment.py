"""Text augmentation on KoBERT sentencepiece pieces (docs/paper.md, data), as the original did it.

Both operations take the pieces of `KoBERTTokenizer.tokenize` (no [CLS]/[SEP]) and a numpy
Generator seeded by the caller (koemo.dataset.augment.plan_augmentation decides the seed: faithfully the
same seed for every call, or one per row with the fix). The input list is never modified.

- random_swap: n = max(round(ratio * len), 2) distinct positions are drawn, and each is swapped
  with the next drawn one in turn (the original's chained swaps; the pieces at those positions
  rotate). Texts of 0 or 1 pieces come back unchanged (the original also left 1 piece alone).
- random_delete: n = max(round(ratio * len), 1) distinct positions are deleted, but at least one
  piece is always kept: a 1-piece text comes back unchanged. (The original deleted that single
  piece, leaving an empty text that encodes to just [CLS] [SEP].) 0 pieces -> [].
`round` is Python's (half to even), as in the original.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def swap_count(n_pieces: int, ratio: float) -> int:
    """Positions random_swap draws: max(round(ratio * n), 2), never more than n."""
    return min(max(round(n_pieces * ratio), 2), n_pieces)


def delete_count(n_pieces: int, ratio: float) -> int:
    """Pieces random_delete removes: max(round(ratio * n), 1), leaving at least one piece."""
    if n_pieces <= 1:
        return 0
    return min(max(round(n_pieces * ratio), 1), n_pieces - 1)


def random_swap(pieces: Sequence[str], ratio: float = 0.3,
                rng: np.random.Generator | int | None = None) -> list[str]:
    out = list(pieces)
    if len(out) <= 1:
        return out
    rng = np.random.default_rng(rng)
    positions = rng.choice(len(out), size=swap_count(len(out), ratio), replace=False)
    for a, b in zip(positions[:-1], positions[1:]):
        out[a], out[b] = out[b], out[a]
    return out


def random_delete(pieces: Sequence[str], ratio: float = 0.3,
                  rng: np.random.Generator | int | None = None) -> list[str]:
    out = list(pieces)
    n = delete_count(len(out), ratio)
    if n == 0:
        return out
    rng = np.random.default_rng(rng)
    drop = set(rng.choice(len(out), size=n, replace=False).tolist())
    return [piece for i, piece in enumerate(out) if i not in drop]
