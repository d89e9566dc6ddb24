"""A recording read in blocks, again on every pass, so a long file is never held whole.

`AudioStream(source)` gives the same 16 kHz mono float32 samples as `koemo.audio.io.load_audio`,
block by block:
- a file: soundfile's `sf.blocks`, channels averaged per sample, then `soxr.ResampleStream`
  (HQ), the stateful form of the resampler load_audio uses; its output over a whole file is
  bit for bit that of resampling the file at once, whatever the block size (checked by
  tests/test_block_features.py), so block edges leave no trace.
- an array: the caller already holds it; load_audio converts it once and blocks are slices.

A file's checks need every sample (NaN, silence, the number of samples after resampling): they
are made during the first full pass (`blocks`), and `info()` reports them afterwards with the
same errors and notes as load_audio.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from koemo.audio.io import (SILENCE_PEAK, AudioInfo, AudioSource, load_audio,
                            read_file_header, unreadable_error)
from koemo.config.schema import SAMPLE_RATE
from koemo.errors import KoemoInputError


class AudioStream:
    """16 kHz (`target_sample_rate`) mono float32 blocks of a file or an array."""

    def __init__(self, source: AudioSource, sample_rate: int | None = None,
                 target_sample_rate: int = SAMPLE_RATE):
        self.target_rate = int(target_sample_rate)
        self.wave: np.ndarray | None = None
        self.path: Path | None = None
        self._info: AudioInfo | None = None
        if isinstance(source, np.ndarray):
            self.wave, self._info = load_audio(source, sample_rate, target_sample_rate)
            self.label = "array"
            return
        if not isinstance(source, (str, Path)):
            raise KoemoInputError(
                f"audio input must be a file path or a numpy array, not {type(source).__name__}")
        self.path = Path(source)
        self.label = str(source)
        # frames: the header's count, for a duration before reading (info() counts them)
        self.rate, self.channels, self.frames, self.format = read_file_header(self.path, sample_rate)
        self._scanned: tuple[int, int, float] | None = None   # (samples in, samples out, peak)

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """The recording's samples at the target rate, about `block_samples` per block."""
        if self.wave is not None:
            for start in range(0, len(self.wave), block_samples):
                yield self.wave[start:start + block_samples]
            return
        yield from self._file_blocks(block_samples)

    def head(self, n_samples: int) -> np.ndarray:
        """The first `n_samples` samples at the target rate (fewer when the recording is shorter)."""
        if self.wave is not None:
            return self.wave[:n_samples]
        pieces, held = [], 0
        for block in self._file_blocks(n_samples):
            pieces.append(block[:n_samples - held])
            held += len(pieces[-1])
            if held >= n_samples:
                break
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def info(self) -> AudioInfo:
        """What load_audio reports for this recording; a file needs one full `blocks` pass first
        (and is checked for silence here, as load_audio checks it)."""
        if self._info is not None:
            return self._info
        if self._scanned is None:
            raise RuntimeError(f"{self.label}: info() needs one full pass over blocks() first")
        samples_in, samples_out, peak = self._scanned
        if peak < SILENCE_PEAK:
            raise KoemoInputError(
                f"{self.label}: audio is silent (peak amplitude {peak:.2e} is below one 16-bit "
                "step); nothing to predict from")
        notes = [f"{self.channels} channels averaged to mono"] if self.channels > 1 else []
        if self.rate != self.target_rate:
            notes.append(f"resampled {self.rate} Hz -> {self.target_rate} Hz")
        self._info = AudioInfo(source=self.label, original_sample_rate=self.rate,
                               original_channels=self.channels, original_samples=samples_in,
                               sample_rate=self.target_rate, samples=samples_out,
                               duration_s=float(samples_out / self.target_rate),
                               resampled=self.rate != self.target_rate, format=self.format,
                               notes=notes)
        return self._info

    def _file_blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """Read, average to mono and resample a block at a time; a pass that reaches the end
        records what `info` reports."""
        import soundfile as sf

        resampler = self._resampler()
        file_block = max(1, int(round(block_samples * self.rate / self.target_rate)))
        samples_in = samples_out = 0
        peak = 0.0
        try:
            for block in sf.blocks(str(self.path), blocksize=file_block, dtype="float32",
                                   always_2d=True):
                if not np.isfinite(block).all():
                    raise KoemoInputError(f"{self.label}: audio contains NaN or infinite samples")
                samples_in += len(block)
                peak = max(peak, float(np.abs(block).max())) if len(block) else peak
                # float64 mean, as load_audio averages the whole file
                mono = block.mean(axis=1, dtype=np.float64).astype(np.float32)
                out = mono if resampler is None else resampler.resample_chunk(mono)
                samples_out += len(out)
                yield out
        except (sf.LibsndfileError, RuntimeError) as err:
            raise unreadable_error(self.label, err) from err
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            samples_out += len(tail)
            yield tail
        if samples_in == 0:
            raise KoemoInputError(f"{self.label}: audio has zero length (no samples)")
        self._scanned = (samples_in, samples_out, peak)

    def _resampler(self) -> Any:
        if self.rate == self.target_rate:
            return None
        import soxr  # installed with librosa, as in koemo.audio.io.resample

        return soxr.ResampleStream(self.rate, self.target_rate, 1, dtype="float32", quality="HQ")
