"""Block-wise reading and features (koemo.audio.stream, koemo.audio.block_features, the
predictor's streamed windows) give the whole-recording numbers, for both feature backends."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from koemo.audio import block_features
from koemo.audio.block_features import (BLOCK_TOLERANCE_DB, block_samples, context_span,
                                        feature_blocks, scan_reference)
from koemo.audio.features import extract_features, frames_for
from koemo.audio.io import load_audio
from koemo.audio.stream import AudioStream
from koemo.config.load import load_config, with_changes
from koemo.errors import KoemoInputError
from koemo.inference.windows import WindowSource, window_starts

RATE = 16000


@pytest.fixture(scope="module")
def features_cfg():
    return load_config("paper").features       # n_fft 2048, hop 512, delta width 9


def recording(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A chirp with a moving level, noise, and a silent stretch (frames at the top_db floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (200 + 60 * np.sin(t)) * t) * (1.2 + np.sin(0.7 * t))
    wave = (wave + 0.03 * rng.standard_normal(t.size)).astype(np.float32)
    wave[int(0.4 * t.size):int(0.5 * t.size)] = 0.0
    return wave


def blocks_of(wave: np.ndarray, size: int):
    return lambda: (wave[i:i + size] for i in range(0, len(wave), size))


def whole_features(wave: np.ndarray, fc, backend: str) -> np.ndarray:
    total = frames_for(len(wave), fc.hop_length)
    feats, n_frames = extract_features(wave, fc.model_copy(update={"max_frames": total}), backend)
    assert n_frames == total
    return feats


def streamed_features(blocks, fc, backend: str, block_frames: int) -> np.ndarray:
    reference = scan_reference(blocks(), fc, backend, block_frames)
    pieces = list(feature_blocks(blocks(), fc, reference, backend, block_frames))
    assert len(pieces) > 1 or reference.n_frames < 2 * block_frames     # (the last piece is held back)
    return np.concatenate(pieces, axis=1)


# ----------------------------------------------------------------------------- features

@pytest.mark.parametrize("backend", ["torch", "librosa"])
@pytest.mark.parametrize("block_frames, read_samples", [
    (1024, None),        # the default piece: one 33 s piece plus the rest
    (37, 5000),          # pieces and reads that share no boundary with frames or windows
    (7, 3001),           # pieces shorter than the delta's width
])
def test_block_features_equal_the_whole_recording(features_cfg, backend, block_frames, read_samples):
    fc = features_cfg
    wave = recording(80.0 if block_frames == 1024 else 12.3)
    whole = whole_features(wave, fc, backend)
    blocks = blocks_of(wave, read_samples or block_samples(fc, block_frames))
    streamed = streamed_features(blocks, fc, backend, block_frames)
    assert streamed.shape == whole.shape and streamed.dtype == np.float32
    assert np.abs(streamed - whole).max() <= BLOCK_TOLERANCE_DB
    floor = -float(fc.top_db)
    assert np.array_equal(streamed[0] == floor, whole[0] == floor)   # the same frames floored


@pytest.mark.parametrize("seconds", [0.256, 1.0])
def test_short_recordings_fit_in_one_piece(features_cfg, seconds):
    """From the shortest wave the delta accepts (delta_width frames) up."""
    fc = features_cfg
    wave = recording(seconds)[:max(int(seconds * RATE), (fc.delta_width - 1) * fc.hop_length)]
    streamed = streamed_features(blocks_of(wave, 1000), fc, "torch", 1024)
    assert np.abs(streamed - whole_features(wave, fc, "torch")).max() <= BLOCK_TOLERANCE_DB


def test_context_span_reads_half_the_width_each_side_and_width_at_the_ends():
    assert context_span(100, 200, 1000, 9) == (96, 204)
    assert context_span(0, 3, 1000, 9) == (0, 9)
    assert context_span(998, 1000, 1000, 9) == (991, 1000)


# ----------------------------------------------------------------------------- audio stream

@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (22050, 1)])
def test_stream_gives_load_audio_samples_and_info(tmp_path, rate, channels):
    """Soundfile blocks + the stateful resampler: load_audio's samples bit for bit."""
    mono = recording(7.3, rate)
    data = np.stack([mono, 0.5 * mono[::-1]], axis=1) if channels == 2 else mono
    path = tmp_path / f"a{rate}.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    wave, info = load_audio(path)
    stream = AudioStream(path)
    with pytest.raises(RuntimeError, match="full pass"):
        stream.info()
    streamed = np.concatenate(list(stream.blocks(4099)))
    assert np.array_equal(streamed, wave)
    assert stream.info() == info
    assert np.array_equal(stream.head(20000), wave[:20000])


def test_stream_reports_load_audio_errors(tmp_path):
    silent, broken = tmp_path / "silent.wav", tmp_path / "nan.wav"
    sf.write(silent, np.zeros(RATE, np.float32), RATE, subtype="FLOAT")
    bad = recording(1.0)
    bad[9000] = np.nan
    sf.write(broken, bad, RATE, subtype="FLOAT")
    for path, message in [(silent, "audio is silent"), (broken, "NaN or infinite")]:
        with pytest.raises(KoemoInputError, match=message):
            load_audio(path)
        with pytest.raises(KoemoInputError, match=message):
            stream = AudioStream(path)
            list(stream.blocks(4000))
            stream.info()
    with pytest.raises(KoemoInputError, match="audio file not found"):
        AudioStream(tmp_path / "missing.wav")
    with pytest.raises(KoemoInputError, match="file header says 16000 Hz"):
        AudioStream(silent, sample_rate=44100)


