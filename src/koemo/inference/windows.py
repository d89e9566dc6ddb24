"""How a recording of any length meets the model's fixed window: one window when it fits, the
first window only (`cut`, as training saw it), or overlapping windows whose predictions the
predictor averages (`windows`, half a window apart)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from koemo.errors import KoemoInputError

LONG_AUDIO_MODES = ("windows", "cut")


@dataclass
class WindowInfo:
    """How the recording was fitted to the model's window."""
    mode: str                  # "single" (fits the window), "cut" or "windows"
    n_windows: int
    window_s: float            # the model's window: max_frames * hop / sample_rate
    starts_s: list[float]      # start of each window in the recording
    audio_s: float             # duration of the recording
    used_s: float              # seconds of the recording that reached the model



def window_starts(n_frames: int, max_frames: int, mode: str = "windows") -> list[int]:
    """Start frames of the windows covering `n_frames` frames (see the module docstring)."""
    if mode not in LONG_AUDIO_MODES:
        raise KoemoInputError(f"long_audio must be one of {LONG_AUDIO_MODES}, not {mode!r}")
    if n_frames <= max_frames or mode == "cut":
        return [0]
    count = math.ceil((n_frames - max_frames) / (max_frames // 2)) + 1
    return np.linspace(0, n_frames - max_frames, count).round().astype(int).tolist()


def frame_windows(feats: np.ndarray, n_frames: int, max_frames: int, starts: Sequence[int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """[2, N, F] features of a whole recording -> ([W, 2, max_frames, F] zero padded, lengths[W])."""
    out = np.zeros((len(starts), feats.shape[0], max_frames, feats.shape[2]), dtype=np.float32)
    lengths = np.zeros(len(starts), dtype=np.int64)
    for row, start in enumerate(starts):
        valid = min(max_frames, n_frames - start)
        out[row, :, :valid] = feats[:, start:start + valid]
        lengths[row] = valid
    return out, lengths


def iter_windows(feats: np.ndarray, n_frames: int, max_frames: int, starts: Sequence[int],
                 chunk: int, finish: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`frame_windows` in chunks of at most `chunk` windows, made only when asked for: a long
    recording never holds all its (overlapping, so twice the recording) windows at once.
    `finish(feats, lengths)` is applied to each chunk (the store-dtype rounding, padding)."""
    if chunk < 1:
        raise KoemoInputError(f"window chunk must be at least 1, not {chunk}")
    for first in range(0, len(starts), chunk):
        out, lengths = frame_windows(feats, n_frames, max_frames, starts[first:first + chunk])
        yield (finish(out, lengths) if finish is not None else out), lengths


def floor_padding(feats: np.ndarray, lengths: np.ndarray, top_db: float) -> np.ndarray:
    """fixes.db_floor_padding, as FeatureStore applies it when training reads: padding frames
    of the mel channel at -top_db (silence) instead of 0 dB; the delta stays 0."""
    pad = np.arange(feats.shape[2])[None, :] >= lengths[:, None]
    feats[:, 0][pad] = -top_db
    return feats


@dataclass
class WindowSource:
    """The features of one whole recording and where its windows start; the windows
    themselves are cut on demand (`chunks`), a few at a time."""
    feats: np.ndarray                # [2, N, F]: the whole recording
    n_frames: int
    max_frames: int
    starts: list[int]
    finish: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter_windows(self.feats, self.n_frames, self.max_frames, self.starts, size, self.finish)
