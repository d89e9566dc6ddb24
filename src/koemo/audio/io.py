"""Read a user's recording (or take an array) and bring it to what the models were trained on:
16 kHz mono float32.

- Files: anything libsndfile reads (wav, flac, ogg/vorbis, aiff, ...) via `soundfile`; the
  header gives the sample rate. MP3 works where the bundled libsndfile supports it.
- Arrays: 1-D mono, or 2-D with a channel axis of at most `MAX_CHANNELS` entries (either
  (samples, channels) as soundfile returns it or (channels, samples) as torchaudio does).
  Integer arrays are scaled to [-1, 1) by their dtype's range. Without `sample_rate` an array is
  taken to be at 16 kHz already, and `AudioInfo.notes` says so.
- Channels are averaged (stereo -> mono), then resampled with soxr (a librosa dependency,
  the resampler librosa itself uses by default) at "HQ" quality.

Bad input raises `KoemoInputError` naming the file (or "array") and the problem: missing file,
unreadable or non-audio file, zero-length audio, silent audio (peak below one 16-bit step),
NaN/inf samples, ambiguous array shapes, a sample rate that contradicts the file header.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from koemo.config.schema import SAMPLE_RATE
from koemo.errors import KoemoInputError

MAX_CHANNELS = 8
# One step of 16-bit PCM: anything quieter carries no signal the features could see
# (power_to_db(ref=max) of an all-zero input is a constant, not a spectrogram).
SILENCE_PEAK = 1.0 / 32768.0

AudioSource = Union[str, Path, np.ndarray]


@dataclass
class AudioInfo:
    """Where the audio came from and what was done to it."""
    source: str                    # file path, or "array"
    original_sample_rate: int
    original_channels: int
    original_samples: int          # per channel, before resampling
    sample_rate: int               # after conversion (always SAMPLE_RATE)
    samples: int                   # after conversion
    duration_s: float
    resampled: bool
    format: str | None = None      # soundfile format/subtype for files, e.g. "WAV/PCM_16"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def load_audio(source: AudioSource, sample_rate: int | None = None,
               target_sample_rate: int = SAMPLE_RATE, allow_silence: bool = False
               ) -> tuple[np.ndarray, AudioInfo]:
    """Return (float32 mono wave at `target_sample_rate`, AudioInfo) for a path or an array.

    `sample_rate` is the rate of an array input; for a file it is optional and, when given,
    must agree with the file header. `allow_silence=True` accepts digital silence (the
    feature store computes features for the corpus rows `prepare` kept with silent audio).
    """
    if isinstance(source, np.ndarray):
        label = "array"
        channels_last, in_rate, fmt, notes = _array_to_channels_last(source, sample_rate)
    elif isinstance(source, (str, Path)):
        label = str(source)
        channels_last, in_rate, fmt = _read_file(Path(source), sample_rate)
        notes = []
    else:
        raise KoemoInputError(
            f"audio input must be a file path or a numpy array, not {type(source).__name__}")
    n_samples, n_channels = channels_last.shape
    _check_content(channels_last, label, allow_silence)
    mono = channels_last.mean(axis=1, dtype=np.float64).astype(np.float32)
    wave = resample(mono, in_rate, target_sample_rate)
    if n_channels > 1:
        notes.append(f"{n_channels} channels averaged to mono")
    if in_rate != target_sample_rate:
        notes.append(f"resampled {in_rate} Hz -> {target_sample_rate} Hz")
    info = AudioInfo(source=label, original_sample_rate=int(in_rate),
                     original_channels=int(n_channels), original_samples=int(n_samples),
                     sample_rate=target_sample_rate, samples=int(wave.shape[0]),
                     duration_s=float(wave.shape[0] / target_sample_rate),
                     resampled=in_rate != target_sample_rate, format=fmt, notes=notes)
    return wave, info


def resample(wave: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono float32 wave (soxr, HQ); identity at equal rates."""
    if in_rate == out_rate:
        return np.ascontiguousarray(wave, dtype=np.float32)
    import soxr  # installed with librosa; imported lazily so `import koemo.audio.io` stays light
    return soxr.resample(wave.astype(np.float32, copy=False), in_rate, out_rate,
                         quality="HQ").astype(np.float32, copy=False)


