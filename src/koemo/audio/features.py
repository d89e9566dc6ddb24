"""Audio features as the paper computes them: mel + delta per utterance, librosa or torch.

Per utterance (docs/paper.md, audio features; every size from `cfg.features`): 16 kHz mono wave ->
mel power spectrogram (hann window, center=True with zero padding, power 2, slaney mel scale and
slaney norm: librosa's defaults) -> dB with `ref = max of this utterance` and `top_db` (values
in [-top_db, 0]) -> first-order delta (width `delta_width`, librosa's savgol "interp" edges) ->
stacked as float32 `[2, T, n_mels]` (mel, delta; time-major) and cut or zero-padded to
`T = max_frames`. `n_frames` = valid frames before padding, capped at T. The dB reference and
the delta use every frame of the utterance, also those beyond T, exactly as the original (which
computed the whole spectrogram first and cut afterwards).

Two backends give the same numbers:
- `librosa`: the faithful reference, one file at a time (as the original ran it).
- `torch`: torchaudio's MelSpectrogram on a zero-padded batch, on CPU or GPU. Zero padding a
  wave at its end leaves every valid frame unchanged (center=True pads with zeros anyway), the
  dB reference is the max over that utterance's own valid frames, and the delta's edge frames
  reproduce librosa's "interp" mode, so padding never changes a result.
  Parity with librosa: max |torch - librosa| <= PARITY_TOLERANCE_DB (dB, mel and delta
  channels, over valid frames; float32 FFT rounding), checked by tests/test_features.py.

The librosa pad mode is "constant" (librosa >= 0.9 default; older librosa reflected the edges,
which changes only the first and last two frames).

The on-disk store every model reads them from is `koemo.audio.feature_store`.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Sequence

import numpy as np

from koemo.config.schema import FeatureBackend, Features
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    import torch

# Max abs difference (dB) between the torch and librosa backends over valid frames, both
# channels; measured on sines, chirps and noise (~1e-3 dB typical), with margin.
PARITY_TOLERANCE_DB = 0.02
# librosa.power_to_db's floor on power before the log.
AMIN = 1e-10


def frames_for(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT (center=True): one per hop, plus the frame at sample 0."""
    return 1 + int(n_samples) // int(hop_length)


def min_samples(fc: Features) -> int:
    """Shortest wave with at least `delta_width` frames (librosa's delta needs that many)."""
    return (int(fc.delta_width) - 1) * int(fc.hop_length)


def check_wave(wave: np.ndarray, fc: Features, label: str = "wave") -> np.ndarray:
    """A 1-D finite float32 wave long enough for the delta; else KoemoInputError naming `label`."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise KoemoInputError(f"{label}: expected a 1-D mono wave, got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise KoemoInputError(f"{label}: expected float samples in [-1, 1], got {wave.dtype}")
    need = min_samples(fc)
    if wave.shape[0] < need:
        raise KoemoInputError(
            f"{label}: too short ({wave.shape[0]} samples = {wave.shape[0] / fc.sample_rate:.3f} s);"
            f" the delta of width {fc.delta_width} needs >= {need} samples")
    if not np.isfinite(wave).all():
        raise KoemoInputError(f"{label}: wave contains NaN or infinite samples")
    return np.ascontiguousarray(wave, dtype=np.float32)


def fit_frames(feat: np.ndarray, max_frames: int) -> tuple[np.ndarray, int]:
    """[2, L, F] -> ([2, max_frames, F] cut or zero padded, valid frames capped at max_frames)."""
    n = min(feat.shape[1], max_frames)
    out = np.zeros((feat.shape[0], max_frames, feat.shape[2]), dtype=np.float32)
    out[:, :n] = feat[:, :n]
    return out, n


# ----------------------------------------------------------------------------------- librosa
def librosa_features(wave: np.ndarray, fc: Features) -> tuple[np.ndarray, int]:
    import librosa
    mel = librosa.feature.melspectrogram(
        y=wave, sr=fc.sample_rate, n_fft=fc.n_fft, hop_length=fc.hop_length,
        window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=fc.n_mels, fmin=fc.fmin, fmax=fc.fmax)
    db = librosa.power_to_db(mel, ref=np.max, amin=AMIN, top_db=fc.top_db)
    delta = librosa.feature.delta(db, width=fc.delta_width, order=1)
    return fit_frames(np.stack([db.T, delta.T]).astype(np.float32), fc.max_frames)


# ------------------------------------------------------------------------------------- torch
@functools.lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, hop_length: int, fmin: float, fmax: float,
                   n_mels: int, device: str, center: bool = True) -> torch.nn.Module:
    """torchaudio MelSpectrogram set to librosa's choices (its own defaults differ: htk scale,
    no norm, reflect padding). center=False: frames of an already padded piece
    (koemo.audio.block_features)."""
    import torch
    import torchaudio
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, f_min=fmin, f_max=fmax,
        n_mels=n_mels, window_fn=torch.hann_window, power=2.0, center=center,
        pad_mode="constant", norm="slaney", mel_scale="slaney").to(device)


def _masked_power_to_db(mel: torch.Tensor, valid: torch.Tensor, top_db: float) -> torch.Tensor:
    """power_to_db(ref=max, top_db) per utterance, the max taken over its valid frames only.
    mel: [B, F, L] power; valid: [B, L] bool."""
    import torch
    valid3 = valid[:, None, :]
    ref = torch.where(valid3, mel, torch.zeros_like(mel)).amax(dim=(1, 2), keepdim=True)
    db = 10.0 * torch.log10(mel.clamp_min(AMIN)) - 10.0 * torch.log10(ref.clamp_min(AMIN))
    top = torch.where(valid3, db, torch.full_like(db, -torch.inf)).amax(dim=(1, 2), keepdim=True)
    return torch.maximum(db, top - top_db)


def delta_kernel(width: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """conv1d weights [1, 1, width] of the savgol first derivative: n / sum(n^2), n in [-h, h]."""
    import torch
    half = width // 2
    taps = torch.arange(-half, half + 1, dtype=dtype, device=device)
    return (taps / taps.pow(2).sum()).view(1, 1, -1)


def _delta_interp(db: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """librosa.feature.delta(order=1, mode="interp") per utterance over its own frames.

    Inside, the savgol first derivative is sum(n * x[t+n]) / sum(n^2), n in [-h, h]. In "interp"
    mode the first/last h frames take the slope of a line fitted to the first/last `width`
    frames, which is exactly the centred value at frame h (or L-1-h): so compute the valid
    convolution once and clamp each frame's index into [h, L-1-h]. db: [B, F, L]."""
    import torch
    half = width // 2
    kernel = delta_kernel(width, db.dtype, db.device)
    batch, n_mels, n_time = db.shape
    inner = torch.nn.functional.conv1d(db.reshape(batch * n_mels, 1, n_time), kernel)
    inner = inner.view(batch, n_mels, n_time - 2 * half)
    t = torch.arange(n_time, device=db.device)[None, :]
    last = (lengths.to(db.device)[:, None] - 1 - half)
    source = torch.minimum(torch.clamp(t, min=half), last) - half          # [B, L]
    source = source.clamp(0, n_time - 2 * half - 1)                        # padding frames
    return torch.gather(inner, 2, source[:, None, :].expand(batch, n_mels, n_time))


