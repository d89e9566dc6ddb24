"""Speech recognition for the text path (koemo.inference.asr): without a transcript, `koemo predict`
transcribes with Whisper and runs the full multimodal path. Offline, a tiny random Whisper
(koemo.inference.asr_standin) goes through the same transformers classes; its text is gibberish, but
deterministic and Korean."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.deadline import HANG_S, within_deadline
from koemo.inference.asr import Transcriber, asr_settings
from koemo.cli import main
from koemo.dataset.kemdy20 import clean_transcript
from koemo.errors import KoemoInputError
from koemo.inference.predictor import Predictor

MAX_TOKENS = 8


@pytest.fixture(scope="module")
def utterance(tiny_workdir):
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    row = table.sort_values("duration").iloc[len(table) // 2]
    return row["wav_path"], row["text_raw"]


@pytest.fixture(scope="module")
def asr(standin_whisper):
    return {"model": str(standin_whisper), "max_new_tokens": MAX_TOKENS, "batch_size": 4}


@pytest.fixture(scope="module")
def predictor(asr_predictor_dir, asr):
    return Predictor.from_checkpoint(asr_predictor_dir, asr=asr)


def test_settings_come_from_the_config_and_none_turns_asr_off(tiny_config):
    settings = asr_settings(tiny_config)
    assert settings.model == "openai/whisper-small" and settings.language == "korean"
    assert asr_settings(tiny_config, model="none") is None
    assert asr_settings({"asr": {"model": None}}) is None
    with pytest.raises(KoemoInputError, match=r"asr: unknown setting 'modle' \(did you mean 'model'\?\)"):
        asr_settings({"asr": {"modle": "x"}})


def test_hub_id_offline_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KoemoInputError, match="openai/whisper-small.*not reachable.*--asr DIR"):
        within_deadline(HANG_S, "Transcriber.load(hub id, offline)", Transcriber.load, asr_settings(None))


def test_bad_directory_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(KoemoInputError, match=f"{tmp_path}: speech recognition.*without"):
        Transcriber.load(asr_settings(None, model=str(tmp_path)))
    with pytest.raises(KoemoInputError, match="directory not found"):
        Transcriber.load(asr_settings(None, model=str(tmp_path / "a" / "b" / "c")))


def test_without_text_the_transcript_comes_from_asr(predictor, utterance, asr):
    wav, text = utterance
    result = predictor.predict(wav)
    heard = Transcriber.load(asr_settings(None, **asr)).transcribe(
        [__import__("koemo.audio.io", fromlist=["load_audio"]).load_audio(wav)[0]])[0]
    assert heard and result.text == clean_transcript(heard)       # what the model generated
    assert result.text_source == "asr"
    assert result.label in predictor.classes and result.valence is not None
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert any("speech recognition" in note for note in result.notes)
    again = predictor.predict(wav)                                 # greedy and seeded
    assert again.text == result.text and again.probabilities == result.probabilities
    # The transcript given as text gives the same numbers: ASR only supplies the text.
    given = predictor.predict(wav, heard)
    assert given.text_source == "given" and given.probabilities == pytest.approx(result.probabilities)
    assert given.arousal == pytest.approx(result.arousal)


def test_batches_transcribe_together_and_mix_given_text(predictor, utterance):
    wav, text = utterance
    results = list(predictor.predict_many([(wav, None), (wav, text), wav]))
    assert [r.text_source for r in results] == ["asr", "given", "asr"]
    assert results[0].text == results[2].text == predictor.predict(wav).text


def test_asr_none_keeps_arousal_only(asr_predictor_dir, utterance):
    result = Predictor.from_checkpoint(asr_predictor_dir, asr="none").predict(utterance[0])
    assert result.label is None and result.text_source is None and result.text is None


def test_cli_without_text_says_asr(asr_predictor_dir, standin_whisper, utterance, capsys):
    wav, _ = utterance
    assert main(["predict", str(wav), "--checkpoint", str(asr_predictor_dir), "--asr",
                 str(standin_whisper), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text_source"] == "asr" and out["label"] is not None and out["text"]
    assert main(["predict", str(wav), "--checkpoint", str(asr_predictor_dir), "--asr", "none",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] is None
    # The config's hub model offline: one clear line, exit status 1.
    assert main(["predict", str(wav), "--checkpoint", str(asr_predictor_dir)]) == 1
    assert "not reachable" in capsys.readouterr().err


def test_unusable_transcript_falls_back_to_arousal(predictor, utterance, monkeypatch):
    monkeypatch.setattr(type(predictor.transcriber), "transcribe", lambda self, waves: ["..."] * len(waves))
    result = predictor.predict(utterance[0])
    assert result.label is None and result.text_source is None
    assert any("heard no Korean" in note for note in result.notes)
    assert np.isfinite(result.arousal)
