"""emotion2vec+ and SenseVoice-Small (koemo.upstreams: emotion2vec, sensevoice, zeroshot,
funasr_loader) through FunASR, on tiny random stand-ins built offline in the released
repositories' own directory format (koemo.synth.zeroshot). No test reaches a hub."""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.deadline import HANG_S, within_deadline
from koemo.dataset.labels import PAPER_CLASSES, SEVEN_CLASSES
from koemo.errors import KoemoInputError
from koemo.synth.zeroshot import (EMOTION2VEC_CONF, EMOTION2VEC_TOKENS, build_emotion2vec_standin,
                                  build_sensevoice_standin)
from koemo.upstreams import funasr_loader
from koemo.upstreams.emotion2vec import load_emotion2vec_upstream, native_name
from koemo.upstreams.protocol import AudioUpstream
from koemo.upstreams.sensevoice import (EMOTION_TAGS, NO_TAG, SenseVoice, emotion_tag,
                                        language_id, plain_text)
from koemo.upstreams.zeroshot import (COLUMNS, NATIVE_TO_EMOTION, map_label, mapping_table,
                                      zero_shot_predict)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "foundation.md"


@pytest.fixture(scope="module")
def e2v_dir(tmp_path_factory):
    return build_emotion2vec_standin(tmp_path_factory.mktemp("e2v") / "emotion2vec_plus_tiny")


@pytest.fixture(scope="module")
def sv_dir(tmp_path_factory):
    return build_sensevoice_standin(tmp_path_factory.mktemp("sv") / "SenseVoiceSmall_tiny")


@pytest.fixture(scope="module")
def upstream(e2v_dir):
    return load_emotion2vec_upstream(str(e2v_dir), "cpu")


