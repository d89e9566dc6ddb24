"""koemo.audio.io: any readable file or array -> 16 kHz mono float32, with clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from koemo.audio.io import load_audio, resample
from koemo.config.schema import SAMPLE_RATE
from koemo.errors import KoemoInputError

SR = SAMPLE_RATE


def tones(sample_rate: int, seconds: float = 1.0) -> np.ndarray:
    """Band-limited test signal (all partials far below 8 kHz, so resampling is near-lossless)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t) \
        + 0.1 * np.sin(2 * np.pi * 3100 * t)
    return wave.astype(np.float32)


def test_mono_16k_wav_is_returned_unchanged(tmp_path):
    wave = tones(SR)
    path = tmp_path / "a.wav"
    sf.write(path, wave, SR, subtype="PCM_16")
    out, info = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    np.testing.assert_allclose(out, wave, atol=1.0 / 32768)
    assert (info.original_sample_rate, info.original_channels, info.resampled) == (SR, 1, False)
    assert info.format == "WAV/PCM_16" and info.duration_s == pytest.approx(1.0)
    assert info.notes == []


def test_stereo_44k1_becomes_the_16k_mono_signal(tmp_path):
    mono16 = tones(SR, 2.0)
    mono44 = soxr.resample(mono16, SR, 44100, quality="HQ")
    # Channels differ, their average is the signal: averaging must happen, not picking one.
    side = 0.05 * np.sin(2 * np.pi * 500 * np.arange(mono44.size) / 44100)
    stereo = np.stack([mono44 + side, mono44 - side], axis=1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    out, info = load_audio(path)
    assert info.original_sample_rate == 44100 and info.original_channels == 2 and info.resampled
    assert abs(out.size - mono16.size) <= 1
    n = min(out.size, mono16.size)
    inner = slice(400, n - 400)   # resampler edge transients aside
    assert np.max(np.abs(out[inner] - mono16[inner])) < 2e-3
    assert any("averaged" in note for note in info.notes)
    assert any("44100 Hz -> 16000 Hz" in note for note in info.notes)


@pytest.mark.parametrize("ext,fmt,subtype", [("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")])
def test_compressed_formats_read(tmp_path, ext, fmt, subtype):
    wave = tones(22050)
    path = tmp_path / f"a.{ext}"
    sf.write(path, wave, 22050, format=fmt, subtype=subtype)
    out, info = load_audio(path)
    assert info.original_sample_rate == 22050 and info.format.startswith(fmt)
    assert out.size == pytest.approx(SR, abs=2)
    # Same signal after conversion (vorbis is lossy: a loose check on the energy).
    expected = resample(tones(22050), 22050, SR)
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(expected ** 2)), rel=0.05)


def test_arrays_int16_channels_first_and_assumed_rate():
    wave = tones(8000)
    as_int = np.round(wave * 32767).astype(np.int16)
    out_int, _ = load_audio(as_int, sample_rate=8000)
    out_float, _ = load_audio(wave, sample_rate=8000)
    np.testing.assert_allclose(out_int, out_float, atol=1e-4)
    channels_first = np.stack([wave, wave])            # torchaudio layout (2, samples)
    out_cf, info_cf = load_audio(channels_first, sample_rate=8000)
    np.testing.assert_allclose(out_cf, out_float, atol=1e-6)
    assert info_cf.original_channels == 2
    _, info = load_audio(tones(SR))
    assert info.original_sample_rate == SR
    assert any("assumed 16000 Hz" in note for note in info.notes)


def write_bytes(path, payload: bytes):
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.wav", "audio file not found"),
    (lambda d: d, "is a directory"),
    (lambda d: write_bytes(d / "notes.wav", "이건 오디오가 아니다\n".encode()), "not a readable audio file"),
])
def test_bad_files(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(KoemoInputError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_zero_length_and_silent_files(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SR, subtype="PCM_16")
    with pytest.raises(KoemoInputError, match="zero length") as err:
        load_audio(empty)
    assert "empty.wav" in str(err.value)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR, subtype="PCM_16")
    with pytest.raises(KoemoInputError, match="silent.wav: audio is silent"):
        load_audio(silent)


def test_file_sample_rate_must_match_header(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tones(SR), SR)
    with pytest.raises(KoemoInputError, match="header says 16000 Hz"):
        load_audio(path, sample_rate=44100)


@pytest.mark.parametrize("array,kwargs,message", [
    (np.zeros(0, np.float32), {}, "zero length"),
    (np.array([0.1, np.nan, 0.2], np.float32), {}, "NaN or infinite"),
    (np.ones((5, 5), np.float32), {}, "cannot tell samples from channels"),
    (np.ones((2, 3, 100), np.float32), {}, "expected 1-D mono or 2-D"),
    (np.ones(100, np.float32), {"sample_rate": 0}, "sample_rate must be positive"),
    (np.array(["a", "b"]), {}, "integer or float"),
])
def test_bad_arrays(array, kwargs, message):
    with pytest.raises(KoemoInputError, match=message):
        load_audio(array, **kwargs)


def test_unsupported_input_type():
    with pytest.raises(KoemoInputError, match="file path or a numpy array"):
        load_audio([0.1, 0.2])
