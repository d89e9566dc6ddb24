"""Mel + delta features of a long recording, block by block: the numbers of
`koemo.audio.features.extract_features` over the whole recording, in memory that does not grow
with its length (a 10-minute whole-file STFT alone is ~150 MB of complex bins).

Two passes over the samples, because no frame is final before every frame was seen: the dB
scale is relative to the loudest mel bin of the whole recording (`ref = max`, floor `top_db`
below the loudest dB value), and the delta of a frame reads its neighbours' dB values.
1. `scan_reference`: mel power per block; only its maximum, the maximum of its log and the
   number of frames are kept.
2. `feature_blocks`: the same blocks' mel power again, in dB with pass 1's reference, plus the
   delta; yields float32 [2, k, n_mels] (mel, delta; time-major) blocks of consecutive frames.

Block edges. A centred frame t reads samples [t*hop - n_fft/2, t*hop + n_fft/2) of the wave zero
padded by n_fft/2 at both ends (center=True, constant padding): `padded_pieces` cuts that padded
signal into pieces overlapping by n_fft - hop samples and the backends frame them with
center=False, which gives the same frames (torch.stft and librosa pad the same way before
framing). The delta of frame t reads dB frames [t - h, t + h], h = delta_width // 2, and
librosa's "interp" edges give the first and last h frames of the recording the slope fitted to
its first / last `delta_width` frames: each block's delta is taken over its frames plus h frames
of context on each side (`context_span`), and only frames whose whole context was there leave.

Equality with the whole-recording path (tests/test_block_features.py): with the torch backend
the features were bit for bit the same for every piece size tried (7 to 1024 frames); with
librosa on BLOCK_FRAMES pieces too, while other piece sizes change the rounding of its mel
product (einsum over the frames, ~1e-7 relative). They agree within BLOCK_TOLERANCE_DB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol

import numpy as np

from koemo.audio.features import AMIN, delta_kernel, _mel_transform
from koemo.config.schema import FeatureBackend, Features
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import torch

# Frames per piece (~33 s at hop 512 / 16 kHz): ~10 MB of STFT bins at n_fft 2048.
BLOCK_FRAMES = 1024
# Max |block-wise - whole recording| in dB, mel and delta channels. torch: 0 (bit for bit) on
# the sizes measured. librosa on pieces other than BLOCK_FRAMES: its mel product rounds by
# ~1e-7 relative, which moves a dB value by at most one float32 step (7.6e-6 between 64 and
# 128 dB; measured max 7.6e-6 mel, 2.1e-6 delta): two steps.
BLOCK_TOLERANCE_DB = 2e-5


@dataclass(frozen=True)
class Reference:
    """What the dB conversion needs from the whole recording (pass 1)."""
    n_frames: int
    power_max: float      # the loudest mel bin: power_to_db's ref=np.max
    log_max: float        # max of 10*log10(max(power, AMIN)): top_db counts down from it


def block_samples(fc: Features, block_frames: int = BLOCK_FRAMES) -> int:
    """Samples per block to read from the audio stream for pieces of `block_frames` frames."""
    return int(block_frames) * int(fc.hop_length)


def padded_pieces(blocks: Iterable[np.ndarray], fc: Features, block_frames: int = BLOCK_FRAMES
                  ) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, samples) of consecutive pieces of the centre-padded wave, `block_frames`
    frames each; the last one takes the rest and is held back so it has at least
    `block_frames` frames (a very short piece rounds differently, see the module docstring)."""
    n_fft, hop = int(fc.n_fft), int(fc.hop_length)
    span = (block_frames - 1) * hop + n_fft          # samples of one piece
    held, first = np.zeros(n_fft // 2, np.float32), 0
    for block in blocks:
        held = np.concatenate([held, block])
        while _frames_in(len(held), n_fft, hop) >= 2 * block_frames:
            yield first, held[:span]
            held, first = held[block_frames * hop:], first + block_frames
    held = np.concatenate([held, np.zeros(n_fft // 2, np.float32)])
    rest = _frames_in(len(held), n_fft, hop)
    if rest:
        yield first, held[:(rest - 1) * hop + n_fft]


def _frames_in(n_samples: int, n_fft: int, hop: int) -> int:
    return 1 + (n_samples - n_fft) // hop if n_samples >= n_fft else 0


def context_span(first: int, stop: int, n_frames: int, width: int) -> tuple[int, int]:
    """dB frames [c0, c1) the delta of frames [first, stop) reads: h = width // 2 each side,
    widened to `width` frames near the recording's ends (librosa's interp edge fit)."""
    half = width // 2
    c0, c1 = max(0, first - half), min(n_frames, stop + half)
    if c1 - c0 < width:
        c0 = max(0, c1 - width)
        c1 = min(n_frames, c0 + width)
    return c0, c1


# ----------------------------------------------------------------------------- the backends

class _TorchOps:
    """The torch backend's arithmetic, op for op as koemo.audio.features.extract_batch."""

    def __init__(self, fc: Features):
        import torch

        self.torch = torch
        self.transform = _mel_transform(int(fc.sample_rate), int(fc.n_fft), int(fc.hop_length),
                                        float(fc.fmin), float(fc.fmax), int(fc.n_mels), "cpu",
                                        center=False)
        self.kernel = delta_kernel(int(fc.delta_width), torch.float32, "cpu")

    def mel(self, piece: np.ndarray) -> torch.Tensor:
        with self.torch.inference_mode():
            return self.transform(self.torch.from_numpy(np.ascontiguousarray(piece))[None])[0]

    def log(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * self.torch.log10(power.clamp_min(AMIN))

    def peaks(self, power: torch.Tensor) -> tuple[float, float]:
        return float(power.max()), float(self.log(power).max())

    def db(self, power: torch.Tensor, reference: Reference, top_db: float) -> torch.Tensor:
        ref = self.torch.tensor(reference.power_max, dtype=self.torch.float32)
        offset = 10.0 * self.torch.log10(ref.clamp_min(AMIN))
        top = self.torch.tensor(reference.log_max, dtype=self.torch.float32) - offset
        return self.torch.maximum(self.log(power) - offset, top - top_db)

    def join(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.torch.cat([a, b], dim=1)

    def delta(self, db: torch.Tensor, c0: int, first: int, stop: int, n_frames: int,
              width: int) -> torch.Tensor:
        """Centred slopes over db = frames [c0, c0 + len); edge frames clamp to frame h / L-1-h."""
        torch, half = self.torch, width // 2
        inner = torch.nn.functional.conv1d(db[:, None, :], self.kernel)[:, 0]
        frames = torch.arange(first, stop).clamp(half, n_frames - 1 - half)
        return inner[:, frames - (c0 + half)]

    def stack(self, db: torch.Tensor, delta: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(self.torch.stack([db, delta]).transpose(1, 2).float().numpy())


class _LibrosaOps:
    """The librosa backend, through the same librosa calls as features.librosa_features."""

    def __init__(self, fc: Features):
        self.fc = fc

    def mel(self, piece: np.ndarray) -> np.ndarray:
        import librosa

        fc = self.fc
        return librosa.feature.melspectrogram(
            y=piece, sr=fc.sample_rate, n_fft=fc.n_fft, hop_length=fc.hop_length, window="hann",
            center=False, power=2.0, n_mels=fc.n_mels, fmin=fc.fmin, fmax=fc.fmax)

    def peaks(self, power: np.ndarray) -> tuple[float, float]:
        # power_to_db's own first step, 10*log10(max(amin, S)), in float32
        return float(power.max()), float((10.0 * np.log10(np.maximum(AMIN, power))).max())

    def db(self, power: np.ndarray, reference: Reference, top_db: float) -> np.ndarray:
        import librosa

        ref = np.float32(reference.power_max)
        # librosa's stubs type `ref` as a Python float; the float32 keeps the whole-file rounding.
        db = librosa.power_to_db(power, ref=ref, amin=AMIN, top_db=None)  # type: ignore[call-overload]
        top = np.float32(reference.log_max) - 10.0 * np.log10(np.maximum(AMIN, ref))
        return np.maximum(db, top - top_db)

    def join(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b], axis=1)

    def delta(self, db: np.ndarray, c0: int, first: int, stop: int, n_frames: int,
              width: int) -> np.ndarray:
        import librosa

        return librosa.feature.delta(db, width=width, order=1)[:, first - c0:stop - c0]

    def stack(self, db: np.ndarray, delta: np.ndarray) -> np.ndarray:
        return np.stack([db.T, delta.T]).astype(np.float32)


class _Ops(Protocol):
    """What the two passes call; arrays are the backend's own (torch tensors or numpy)."""

    def mel(self, piece: np.ndarray) -> Any: ...
    def peaks(self, power: Any) -> tuple[float, float]: ...
    def db(self, power: Any, reference: Reference, top_db: float) -> Any: ...
    def join(self, a: Any, b: Any) -> Any: ...
    def delta(self, db: Any, c0: int, first: int, stop: int, n_frames: int, width: int) -> Any: ...
    def stack(self, db: Any, delta: Any) -> np.ndarray: ...


def _ops(backend: FeatureBackend, fc: Features) -> _Ops:
    """features.backend's operations (the schema allows torch and librosa only)."""
    return _LibrosaOps(fc) if backend == "librosa" else _TorchOps(fc)


# ----------------------------------------------------------------------------- the two passes

def scan_reference(blocks: Iterable[np.ndarray], fc: Features, backend: FeatureBackend = "torch",
                   block_frames: int = BLOCK_FRAMES) -> Reference:
    """Pass 1: the loudest mel bin (and its log) and the number of frames of the recording."""
    ops = _ops(backend, fc)
    power_max = log_max = -np.inf
    n_frames = 0
    for first, piece in padded_pieces(blocks, fc, block_frames):
        power = ops.mel(piece)
        peak, log_peak = ops.peaks(power)
        power_max, log_max = max(power_max, peak), max(log_max, log_peak)
        n_frames = first + power.shape[1]
    return Reference(n_frames, power_max, log_max)


def feature_blocks(blocks: Iterable[np.ndarray], fc: Features, reference: Reference,
                   backend: FeatureBackend = "torch", block_frames: int = BLOCK_FRAMES
                   ) -> Iterator[np.ndarray]:
    """Pass 2: float32 [2, k, n_mels] blocks of consecutive frames, all `reference.n_frames`
    of them in order, equal to the whole recording's features (module docstring). `blocks`
    must give the samples pass 1 read."""
    ops, width, n_frames = _ops(backend, fc), int(fc.delta_width), reference.n_frames
    if n_frames < width:
        raise KoemoInputError(f"{n_frames} frames: the delta of width {width} needs at least {width}")
    held, offset, done = None, 0, 0       # dB frames [offset, offset + held) and frames given out
    for _, piece in padded_pieces(blocks, fc, block_frames):
        db = ops.db(ops.mel(piece), reference, float(fc.top_db))
        held = db if held is None else ops.join(held, db)
        end = offset + held.shape[1]
        # Until the last frame is in, the last h frames still lack their right-hand context.
        ready = end if end >= n_frames else end - width // 2
        c0, c1 = context_span(done, ready, n_frames, width)
        if ready > done and c1 <= end:        # (tiny pieces: wait for `width` frames)
            context = held[:, c0 - offset:c1 - offset]
            yield ops.stack(context[:, done - c0:ready - c0],
                            ops.delta(context, c0, done, ready, n_frames, width))
            done = ready
        keep = max(offset, min(done - width // 2, n_frames - width))
        held, offset = held[:, keep - offset:], keep
    if done != n_frames:
        raise KoemoInputError(f"the recording gave {done} frames in the second pass, {n_frames} "
                              "in the first: did the file change while it was read?")