def read_file_header(path: Path, sample_rate: int | None) -> tuple[int, int, int, str]:
    """(sample rate, channels, frames, "format/subtype") of an audio file, after the checks that need
    only its header (it exists, libsndfile reads it, `sample_rate` agrees, it has samples)."""
    import soundfile as sf
    if not path.exists():
        raise KoemoInputError(f"{path}: audio file not found")
    if path.is_dir():
        raise KoemoInputError(f"{path}: is a directory, not an audio file")
    try:
        file_info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise unreadable_error(path, err) from err
    if sample_rate is not None and int(sample_rate) != int(file_info.samplerate):
        raise KoemoInputError(
            f"{path}: sample_rate={sample_rate} was given but the file header says "
            f"{file_info.samplerate} Hz; leave sample_rate unset for files")
    if file_info.frames == 0:
        raise KoemoInputError(f"{path}: audio has zero length (no samples)")
    return (int(file_info.samplerate), int(file_info.channels), int(file_info.frames),
            f"{file_info.format}/{file_info.subtype}")


def unreadable_error(path: object, err: Exception) -> KoemoInputError:
    """The error for a file libsndfile cannot read."""
    return KoemoInputError(f"{path}: not a readable audio file (soundfile/libsndfile: {err}); "
                           "use wav, flac or ogg")


def _read_file(path: Path, sample_rate: int | None) -> tuple[np.ndarray, int, str]:
    import soundfile as sf
    file_rate, _, _, fmt = read_file_header(path, sample_rate)
    try:
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise unreadable_error(path, err) from err
    return data, file_rate, fmt


def _array_to_channels_last(array: np.ndarray, sample_rate: int | None
                            ) -> tuple[np.ndarray, int, None, list[str]]:
    notes = []
    if sample_rate is None:
        sample_rate = SAMPLE_RATE
        notes.append(f"sample_rate not given for an array: assumed {SAMPLE_RATE} Hz")
    if int(sample_rate) <= 0:
        raise KoemoInputError(f"array: sample_rate must be positive, got {sample_rate}")
    if array.size == 0:
        raise KoemoInputError(f"array: audio has zero length (shape {array.shape})")
    if array.ndim == 1:
        data = array[:, None]
    elif array.ndim == 2:
        data = _channels_last(array)
    else:
        raise KoemoInputError(
            f"array: expected 1-D mono or 2-D multichannel audio, got shape {array.shape}")
    return _as_float(data), int(sample_rate), None, notes


def _channels_last(array: np.ndarray) -> np.ndarray:
    """(samples, channels) or (channels, samples) -> (samples, channels)."""
    rows, cols = array.shape
    if cols <= MAX_CHANNELS < rows:
        return array
    if rows <= MAX_CHANNELS < cols:
        return array.T
    raise KoemoInputError(
        f"array: cannot tell samples from channels in shape {array.shape}; pass 1-D mono or "
        f"(samples, channels) with at most {MAX_CHANNELS} channels")


def _as_float(data: np.ndarray) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer):
        scale = float(np.iinfo(data.dtype).max) + 1.0
        return (data.astype(np.float64) / scale).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise KoemoInputError(f"array: audio samples must be integer or float, not {data.dtype}")


def _check_content(data: np.ndarray, label: str, allow_silence: bool = False) -> None:
    if data.shape[0] == 0:
        raise KoemoInputError(f"{label}: audio has zero length (no samples)")
    if not np.isfinite(data).all():
        raise KoemoInputError(f"{label}: audio contains NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak < SILENCE_PEAK and not allow_silence:
        raise KoemoInputError(
            f"{label}: audio is silent (peak amplitude {peak:.2e} is below one 16-bit step); "
            "nothing to predict from")
