"""A speech-encoder predictor encodes a long recording a piece at a time
(koemo.audio.speech_encoder.piece_states, koemo.inference.recording.encoded_windows): the pieces
lie on the whole recording's frame grid, a recording of up to one piece is encoded exactly as
before, and the encoder never sees more than a piece and a tail of samples at once."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from koemo.audio import speech_encoder as se
from koemo.config.load import load_config
from koemo.errors import KoemoInputError
from koemo.inference.recording import recording_windows
from koemo.synth.encoders import build_speech_encoder
from koemo.synth.recording import long_recording

RATE = 16000


@pytest.fixture(scope="module", params=[False, True], ids=["group_norm", "layer_norm"])
def encoder(request, tmp_path_factory):
    folder = build_speech_encoder("wav2vec2", tmp_path_factory.mktemp("enc") / "wav2vec2",
                                  large_style=request.param)
    return se.load_speech_encoder(str(folder), [1, 2]), folder


@pytest.fixture(scope="module")
def recording():
    wave, _ = long_recording(n_utterances=5, seed=3)         # ~15 s
    return wave


def blocks_of(wave, size):
    return [wave[i:i + size] for i in range(0, len(wave), size)]


def test_receptive_field_is_the_shortest_input_of_one_frame(encoder):
    enc, _ = encoder
    field = se.receptive_field(enc)
    assert field == 165                          # kernels (10, 8, 4), strides (5, 8, 8)
    assert enc.frames(field)[0] == 1 and enc.frames(field - 1)[0] == 0
    hop = 320
    for frames in (1, 7, 150):                   # a piece plus (field - hop) gives whole frames
        assert enc.frames(frames * hop + field - hop)[0] == frames


def test_pieces_lie_on_the_whole_frame_grid_and_each_is_its_own_span_encoded(encoder, recording):
    enc, _ = encoder
    seen = []
    real_states = enc.states
    enc.states = lambda waves: (seen.append(max(len(w) for w in waves)), real_states(waves))[1]
    try:
        pieces = list(se.piece_states(enc, blocks_of(recording, 3000), "rec",
                                      piece_seconds=4.0, tail_seconds=1.0))
    finally:
        enc.states = real_states
    overlap, piece = se.receptive_field(enc) - 320, 200 * 320        # 4 s = 200 frames
    full = (len(recording) - RATE) // piece      # pieces before the last, which keeps >= 1 s
    assert len(pieces) == full + 1 >= 3 and {p.shape[1] for p in pieces[:-1]} == {200}
    assert sum(p.shape[1] for p in pieces) == enc.frames(len(recording))[0]
    for i, states in enumerate(pieces[:-1]):
        span = recording[i * piece:(i + 1) * piece + overlap]
        assert np.array_equal(states, se.whole_states(enc, span))
    last = recording[full * piece:]
    assert RATE <= len(last) < piece + RATE
    assert np.array_equal(pieces[-1], se.whole_states(enc, last))
    assert max(seen) < piece + RATE              # one piece and the tail at most: never the file


def test_a_recording_of_one_piece_is_encoded_whole(encoder, recording):
    enc, _ = encoder
    pieces = list(se.piece_states(enc, blocks_of(recording, 4096)))
    assert len(pieces) == 1 and np.array_equal(pieces[0], se.whole_states(enc, recording))


def _predictor(enc, folder, read_in_blocks=True):
    cfg = load_config("tiny_ssl", [f"models.audio.encoder.name={folder}"])
    return SimpleNamespace(cfg=cfg, speech_encoder=enc, read_in_blocks=read_in_blocks,
                           long_audio="windows", window_seconds=1.28, _as_trained=None)


def _cut(predictor, wave):
    frames, windows, info, _ = recording_windows(predictor, wave, RATE)
    feats = [f for f, _ in frames.chunks(3)]
    return frames, windows, np.concatenate(feats)


def test_predictor_windows_equal_the_whole_path_up_to_one_piece(encoder, recording):
    enc, folder = encoder
    frames, windows, feats = _cut(_predictor(enc, folder), recording)
    whole_frames, whole_windows, whole_feats = _cut(_predictor(enc, folder, False), recording)
    assert frames.starts == whole_frames.starts and windows == whole_windows
    assert np.array_equal(feats, whole_feats)


def test_predictor_windows_of_a_long_recording_come_from_its_pieces(encoder, recording, monkeypatch):
    enc, folder = encoder
    monkeypatch.setattr(se, "PIECE_SECONDS", 4.0)
    monkeypatch.setattr(se, "TAIL_SECONDS", 1.0)
    frames, windows, feats = _cut(_predictor(enc, folder), recording)
    whole_frames, whole_windows, whole_feats = _cut(_predictor(enc, folder, False), recording)
    assert frames.starts == whole_frames.starts and windows == whole_windows
    assert feats.shape == whole_feats.shape
    pieces = np.concatenate(list(se.piece_states(enc, [recording], "r", 4.0, 1.0)), axis=1)
    width = frames.max_frames
    for row, first in enumerate(frames.starts):
        n = min(width, pieces.shape[1] - first)
        assert np.array_equal(feats[row, :, :n], pieces[:, first:first + n])
    assert not np.array_equal(feats, whole_feats)     # pieces are encoded alone: other states


def test_too_short_for_the_encoder_names_the_input(encoder):
    enc, folder = encoder
    with pytest.raises(KoemoInputError, match="too short .* speech encoder needs at least 400"):
        recording_windows(_predictor(enc, folder), 0.1 * np.ones(300, np.float32), RATE)
