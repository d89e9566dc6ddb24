"""Training-set augmentation of the minority classes (docs/paper.md, step 1).

The original augmented the train split only: every row of a minority class (surprise, angry,
sad) gets three extra copies,
  swap_text               random swap of text pieces (ratio 0.3), original audio
  mask_audio              original text, frequency-masked audio
  delete_text_mask_audio  random delete of text pieces (ratio 0.3), frequency-masked audio
so 9,161 train rows become 10,043 (+3 x 294).

Nothing is materialised here: `plan_augmentation` returns one row per training sample with its
`aug_kind` and an integer `aug_seed`. The training dataset draws every random number of a
sample from `np.random.default_rng(aug_seed)`: the text ops (`koemo.text.augment.random_swap`
/ `random_delete` on KoBERT pieces, written by the text engineer) and `frequency_mask` below.

Faithful (`fixes.seed_per_sample: false`, paper.yaml): the original reset the seed to 824 on
every call, so every augmented sample drew the same random numbers (same swap positions, same
mask band, same noise); here every row gets `aug_seed = augment.seed`. Fixed (true): a
distinct, deterministic seed per (seed, segment_id, kind).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from koemo.config.schema import Augment, Config
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import pandas as pd

ORIG, SWAP_TEXT, MASK_AUDIO, DELETE_TEXT_MASK_AUDIO = (
    "orig", "swap_text", "mask_audio", "delete_text_mask_audio")
AUG_KINDS = (SWAP_TEXT, MASK_AUDIO, DELETE_TEXT_MASK_AUDIO)
# Which kinds change which modality (the dataset applies the ops accordingly).
TEXT_KINDS = {SWAP_TEXT: "swap", DELETE_TEXT_MASK_AUDIO: "delete"}
AUDIO_MASK_KINDS = frozenset({MASK_AUDIO, DELETE_TEXT_MASK_AUDIO})


def draw_frequency_mask(n_bins: int, n_frames: int, rng: np.random.Generator, aug: Augment
                        ) -> tuple[int, int, np.ndarray]:
    """The random part of `frequency_mask`: (start, stop, noise [2, n_frames, stop - start],
    float64), drawn in this order: start bin f in [0, max_start) (max_start =
    freq_mask_max_start or n_bins), width in [w0, w1), a dB range (lo, hi) inside
    freq_mask_db_range, then uniform noise in [lo, hi). The device-resident training data
    (koemo.modeling.resident) applies the same draws to batches on the GPU."""
    max_start = aug.freq_mask_max_start or n_bins
    low_width, high_width = aug.freq_mask_width
    db_low, db_high = aug.freq_mask_db_range
    start = int(rng.integers(0, max_start))
    width = int(rng.integers(low_width, high_width))
    lo, hi = np.sort(rng.uniform(db_low, db_high, size=2))
    stop = min(start + width, n_bins)
    return start, stop, rng.uniform(lo, hi, size=(2, n_frames, stop - start))


def frequency_mask(feat: np.ndarray, n_frames: int, rng: np.random.Generator, aug: Augment,
                   spectrogram_only: bool = False) -> np.ndarray:
    """A masked copy of `feat` [2, T, F] (mel dB, delta): noise from `draw_frequency_mask` in
    bins [f, f + width) (cut at F) over the first `n_frames` frames, both channels.
    Faithful: the noise is also written into the delta channel (a dB value where a slope
    belongs). `spectrogram_only=True` (fixes.mask_spectrogram_only) writes channel 0 only; the
    same draws are made, so the mel channel is identical in both modes for the same rng."""
    if feat.ndim != 3 or feat.shape[0] != 2:
        raise KoemoInputError(f"frequency_mask: expected features [2, T, F], got shape {feat.shape}")
    n_frames = int(min(n_frames, feat.shape[1]))
    start, stop, noise = draw_frequency_mask(feat.shape[2], n_frames, rng, aug)
    masked = feat.copy()
    channels = 1 if spectrogram_only else 2
    masked[:channels, :n_frames, start:stop] = noise[:channels].astype(feat.dtype)
    return masked


def derived_seed(seed: int, segment_id: str, kind: str) -> int:
    """Deterministic 63-bit seed for one (seed, segment, kind); stable across processes
    (Python's hash() is salted per process, so it cannot be used)."""
    digest = hashlib.sha256(f"{seed}|{segment_id}|{kind}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def plan_augmentation(train_table: pd.DataFrame, cfg: Config, seed: int | None = None
                      ) -> pd.DataFrame:
    """Train rows plus three augmented copies of each minority-class row.

    Returns a DataFrame: every column of `train_table` + `aug_kind` (orig | swap_text |
    mask_audio | delete_text_mask_audio) + `aug_seed` (int64). Originals first in their order,
    then the copies grouped by kind (swap_text for all minority rows, then mask_audio, then
    delete_text_mask_audio); training shuffles, so the order only keeps the plan reproducible.
    `seed` (default augment.seed) only matters with the fix (fixes.seed_per_sample); the
    faithful mode uses augment.seed for every row. augment.enabled false -> originals only."""
    import pandas as pd
    aug = cfg.augment
    if "label" not in train_table.columns or "segment_id" not in train_table.columns:
        raise KoemoInputError("plan_augmentation: the train table needs columns label and segment_id")
    base_seed = int(aug.seed if seed is None else seed)
    per_sample = cfg.fixes.seed_per_sample
    originals = train_table.assign(aug_kind=ORIG)
    parts = [originals]
    if aug.enabled:
        minority = train_table[train_table["label"].isin(aug.minority_classes)]
        parts += [minority.assign(aug_kind=kind) for kind in AUG_KINDS]
    plan = pd.concat(parts, ignore_index=True)
    if per_sample:
        seeds = np.array([derived_seed(base_seed, sid, kind) for sid, kind
                          in zip(plan["segment_id"].astype(str), plan["aug_kind"])], dtype=np.int64)
    else:
        seeds = np.full(len(plan), int(aug.seed), dtype=np.int64)
    return plan.assign(aug_seed=seeds)