# ----------------------------------------------------------------------------- windows

def test_streamed_windows_equal_windows_of_the_whole_features(features_cfg):
    """Windows cut from a buffer of frame blocks (edges mid-window) = cut from the whole array."""
    fc = features_cfg
    wave = recording(30.0)
    whole = whole_features(wave, fc, "torch")
    n_frames, max_frames = whole.shape[1], 200
    starts = window_starts(n_frames, max_frames)
    blocks = blocks_of(wave, 7000)
    reference = scan_reference(blocks(), fc, "torch", 45)
    streamed = WindowSource(lambda: feature_blocks(blocks(), fc, reference, "torch", 45),
                            n_frames, max_frames, starts)
    expected = WindowSource.of_array(whole, n_frames, max_frames, starts)
    for (a, a_len), (b, b_len) in zip(streamed.chunks(3), expected.chunks(3), strict=True):
        assert np.array_equal(a_len, b_len)
        assert np.abs(a - b).max() <= BLOCK_TOLERANCE_DB


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """~3 minutes at 44.1 kHz stereo: many model windows, resampled, several pieces."""
    mono = recording(181.7, 44100, seed=3)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.stack([mono, mono[::-1]], axis=1), 44100, subtype="PCM_16")
    return path


@pytest.mark.parametrize("backend", ["torch", "librosa"])
def test_predictions_read_in_blocks_equal_the_whole_recording(exported_predictor_dir, long_wav,
                                                            tiny_transcript, monkeypatch, backend):
    from koemo.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(exported_predictor_dir, asr="none")
    predictor.cfg = with_changes(predictor.cfg, {"features": {"backend": backend}})
    monkeypatch.setattr(block_features, "BLOCK_FRAMES", 301)   # piece edges inside windows
    streamed = predictor.predict(long_wav, tiny_transcript)
    predictor.read_in_blocks = False
    whole = predictor.predict(long_wav, tiny_transcript)
    assert streamed.windows == whole.windows and streamed.windows.n_windows > 50
    assert streamed.audio == whole.audio and streamed.notes == whole.notes
    # float16 rounding (as the feature store) absorbs the ~1e-6 dB of librosa's pieces
    # nearly always; a value on a float16 rounding edge may move by one step (measured:
    # 5e-9 arousal, 3e-8 probability).
    tolerance = 0.0 if backend == "torch" else 1e-6
    assert abs(streamed.arousal - whole.arousal) <= tolerance
    for name, p in whole.probabilities.items():
        assert abs(streamed.probabilities[name] - p) <= tolerance


def test_cut_mode_reads_the_features_of_one_window_only(exported_predictor_dir, long_wav,
                                                       tiny_transcript, monkeypatch):
    from koemo.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(exported_predictor_dir, asr="none", long_audio="cut")
    given = []
    original = block_features.feature_blocks

    def counting(*args, **kwargs):
        for block in original(*args, **kwargs):
            given.append(block.shape[1])
            yield block

    monkeypatch.setattr(block_features, "feature_blocks", counting)
    result = predictor.predict(long_wav, tiny_transcript)
    assert result.windows.mode == "cut"
    assert sum(given) < 2 * block_features.BLOCK_FRAMES < result.audio.samples // 512


# ----------------------------------------------------------------------------- speech encoder

@pytest.mark.parametrize("large_style", [False, True])
def test_speech_encoder_states_depend_on_what_is_encoded_with_them(tmp_path, large_style):
    """Why the encoder front-end does not encode window by window (koemo.inference.recording):
    the states of a window encoded alone are not the recording's states of those frames (the
    extractor normalises over its whole input, group norm too, the positional conv and
    attention read past the window). A recording of up to one piece (tests/test_encoder_pieces.py
    for longer ones) is scored from its whole states, cut."""
    from types import SimpleNamespace

    from koemo.audio.speech_encoder import encoder_settings, load_speech_encoder, whole_states
    from koemo.inference.recording import recording_windows
    from koemo.synth.encoders import build_speech_encoder
    from koemo.synth.recording import long_recording

    folder = build_speech_encoder("wav2vec2", tmp_path / "wav2vec2", large_style=large_style)
    encoder = load_speech_encoder(str(folder), [1, 2])
    wave, _ = long_recording(n_utterances=3, seed=0)               # ~10 s: 500 frames
    whole = whole_states(encoder, wave)
    hop, width, start = 320, 64, 200                               # one window mid-recording
    alone = whole_states(encoder, wave[start * hop:(start + width) * hop + 80])[:, :width]
    in_context = whole[:, start:start + width]
    # far beyond float16 rounding (~1e-3 relative): measured 20-76% of the largest state
    assert np.abs(alone - in_context).max() > 0.05 * np.abs(in_context).max()

    cfg = load_config("tiny_ssl", [f"models.audio.encoder.name={folder}"])
    predictor = SimpleNamespace(cfg=cfg, speech_encoder=encoder, read_in_blocks=True,
                                long_audio="windows", window_seconds=1.28, _as_trained=None)
    frames, windows, info, _ = recording_windows(predictor, wave, RATE)
    assert windows.mode == "windows" and len(frames) > 5
    max_frames = encoder_settings(cfg).max_frames
    feats = np.concatenate([f for f, _ in frames.chunks(4)])
    for row, first in enumerate(frames.starts):
        n = min(max_frames, whole.shape[1] - first)
        assert np.array_equal(feats[row, :, :n], whole[:, first:first + n])
