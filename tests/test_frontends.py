"""Pretrained speech/text encoders as front-ends (issue #16), offline: random tiny wav2vec2,
HuBERT and WavLM models and RoBERTa/ELECTRA text encoders with Auto tokenizers, built from
configs by koemo.synth.encoders, run through cache -> train -> evaluate -> predict on the
synthetic corpus."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from koemo.config.load import load_config
from koemo.errors import KoemoInputError
from tests.deadline import HANG_S, within_deadline

SEED = 1


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, tiny_workdir):
    from koemo.synth.encoders import build_speech_encoder, build_text_encoder

    root = tmp_path_factory.mktemp("encoders")
    texts = pd.read_parquet(tiny_workdir / "utterances.parquet")["text"].tolist()
    out = {family: build_speech_encoder(family, root / family) for family in ("wav2vec2", "hubert", "wavlm")}
    out.update({family: build_text_encoder(family, root / family, texts) for family in ("roberta", "electra")})
    return out


def ssl_config(encoders, audio="wav2vec2", text="roberta", **extra) -> dict:
    overrides = [f"models.audio.encoder.name={encoders[audio]}", f"text.tokenizer={encoders[text]}",
                 f"text.encoder={encoders[text]}"] + [f"{k}={v}" for k, v in extra.items()]
    return load_config("tiny_ssl", overrides + [f"train.{stage}.epochs=1"
                                                for stage in ("audio", "text", "multimodal")])


# ----------------------------------------------------------------------------- speech cache

@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm"])
def test_state_cache_holds_the_chosen_layers_of_each_utterance(family, encoders, tiny_workdir, monkeypatch):
    from koemo.audio.encoder_store import build_encoder_store
    from koemo.config.workdir import load_utterances
    from koemo.modeling.models import AudioRegressor
    from koemo.audio.speech_encoder import load_speech_encoder, whole_states
    import koemo.audio.encoder_store as store_module
    import koemo.audio.feature_store as F

    cfg = ssl_config(encoders, family, **{"models.audio.encoder.layers": "[0, 2]",
                                          "models.audio.encoder.max_frames": 40,
                                          "name": f"tiny-ssl-{family}"})
    table = load_utterances(tiny_workdir)
    store = build_encoder_store(table, tiny_workdir, cfg, progress=False)
    assert store.states.shape == (len(table), 2, 40, 32) and store.states.dtype == np.float16
    encoder = load_speech_encoder(str(encoders[family]), [0, 2])
    assert encoder.batched == (family == "wavlm")     # the tiny WavLM is built large-style
    for row in (0, 5):
        wave = F.read_wave(table["wav_path"].iloc[row], 16000)
        whole = whole_states(encoder, wave)
        n = min(whole.shape[1], 40)
        assert store.n_frames[row] == n == min(int(encoder.frames(len(wave))[0]), 40)
        got = store.get(row)
        np.testing.assert_allclose(got[:, :n], whole[:, :n], atol=1e-2 if encoder.batched else 0)
        assert not got[:, n:].any()                                 # zero padding
    # A complete cache is reused without loading the encoder again.
    monkeypatch.setattr(store_module, "load_speech_encoder", lambda *a, **k: pytest.fail("reloaded"))
    again = build_encoder_store(table, tiny_workdir, cfg, progress=False)
    assert again.directory == store.directory
    # The audio regressor takes the states as they come out of the cache.
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
    out = model(torch.from_numpy(store.get_batch([0, 1])), torch.from_numpy(store.n_frames[:2].astype(np.int64)))
    assert out["pred"].shape == (2,) and out["hidden"].shape == (2, 40, cfg.models.d_model)
    assert out["mask"].sum(1).tolist() == store.n_frames[:2].tolist()


@pytest.mark.parametrize("family", ["wav2vec2", "wavlm"])
def test_layers_past_the_deepest_chosen_one_are_not_run(family, encoders):
    from transformers import AutoModel

    from koemo.audio.speech_encoder import load_speech_encoder

    encoder = load_speech_encoder(str(encoders[family]), [0])
    assert len(encoder.model.encoder.layers) == 1
    full = AutoModel.from_pretrained(str(encoders[family])).eval()
    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    inputs = encoder.extractor(wave, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = full(inputs["input_values"], output_hidden_states=True).hidden_states[0]
    np.testing.assert_array_equal(encoder.states([wave])[0][0], expected[0].half().numpy())


def test_other_layers_or_frames_get_another_cache(encoders, tiny_workdir):
    from koemo.audio.encoder_store import build_encoder_store
    from koemo.config.workdir import load_utterances

    table = load_utterances(tiny_workdir).head(3)
    cfgs = [ssl_config(encoders, **{"models.audio.encoder.layers": layers,
                                    "models.audio.encoder.max_frames": frames})
            for layers, frames in (("[1]", 16), ("[2]", 16), ("[1]", 20))]
    dirs = {build_encoder_store(table, tiny_workdir, cfg, progress=False).directory for cfg in cfgs}
    assert len(dirs) == 3


def test_extractor_mixes_layers_with_learned_weights_and_projects():
    from koemo.modeling.frontend import EncoderStatesExtractor

    ext = EncoderStatesExtractor(3, 32, 16, "weighted")
    assert torch.allclose(ext.mixing_weights(), torch.full((3,), 1 / 3))
    states = torch.randn(2, 3, 5, 32)
    states[:, :, 4] = 0                                              # a padding frame
    out = ext(states)
    assert out.shape == (2, 5, 16) and not out[:, 4].any()
    expected = ext.proj(states.mean(dim=1))
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    assert ext.layer_weights.grad is not None
    assert not hasattr(EncoderStatesExtractor(1, 16, 16), "proj")
    with pytest.raises(ValueError, match="encoder states"):
        ext(torch.randn(2, 2, 5, 32))


# ----------------------------------------------------------------------------- text

def test_auto_tokenizer_encodes_like_kobert_and_augments_its_own_tokens(encoders):
    from koemo.text.augment import random_delete, random_swap
    from koemo.text.auto import AutoTextTokenizer
    from koemo.text.encoder import load_text_tokenizer

    for family in ("roberta", "electra"):
        tok = load_text_tokenizer(str(encoders[family]))
        assert isinstance(tok, AutoTextTokenizer)
        tokens = tok.tokenize("오늘 날씨가 정말 좋네요")
        assert len(tokens) >= 4
        enc = tok.encode(tokens, max_length=12)
        n = min(len(tokens), 10) + 2
        assert enc["input_ids"][0] == tok.cls_token_id and enc["input_ids"][n - 1] == tok.sep_token_id
        assert enc["attention_mask"].tolist() == [1] * n + [0] * (12 - n)
        np.testing.assert_array_equal(tok.attention_mask_for(enc["input_ids"]), enc["attention_mask"])
        rng = np.random.default_rng(824)
        swapped = tok.encode(random_swap(tokens, 0.3, rng), 32)["input_ids"]
        assert sorted(swapped.tolist()) == sorted(tok.encode(tokens, 32)["input_ids"].tolist())
        deleted = random_delete(tokens, 0.3, np.random.default_rng(824))
        assert len(deleted) == len(tokens) - max(round(0.3 * len(tokens)), 1)
    assert load_text_tokenizer(str(encoders["roberta"])).fingerprint != \
        load_text_tokenizer(str(encoders["electra"])).fingerprint


def test_kobert_sources_keep_the_sentencepiece_path(tmp_path):
    from koemo.text.auto import text_model_kind

    assert text_model_kind("skt/kobert-base-v1") == "kobert"
    assert text_model_kind("klue/roberta-base") == "auto"
    (tmp_path / "spiece.model").write_bytes(b"")
    assert text_model_kind(tmp_path) == "kobert"
    assert text_model_kind(tmp_path, "auto") == "auto"
    with pytest.raises(KoemoInputError, match="tokenizer_kind"):
        load_config("tiny", ["text.tokenizer_kind=bpe"])


@pytest.mark.parametrize("call", ["speech", "tokenizer", "text_encoder"])
def test_hub_ids_offline_fail_fast_with_advice(call, monkeypatch):
    from koemo.audio.speech_encoder import load_speech_encoder
    from koemo.text.encoder import load_text_encoder, load_text_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load = {"speech": lambda: load_speech_encoder("facebook/wav2vec2-koemo-missing", [6]),
            "tokenizer": lambda: load_text_tokenizer("klue/roberta-koemo-missing"),
            "text_encoder": lambda: load_text_encoder("klue/roberta-koemo-missing")}[call]
    with pytest.raises(KoemoInputError, match="local|directory"):
        within_deadline(HANG_S, f"loading the {call} from a hub id while offline", load)


# ----------------------------------------------------------------------------- configs

def test_shipped_ssl_configs_build_the_paper_models_over_the_encoders():
    from koemo.modeling.models import AudioExtractor, AudioRegressor, TextRegressor

    xlsr = load_config("ssl_wav2vec2_klue")
    model = AudioRegressor(xlsr.models, xlsr.fixes)
    assert model.Extractor.proj.weight.shape == (768, 1024) and model.Extractor.n_layers == 2
    wavlm = load_config("ssl_wavlm_koelectra")
    assert not hasattr(AudioRegressor(wavlm.models, wavlm.fixes).Extractor, "proj")
    assert not hasattr(TextRegressor(wavlm.models, wavlm.fixes), "input_proj")
    paper = load_config("paper")
    assert isinstance(AudioRegressor(paper.models, paper.fixes).Extractor, AudioExtractor)
    with pytest.raises(KoemoInputError, match="encoder.name"):
        load_config("paper", ["models.audio.frontend=encoder"])


# ----------------------------------------------------------------------------- whole path

@pytest.fixture(scope="module")
def trained_ssl(encoders, tiny_workdir):
    from koemo.experiments.frontends import run_frontend_study

    cfg = ssl_config(encoders, **{"reproduce.folds": "[0]",
                                  "reproduce.fusion.kinds": "[text_only, early, attention_lstm]"})
    # in this process: two spawned workers cost more than these one-epoch runs take to train
    runs = run_frontend_study([cfg], tiny_workdir, parallel_runs=1)
    return cfg, runs


def test_training_and_evaluation_run_on_encoder_states(trained_ssl, tiny_workdir):
    from koemo.modeling.evaluate import evaluate

    cfg, runs = trained_ssl
    assert set(runs["classifier"]) == {"", "text_only", "early", "attention_lstm"}
    assert (runs["split"] == "cv5_f0").all()
    row = runs[runs["classifier"] == "attention_lstm"].iloc[0]
    metrics = evaluate(row["run_dir"], tiny_workdir, split="valid")
    assert metrics["stage"] == "multimodal" and 0 <= metrics["accuracy"] <= 1
    audio = runs[runs["stage"] == "audio"].iloc[0]
    assert np.isfinite(audio["rmse"])


def test_frontend_table_has_every_fusion_kind_and_the_baseline(trained_ssl):
    from koemo.experiments.frontends import MAJORITY, frontend_fusion_table, frontend_label

    cfg, runs = trained_ssl
    mel = runs.assign(frontend="mel + standin")               # a second row, same numbers
    table = frontend_fusion_table(pd.concat([runs, mel], ignore_index=True))
    assert table.columns.tolist() == ["frontend", "folds", "text_only", "early", "attention_lstm", MAJORITY]
    assert table["frontend"].tolist() == [frontend_label(cfg), "mel + standin"]
    assert table.iloc[0]["early"] == table.iloc[1]["early"] and "±" in table.iloc[0]["early"]
    assert frontend_label(cfg).startswith("wav2vec2[1,2] + roberta")


def test_exported_predictor_runs_the_speech_encoder(trained_ssl, tiny_workdir, tmp_path):
    import soundfile as sf

    from koemo.inference.predictor import Predictor
    from koemo.inference.export import export_from_workdir
    from koemo.modeling.runs import run_dir_for

    cfg, runs = trained_ssl
    run_cfg = runs[runs["classifier"] == "attention_lstm"].iloc[0]
    from koemo.experiments.plan import split_config, variant_config
    split_cfg = split_config(variant_config(cfg, "corrected"), "cv5_f0")
    assert run_dir_for(tiny_workdir, split_cfg, "multimodal", SEED) == \
        __import__("pathlib").Path(run_cfg["run_dir"])
    out = export_from_workdir(tiny_workdir, split_cfg, SEED, tmp_path / "predictor")
    assert (out / "audio-encoder" / "preprocessor_config.json").is_file()
    predictor = Predictor.from_checkpoint(out)
    assert predictor.speech_encoder is not None
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    wave, rate = sf.read(table["wav_path"].iloc[0], dtype="float32")
    long_wave = np.tile(wave, int(np.ceil(3 * predictor.window_seconds * rate / len(wave))))
    result = predictor.predict(long_wave, "오늘 정말 기분이 좋아요", sample_rate=rate)
    assert result.label in cfg.data.classes and 1 <= result.arousal <= 5
    assert result.windows.mode == "windows" and result.windows.n_windows >= 3
    assert abs(result.windows.window_s - 64 * 0.02) < 1e-9
    # Its config.json is bounded before the encoder is built, as the stages' meta.json are.
    import json
    import shutil

    from koemo.errors import CheckpointError

    big = shutil.copytree(out, tmp_path / "big")
    config_path = big / "audio-encoder" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()),
                                       "num_hidden_layers": 100000}))
    with pytest.raises(CheckpointError, match=f"{config_path}: num_hidden_layers = 100000 is not a size"):
        Predictor.from_checkpoint(big)
