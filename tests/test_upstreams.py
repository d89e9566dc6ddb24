"""Foundation-model upstreams (koemo.upstreams) on tiny random models of each family, built
offline in each one's own format: every layer's states, Whisper's frames over the utterance
only, and the pooled-state store's contents, reuse and failure behaviour."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from koemo.errors import KoemoInputError
from koemo.synth.encoders import build_tiny_upstream
from koemo.upstreams.audio import SpeechUpstream, WhisperUpstream, load_audio_upstream
from koemo.upstreams.pooled import PooledStore, ensure_pooled, pooled_directory, pooled_key
from koemo.upstreams.protocol import AudioUpstream
from koemo.upstreams.text import load_text_upstream

TEXTS = ["안녕하세요 오늘 기분이 좋아요", "너무 슬퍼요", "화가 나요 정말", "깜짝 놀랐어"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("upstreams")
    return {family: build_tiny_upstream(family, root / family, TEXTS)
            for family in ("wavlm", "hubert", "xlsr", "whisper", "roberta", "electra")}


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


@pytest.mark.parametrize("family", ["wavlm", "hubert", "xlsr"])
def test_wav2vec2_family_gives_every_hidden_state(tiny, family):
    upstream = load_audio_upstream(str(tiny[family]))
    config = json.loads((tiny[family] / "config.json").read_text())
    assert isinstance(upstream, AudioUpstream) and isinstance(upstream, SpeechUpstream)
    assert upstream.num_layers == config["num_hidden_layers"] + 1 and upstream.dim == 32
    states = upstream.layer_states(_wave(1.0))
    assert states.dtype == torch.float32 and states.shape == (upstream.num_layers, 50, 32)
    # transformers' own hidden states, every one, in float32 (no float16 rounding)
    with torch.no_grad():
        inputs = upstream.encoder.extractor(_wave(1.0), sampling_rate=16000, return_tensors="pt")
        out = upstream.encoder.model(inputs["input_values"], output_hidden_states=True)
    assert torch.equal(states, torch.stack(out.hidden_states)[:, 0])


def test_whisper_keeps_the_frames_over_the_utterance_and_encodes_30_s_pieces(tiny):
    upstream = load_audio_upstream(str(tiny["whisper"]))
    assert isinstance(upstream, WhisperUpstream) and isinstance(upstream, AudioUpstream)
    assert (upstream.num_layers, upstream.dim) == (3, 32)       # embeddings + 2 layers
    short = upstream.layer_states(_wave(1.01))
    assert short.shape == (3, 51, 32)                           # ceil(16160 / 320)
    long = upstream.layer_states(_wave(31.0))
    assert long.shape == (3, 1500 + 50, 32)
    # the first 30 s are encoded alone: their frames equal those of the first piece alone
    first = upstream.layer_states(_wave(31.0)[:16000 * 30])
    assert torch.equal(long[:, :1500], first)


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_text_upstreams_give_every_layer_and_the_token_mask(tiny, family):
    upstream = load_text_upstream(str(tiny[family]), max_length=12)
    states, mask = upstream.layer_states(TEXTS[:2])
    assert states.shape == (2, 2, 12, 32) and upstream.num_layers == 2
    ids, _ = upstream.encode(TEXTS[:2])
    assert mask.tolist() == (ids != upstream.tokenizer.pad_token_id).astype(int).tolist()


def test_kobert_standin_is_a_text_upstream(tiny_workdir, tiny_config):
    from koemo.text.standin import ensure_standin

    folder, _ = ensure_standin(tiny_workdir, tiny_config)
    upstream = load_text_upstream(str(folder), max_length=48)
    states, mask = upstream.layer_states(TEXTS[:1])
    assert states.shape[:3] == (1, tiny_config.text.standin.num_layers + 1, 48)
    assert mask[0, 0] == 1 and mask[0, -1] == 0


# ---------------------------------------------------------------- the pooled store
@pytest.fixture()
def utterances(tmp_path):
    rows = []
    for i, seconds in enumerate((0.5, 1.0, 1.5)):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, _wave(seconds, i), 16000)
        rows.append({"segment_id": f"s{i}", "wav_path": str(path), "text": TEXTS[i]})
    (tmp_path / "prepare_report.json").write_text('{"input_fingerprint": "x"}')
    return pd.DataFrame(rows)


def test_pooled_store_holds_each_layers_mean_and_is_reused_without_loading(tiny, utterances,
                                                                          tmp_path):
    name = str(tiny["wavlm"])
    loads = []

    def load():
        loads.append(1)
        return load_audio_upstream(name)

    key = pooled_key(name, "audio", sample_rate=16000)
    store = ensure_pooled(utterances, tmp_path, key, load, progress=False)
    upstream = load_audio_upstream(name)
    for i, path in enumerate(utterances["wav_path"]):
        wave, _ = sf.read(path, dtype="float32")
        expected = upstream.layer_states(wave).mean(dim=1).numpy().astype(np.float16)
        assert np.array_equal(store.rows([f"s{i}"])[0], expected)
        assert store.n_frames[i] == upstream.layer_states(wave).shape[1]
    again = ensure_pooled(utterances, tmp_path, key, load, progress=False)
    assert loads == [1] and again.segment_ids == ["s0", "s1", "s2"]


def test_text_pooling_averages_the_unpadded_tokens_only(tiny, utterances, tmp_path):
    name = str(tiny["roberta"])
    key = pooled_key(name, "text", max_length=16)
    store = ensure_pooled(utterances, tmp_path, key, lambda: load_text_upstream(name, max_length=16),
                          progress=False)
    states, mask = load_text_upstream(name, max_length=16).layer_states(TEXTS[:1])
    n = int(mask[0].sum())
    expected = states[0, :, :n].mean(dim=1).numpy().astype(np.float16)
    assert np.allclose(store.rows(["s0"])[0].astype(np.float32), expected.astype(np.float32),
                       atol=1e-3)
    assert store.n_frames[0] == n


def test_a_failed_build_leaves_no_complete_store_and_bad_audio_is_named_before_loading(
        tiny, utterances, tmp_path):
    name = str(tiny["wavlm"])
    key = pooled_key(name, "audio", sample_rate=16000)

    class Breaks:
        num_layers, dim, name = 3, 32, "breaks"

        def layer_states(self, wave):
            raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        ensure_pooled(utterances, tmp_path, key, Breaks, progress=False)
    directory = pooled_directory(tmp_path, key)
    assert not (directory / "meta.json").exists() and not list(directory.glob("*.partial"))
    with pytest.raises(KoemoInputError):
        PooledStore(directory)
    broken = utterances.assign(wav_path=[utterances["wav_path"][0], str(tmp_path / "gone.wav"),
                                         utterances["wav_path"][2]])
    loads = []
    with pytest.raises(KoemoInputError, match="s1 .*gone.wav: file not found"):
        ensure_pooled(broken, tmp_path, key, lambda: loads.append(1), progress=False)
    assert loads == []
