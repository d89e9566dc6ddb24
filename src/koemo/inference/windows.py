"""How a recording of any length meets the model's fixed window: one window when it fits, the
first window only (`cut`, as training saw it), or overlapping windows whose predictions the
predictor averages (`windows`, half a window apart)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Literal, Sequence, get_args

import numpy as np

from koemo.errors import KoemoInputError

# What a recording longer than the model's window becomes (`long_audio`, module docstring).
LongAudio = Literal["windows", "cut"]
LONG_AUDIO_MODES = get_args(LongAudio)


@dataclass
class WindowInfo:
    """How the recording was fitted to the model's window."""
    mode: str                  # "single" (fits the window), "cut" or "windows"
    n_windows: int
    window_s: float            # the model's window: max_frames * hop / sample_rate
    starts_s: list[float]      # start of each window in the recording
    audio_s: float             # duration of the recording
    used_s: float              # seconds of the recording that reached the model



def window_starts(n_frames: int, max_frames: int, mode: LongAudio = "windows") -> list[int]:
    """Start frames of the windows covering `n_frames` frames (see the module docstring)."""
    if mode not in LONG_AUDIO_MODES:
        raise KoemoInputError(f"long_audio must be one of {LONG_AUDIO_MODES}, not {mode!r}")
    if n_frames <= max_frames or mode == "cut":
        return [0]
    count = math.ceil((n_frames - max_frames) / (max_frames // 2)) + 1
    return np.linspace(0, n_frames - max_frames, count).round().astype(int).tolist()


def window_info(frames: "WindowSource", window_s: float, hop_s: float, audio_s: float) -> WindowInfo:
    """How the windows of `frames` fit a recording of `audio_s` seconds (hop_s per frame)."""
    n_frames, max_frames, starts = frames.n_frames, frames.max_frames, frames.starts
    mode = "single" if n_frames <= max_frames else ("cut" if len(starts) == 1 else "windows")
    covered = min(n_frames, starts[-1] + max_frames) if mode != "cut" else max_frames
    return WindowInfo(mode=mode, n_windows=len(starts), window_s=window_s,
                      starts_s=[round(s * hop_s, 3) for s in starts], audio_s=audio_s,
                      used_s=min(audio_s, covered * hop_s))


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


def iter_windows(feature_blocks: Iterable[np.ndarray], n_frames: int, max_frames: int,
                 starts: Sequence[int], chunk: int,
                 finish: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`frame_windows` in chunks of at most `chunk` windows, made only when asked for, from
    the recording's features given as consecutive [2, k, F] blocks of frames: a long recording
    never holds all its (overlapping, so twice the recording) windows, nor all its frames; only
    the frames of the chunk being cut. `finish(feats, lengths)` is applied to each chunk (the
    store-dtype rounding, padding)."""
    if chunk < 1:
        raise KoemoInputError(f"window chunk must be at least 1, not {chunk}")
    frames = _FrameBuffer(iter(feature_blocks))
    try:
        for first in range(0, len(starts), chunk):
            group = starts[first:first + chunk]
            held = frames.fill(min(n_frames, group[-1] + max_frames))
            out, lengths = frame_windows(held, n_frames - frames.offset, max_frames,
                                         [start - frames.offset for start in group])
            frames.drop_before(starts[first + chunk] if first + chunk < len(starts) else n_frames)
            yield (finish(out, lengths) if finish is not None else out), lengths
    finally:
        frames.close()       # "cut" mode reads no further than its one window


class _FrameBuffer:
    """Frames [offset, offset + held) of a recording, read on from its blocks as needed."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks, self.offset = blocks, 0
        self.held: np.ndarray | None = None

    def fill(self, stop: int) -> np.ndarray:
        """Read blocks until frame `stop` (exclusive) is held; returns the frames held."""
        pieces: list[np.ndarray] = [] if self.held is None else [self.held]
        have = self.offset + sum(piece.shape[1] for piece in pieces)
        while have < stop:
            block = next(self.blocks, None)
            if block is None:
                raise KoemoInputError(f"the features ended at frame {have}, before frame {stop}")
            pieces.append(block)
            have += block.shape[1]
        self.held = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
        return self.held

    def drop_before(self, frame: int) -> None:
        if self.held is None:           # nothing read yet
            return
        frame = min(frame, self.offset + self.held.shape[1])     # never skip unread frames
        self.held = self.held[:, frame - self.offset:]
        self.offset = frame

    def close(self) -> None:
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()


def floor_padding(feats: np.ndarray, lengths: np.ndarray, top_db: float) -> np.ndarray:
    """fixes.db_floor_padding, as FeatureStore applies it when training reads: padding frames
    of the mel channel at -top_db (silence) instead of 0 dB; the delta stays 0."""
    pad = np.arange(feats.shape[2])[None, :] >= lengths[:, None]
    feats[:, 0][pad] = -top_db
    return feats


@dataclass
class WindowSource:
    """Where the windows of one recording start, and how to read its features: a new pass of
    consecutive [2, k, F] frame blocks per call of `feature_blocks` (koemo.audio.block_features
    reads them from the file, block by block). The windows are cut on demand (`chunks`), a few
    at a time."""
    feature_blocks: Callable[[], Iterable[np.ndarray]]
    n_frames: int
    max_frames: int
    starts: list[int]
    finish: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @classmethod
    def of_array(cls, feats: np.ndarray, n_frames: int, max_frames: int, starts: list[int],
                 finish: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> "WindowSource":
        """Features [2, N, F] already in memory (speech-encoder states, whole-recording mel)."""
        return cls(lambda: [feats], n_frames, max_frames, starts, finish)

    def __len__(self) -> int:
        return len(self.starts)

    def chunks(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter_windows(self.feature_blocks(), self.n_frames, self.max_frames, self.starts,
                            size, self.finish)