@pytest.fixture(scope="module")
def wave():
    return (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def rows(tiny_workdir):
    return pd.read_parquet(tiny_workdir / "utterances.parquet").head(5)


def test_standins_are_in_the_released_layout_and_recognised_by_their_files(e2v_dir, sv_dir):
    for kind, folder in (("emotion2vec", e2v_dir), ("sensevoice", sv_dir)):
        assert all((folder / name).is_file() for name in funasr_loader.required_files(kind))
        assert (folder / "configuration.json").is_file()
        assert funasr_loader.is_kind(kind, folder)
    assert not funasr_loader.is_kind("sensevoice", e2v_dir)
    assert yaml.safe_load((sv_dir / "config.yaml").read_text())["encoder"] == "SenseVoiceEncoderSmall"
    assert (e2v_dir / "tokens.txt").read_text(encoding="utf-8").split() == list(EMOTION2VEC_TOKENS)
    assert funasr_loader.is_kind("sensevoice", "FunAudioLLM/SenseVoiceSmall")
    assert not funasr_loader.is_kind("sensevoice", "openai/whisper-small")
    # the asset pre-flight's list: a directory's paths, a hub id's names
    assert funasr_loader.model_files("sensevoice", sv_dir)[-1] == sv_dir / "am.mvn"
    assert funasr_loader.model_files("emotion2vec", "emotion2vec/emotion2vec_plus_large") == [
        "emotion2vec/emotion2vec_plus_large/" + n for n in ("config.yaml", "model.pt", "tokens.txt")]


def test_upstream_layer_states_follow_the_protocol(upstream, wave):
    assert isinstance(upstream, AudioUpstream)
    assert (upstream.num_layers, upstream.dim) == (EMOTION2VEC_CONF["depth"] + 1, 16)
    states = upstream.layer_states(wave)
    # 50 frames a second: one frame per 320 samples after the first 400
    assert states.shape == (upstream.num_layers, 1 + (16000 - 400) // 320, upstream.dim)
    assert states.dtype == torch.float32 and states.device.type == "cpu" and not states.requires_grad
    assert torch.equal(states, upstream.layer_states(wave))            # eval mode: no dropout
    # the last layer is what FunASR's own feature extraction returns; layer 0 is the blocks' input
    source = torch.nn.functional.layer_norm(torch.from_numpy(wave), (16000,)).view(1, -1)
    with torch.inference_mode():
        last = upstream.model.extract_features(source, padding_mask=None)["x"][0]
    torch.testing.assert_close(states[-1], last)
    assert not torch.allclose(states[0], states[1])
    with pytest.raises(KoemoInputError, match="at least 400 samples"):
        upstream.layer_states(wave[:100])


def test_zero_shot_head_is_the_checkpoints_own(upstream, wave):
    (label, scores), = upstream.classify([wave])
    assert list(scores) == [native_name(t) for t in EMOTION2VEC_TOKENS]
    assert label == max(scores, key=scores.get) and sum(scores.values()) == pytest.approx(1.0)
    # softmax(linear(mean over frames of the last layer)), as emotion2vec's head computes it
    with torch.inference_mode():
        logits = upstream.model.proj(upstream.layer_states(wave)[-1].mean(dim=0))
    expected = torch.softmax(logits, dim=-1).tolist()
    assert list(scores.values()) == pytest.approx(expected, abs=1e-5)


def test_sensevoice_rich_text_is_read_for_its_emotion_and_transcript(sv_dir, wave):
    rich = "<|ko|><|SAD|><|Speech|><|withitn|>오늘은  좀 슬퍼요."
    assert emotion_tag(rich) == "SAD" and plain_text(rich) == "오늘은 좀 슬퍼요."
    assert emotion_tag("<|ko|><|Speech|>네") == NO_TAG and emotion_tag("") == NO_TAG
    assert language_id("korean") == "ko" == language_id("KO")
    with pytest.raises(KoemoInputError, match="not 'klingon'"):
        language_id("klingon")
    model = SenseVoice.load(str(sv_dir))
    texts = model.rich_texts([wave, wave[:8000]], batch_size=2)
    assert len(texts) == 2 and all(t.startswith("<|") for t in texts)    # tags first, as released
    assert model.emotions([wave]) == [emotion_tag(texts[0])]
    assert set(model.emotions([wave, wave[:8000]])) <= set(EMOTION_TAGS) | {NO_TAG}


def test_every_native_label_maps_to_an_emotion_or_none():
    assert set(NATIVE_TO_EMOTION["emotion2vec"]) == {native_name(t) for t in EMOTION2VEC_TOKENS}
    assert set(NATIVE_TO_EMOTION["sensevoice"]) == set(EMOTION_TAGS) | {NO_TAG}
    for mapping in NATIVE_TO_EMOTION.values():
        assert set(mapping.values()) - {None} <= set(SEVEN_CLASSES)
        assert set(mapping.values()) >= set(PAPER_CLASSES)          # each of the five is reachable
    assert map_label("emotion2vec", "fearful", PAPER_CLASSES) is None         # outside the five
    assert map_label("emotion2vec", "fearful", SEVEN_CLASSES) == "fear"
    assert map_label("sensevoice", "SURPRISED", PAPER_CLASSES) == "surprise"
    with pytest.raises(KoemoInputError, match="'calm' has no mapping"):
        map_label("emotion2vec", "calm", PAPER_CLASSES)


def test_the_docs_page_holds_the_mapping_table_generated_from_the_mapping():
    assert mapping_table() in DOCS.read_text(encoding="utf-8"), (
        "docs/foundation.md is stale: paste the output of `python -m koemo.upstreams.zeroshot`")


@pytest.mark.parametrize("kind", ["emotion2vec", "sensevoice"])
def test_zero_shot_predictions_name_each_row_its_native_label_and_class(kind, rows, e2v_dir, sv_dir):
    model = str(e2v_dir if kind == "emotion2vec" else sv_dir)
    out = zero_shot_predict(kind, model, rows, classes=PAPER_CLASSES, device="cpu", batch_size=2)
    assert tuple(out.columns) == COLUMNS and out["segment_id"].tolist() == rows["segment_id"].tolist()
    assert set(out["native"]) <= set(NATIVE_TO_EMOTION[kind])
    assert out["label"].tolist() == [map_label(kind, n, PAPER_CLASSES) for n in out["native"]]
    # wav paths relative to a corpus root give the same predictions
    root = Path(os.path.commonpath(rows["wav_path"].tolist()))
    relative = rows.assign(wav_path=[str(Path(p).relative_to(root)) for p in rows["wav_path"]])
    again = zero_shot_predict(kind, model, relative, classes=PAPER_CLASSES, root=root, batch_size=2)
    pd.testing.assert_frame_equal(again, out)


def test_zero_shot_reads_the_corpus_a_chunk_at_a_time_and_reports_it(rows, e2v_dir, monkeypatch):
    import koemo.upstreams.zeroshot as Z

    whole = zero_shot_predict("emotion2vec", str(e2v_dir), rows, classes=PAPER_CLASSES)
    monkeypatch.setattr(Z, "CHUNK", 2)
    told: list[tuple[int, int]] = []
    chunked = zero_shot_predict("emotion2vec", str(e2v_dir), rows, classes=PAPER_CLASSES,
                                report=lambda done, total: told.append((done, total)))
    pd.testing.assert_frame_equal(chunked, whole)
    n = len(rows)
    assert told == [(0, n), *((min(k, n), n) for k in range(2, n + 2, 2))]


def test_rows_and_directories_with_problems_are_named_before_any_model_loads(rows, e2v_dir, tmp_path):
    broken = rows.assign(wav_path=[str(tmp_path / f"gone{i}.wav") for i in range(len(rows))])
    with pytest.raises(KoemoInputError, match=rf"{len(rows)} wav file\(s\) not found"):
        zero_shot_predict("emotion2vec", str(e2v_dir), broken, classes=PAPER_CLASSES)
    with pytest.raises(KoemoInputError, match="missing column"):
        zero_shot_predict("emotion2vec", str(e2v_dir), rows[["segment_id"]], classes=PAPER_CLASSES)
    with pytest.raises(KoemoInputError, match="unknown zero-shot model kind 'whisper'"):
        zero_shot_predict("whisper", "x", rows, classes=PAPER_CLASSES)
    (tmp_path / "config.yaml").write_text("model: Paraformer\n")
    with pytest.raises(KoemoInputError, match=re.escape(f"{tmp_path}: emotion2vec model directory "
                                                        "without model.pt, tokens.txt")):
        load_emotion2vec_upstream(str(tmp_path))
    for name in ("model.pt", "tokens.txt"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(KoemoInputError, match="says model: Paraformer, not Emotion2vec"):
        load_emotion2vec_upstream(str(tmp_path))


def test_hub_ids_offline_fail_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KoemoInputError, match="emotion2vec/emotion2vec_plus_base.*not reachable"):
        within_deadline(HANG_S, "emotion2vec hub id offline", load_emotion2vec_upstream,
                        "emotion2vec/emotion2vec_plus_base")
    with pytest.raises(KoemoInputError, match="FunAudioLLM/SenseVoiceSmall.*not reachable") as err:
        within_deadline(HANG_S, "SenseVoice hub id offline", SenseVoice.load,
                        "FunAudioLLM/SenseVoiceSmall")
    assert "snapshot_download" in str(err.value) and "text.tokenizer" not in str(err.value)


def test_funasr_missing_says_which_extra_to_install(monkeypatch, e2v_dir):
    monkeypatch.setitem(sys.modules, "funasr", None)
    with pytest.raises(KoemoInputError, match=re.escape('pip install "koemo[foundation]"')):
        load_emotion2vec_upstream(str(e2v_dir))


def test_loading_leaves_the_process_logging_and_threads_as_they_were(e2v_dir):
    root = logging.getLogger()
    before = (root.level, list(root.handlers), torch.get_num_threads())
    load_emotion2vec_upstream(str(e2v_dir))
    assert (root.level, list(root.handlers), torch.get_num_threads()) == before


def test_sensevoice_is_a_speech_recognition_option_for_predict(sv_dir, asr_predictor_dir, rows):
    from koemo.audio.io import load_audio
    from koemo.inference.asr import Transcriber, asr_settings
    from koemo.inference.predictor import Predictor

    settings = asr_settings(None, model=str(sv_dir), batch_size=2)
    transcriber = Transcriber.load(settings)
    assert transcriber.source == str(sv_dir)
    wav = rows["wav_path"].iloc[0]
    wave = load_audio(wav)[0]
    heard = transcriber.transcribe([wave])
    assert heard == [plain_text(t) for t in SenseVoice.load(str(sv_dir)).rich_texts([wave])]
    assert "<|" not in heard[0]
    result = Predictor.from_checkpoint(asr_predictor_dir, asr={"model": str(sv_dir)}).predict(wav)
    assert result.text_source == "asr" and result.label is not None
    assert any(f"speech recognition ({sv_dir})" in note for note in result.notes)



def test_the_cost_estimate_reads_funasr_configs_without_eval(e2v_dir, sv_dir):
    from koemo.experiments.foundation_cost import conv_spec, forward_flops, model_config

    for folder in (e2v_dir, sv_dir):
        config = model_config(str(folder), None)             # config.yaml: no config.json there
        one, two = forward_flops(config, 1.0, 32), forward_flops(config, 2.0, 32)
        assert one > 0 and two > one
    assert conv_spec("[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2") == \
        [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2
    with pytest.raises(ValueError, match="feature_encoder_spec"):
        conv_spec("__import__('os').getcwd()")