def _pad_batch(waves: Sequence[np.ndarray]) -> np.ndarray:
    longest = max(w.shape[0] for w in waves)
    padded = np.zeros((len(waves), longest), dtype=np.float32)
    for row, wave in enumerate(waves):
        padded[row, :wave.shape[0]] = wave
    return padded


def extract_batch(waves: Sequence[np.ndarray], fc: Features, device: torch.device | str = "cpu"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Torch backend on a batch: -> (float32 [B, 2, T, F], int32 n_frames [B]).

    Waves may differ in length; each result equals `extract_features(wave, backend="torch")`
    of that wave alone (frames beyond each utterance's length are zero)."""
    import torch
    if len(waves) == 0:
        raise KoemoInputError("extract_batch: no waves given")
    waves = [check_wave(w, fc, label=f"wave {i}") for i, w in enumerate(waves)]
    device = str(torch.device(device))
    hop, max_frames = int(fc.hop_length), int(fc.max_frames)
    lengths = torch.tensor([frames_for(w.shape[0], hop) for w in waves])
    transform = _mel_transform(int(fc.sample_rate), int(fc.n_fft), hop, float(fc.fmin),
                               float(fc.fmax), int(fc.n_mels), device)
    with torch.inference_mode():
        audio = torch.from_numpy(_pad_batch(waves)).to(device)
        mel = transform(audio)                                             # [B, F, L]
        valid = torch.arange(mel.shape[-1], device=device)[None, :] < lengths.to(device)[:, None]
        db = _masked_power_to_db(mel, valid, float(fc.top_db))
        delta = _delta_interp(db, lengths, int(fc.delta_width))
        feats = torch.stack([db, delta], dim=1).transpose(2, 3)[:, :, :max_frames]  # [B,2,L,F]
        feats = feats * valid[:, None, :max_frames, None]
        out = torch.zeros((len(waves), 2, max_frames, feats.shape[-1]), dtype=torch.float32)
        out[:, :, :feats.shape[2]] = feats.float().cpu()
    return out.numpy(), lengths.clamp(max=max_frames).numpy().astype(np.int32)


def extract_features(wave: np.ndarray, fc: Features, backend: FeatureBackend = "torch"
                     ) -> tuple[np.ndarray, int]:
    """One 16 kHz mono wave -> (float32 [2, T, F], n_frames). See the module docstring."""
    if backend == "librosa":
        return librosa_features(check_wave(wave, fc), fc)
    feats, n_frames = extract_batch([wave], fc)
    return feats[0], int(n_frames[0])
