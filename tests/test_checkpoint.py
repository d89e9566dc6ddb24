"""Checkpoints: safetensors + meta.json round trips, atomic writes, every broken-checkpoint
error, and the resumable training state."""
from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import pytest
import torch

from koemo.config.load import load_config
from koemo.errors import CheckpointError
from koemo.modeling import (AudioRegressor, TextRegressor, build_classifier,
                            build_from_checkpoint, load_checkpoint, load_training_state,
                            save_checkpoint, save_training_state)
from koemo.modeling.checkpoint import META_FILE, WEIGHTS_FILE, load_into
from koemo.modeling.models import text_input_dim

# Deterministic eval outputs (original attention dropout stays on in eval).
DETERMINISTIC = ["fixes.eval_attention_dropout_off=true"]


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny", DETERMINISTIC)


def audio_inputs(cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    feats = -80 * torch.rand(2, 2, cfg.features.max_frames, cfg.features.n_mels,
                             generator=gen) - 1e-3
    feats[1, :, 20:] = 0
    return feats, torch.tensor([cfg.features.max_frames, 20])


@pytest.fixture(scope="module")
def audio_ckpt(cfg, tmp_path_factory):
    torch.manual_seed(0)
    model = AudioRegressor(cfg).eval()
    directory = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "audio", model, cfg,
                                {"epoch": 3, "metrics": {"rmse": 0.5}, "data_fingerprint": "abc"})
    return directory, model


def test_round_trip_restores_the_model_and_records_its_provenance(cfg, audio_ckpt):
    directory, model = audio_ckpt
    assert sorted(p.name for p in directory.iterdir()) == sorted([WEIGHTS_FILE, META_FILE])
    rebuilt = build_from_checkpoint(directory, expect_stage="audio")
    assert not rebuilt.training
    feats, lengths = audio_inputs(cfg)
    with torch.no_grad():
        assert torch.equal(rebuilt(feats, lengths)["pred"], model(feats, lengths)["pred"])
    meta = json.loads((directory / META_FILE).read_text())
    assert meta["stage"] == "audio" and meta["num_heads"] == {"audio": 2}
    assert meta["classes"] == cfg.data.classes and meta["config"]["name"] == "tiny"
    assert (meta["epoch"], meta["metrics"], meta["data_fingerprint"]) == (3, {"rmse": 0.5}, "abc")
    assert meta["versions"]["torch"] != "not installed"
    assert len(meta["feature_fingerprint"]) == 12 and len(meta["weights_sha256"]) == 64


def test_classifier_round_trip_keeps_the_faithful_head_reuse(tmp_path):
    cfg = load_config("tiny", DETERMINISTIC + ["models.multimodal.reuse_audio_num_heads=4"])
    torch.manual_seed(0)
    clf = build_classifier("attention_lstm", cfg, AudioRegressor(cfg), TextRegressor(cfg)).eval()
    save_checkpoint(tmp_path, clf, cfg)
    state, meta = load_checkpoint(tmp_path, expect_stage="multimodal")
    assert meta["kind"] == "attention_lstm" and meta["regressors"] is True
    assert meta["num_heads"] == {"multimodal": 2, "audio": 4, "text": 2}
    rebuilt = build_from_checkpoint(tmp_path)
    assert rebuilt.audio_num_heads == 4
    feats, lengths = audio_inputs(cfg)
    states = torch.randn(2, cfg.text.max_length, text_input_dim(cfg))
    mask = torch.ones(2, cfg.text.max_length, dtype=torch.long)
    with torch.no_grad():
        a = clf.forward_raw(feats, lengths, states, mask)["logits"]
        b = rebuilt.forward_raw(feats, lengths, states, mask)["logits"]
    assert torch.equal(a, b)


def tiny_bert(hidden_size: int):
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig(vocab_size=40, hidden_size=hidden_size, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, pad_token_id=1))


def test_a_frozen_encoder_never_enters_checkpoints_and_rebuilds_attach_it(cfg, tmp_path):
    torch.manual_seed(0)
    bert = tiny_bert(text_input_dim(cfg))
    text = TextRegressor(cfg, encoder=bert).eval()
    clf = build_classifier("attention_lstm", cfg, AudioRegressor(cfg), text)
    save_checkpoint(tmp_path / "text", text, cfg)
    save_checkpoint(tmp_path / "multimodal", clf, cfg)
    for stage, plain in (("text", TextRegressor(cfg)),
                         ("multimodal", build_classifier("attention_lstm", cfg, AudioRegressor(cfg),
                                                         TextRegressor(cfg)))):
        state, _ = load_checkpoint(tmp_path / stage, expect_stage=stage)
        assert set(state) == set(plain.state_dict())
        load_into(plain, tmp_path / stage)   # strict, into a model without an encoder
        rebuilt = build_from_checkpoint(tmp_path / stage, encoder=bert)
        text_model = rebuilt if stage == "text" else rebuilt.TextModel
        assert text_model.encoder is bert and set(rebuilt.state_dict()) == set(state)
    ids = torch.tensor([[2, 7, 8, 3] + [1] * (cfg.text.max_length - 4)])
    # Frozen like `text` (the classifier froze it): CPU kernels differ by ~1e-8 otherwise.
    rebuilt = build_from_checkpoint(tmp_path / "text", encoder=bert).requires_grad_(False)
    with torch.no_grad():
        assert torch.equal(rebuilt.forward_tokens(ids, (ids != 1).long())["pred"],
                           text.forward_tokens(ids, (ids != 1).long())["pred"])


def test_baseline_without_regressors_round_trips(cfg, tmp_path):
    model = build_classifier("tensor", cfg)
    save_checkpoint(tmp_path, model, cfg)
    rebuilt = build_from_checkpoint(tmp_path, expect_stage="multimodal")
    assert rebuilt.kind == "tensor" and not rebuilt.has_regressors
    for k, v in model.state_dict().items():
        assert torch.equal(v, rebuilt.state_dict()[k])


def test_failed_save_leaves_the_previous_checkpoint_intact(cfg, audio_ckpt, tmp_path, monkeypatch):
    directory, model = audio_ckpt
    target = tmp_path / "audio"
    save_checkpoint(target, model, cfg)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(target, AudioRegressor(cfg), cfg)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # no temp files left
    load_checkpoint(target)


@pytest.mark.parametrize("damage, message", [
    ("truncate_weights", "does not match meta.json"),
    ("garbage_weights_consistent_meta", "cannot be read as safetensors"),
    ("bad_json", "corrupt JSON"),
    ("no_meta", "meta.json: missing"),
    ("no_weights", "model.safetensors: missing"),
    ("foreign_meta", "not a koemo-checkpoint"),
])
def test_damaged_checkpoints_raise_checkpoint_error(cfg, audio_ckpt, tmp_path, damage, message):
    directory, model = audio_ckpt
    target = save_checkpoint(tmp_path / "c", model, cfg)
    weights, meta = target / WEIGHTS_FILE, target / META_FILE
    if damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "garbage_weights_consistent_meta":
        weights.write_bytes(b"not safetensors at all")
        record = json.loads(meta.read_text())
        record["weights_sha256"] = hashlib.sha256(b"not safetensors at all").hexdigest()
        meta.write_text(json.dumps(record))
    elif damage == "bad_json":
        meta.write_text("{ not json")
    elif damage == "no_meta":
        meta.unlink()
    elif damage == "no_weights":
        weights.unlink()
    elif damage == "foreign_meta":
        meta.write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match=message) as err:
        build_from_checkpoint(target)
    assert str(target) in str(err.value)


def test_missing_directory_and_wrong_stage(audio_ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="directory not found"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="a audio checkpoint, expected a text one"):
        build_from_checkpoint(audio_ckpt[0], expect_stage="text")


def test_weights_that_do_not_fit_the_model_are_reported(audio_ckpt):
    directory, _ = audio_ckpt
    deeper = load_config("tiny", ["models.audio.n_layers=2"])
    with pytest.raises(CheckpointError, match=r"missing: AEBlock1\.AE1\.1\."):
        load_into(AudioRegressor(deeper), directory)
    wider = load_config("tiny", ["models.audio.inner_dim=96"])
    with pytest.raises(CheckpointError, match=r"shape: AEBlock1\.AE1\.0\.ffn\.fc1\.weight"):
        load_into(AudioRegressor(wider), directory)


def test_head_count_mismatch_is_an_error(cfg, audio_ckpt):
    directory, _ = audio_ckpt
    with pytest.raises(CheckpointError, match="audio: saved with 2 heads, model has 4"):
        load_into(AudioRegressor(cfg, num_heads=4), directory)


def test_config_mismatch_is_an_error(audio_ckpt):
    other = load_config("tiny", ["models.audio.rnn_hidden=8"])
    with pytest.raises(CheckpointError, match="does not fit the config: models"):
        build_from_checkpoint(audio_ckpt[0], cfg=other)
    seven = load_config("tiny", ["data.label_policy=seven"])
    with pytest.raises(CheckpointError, match="classes"):
        build_from_checkpoint(audio_ckpt[0], cfg=seven)


def test_training_state_resumes_optimizer_scheduler_and_rngs(cfg, tmp_path):
    torch.manual_seed(0)
    model = TextRegressor(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    states = torch.randn(2, cfg.text.max_length, text_input_dim(cfg))
    mask = torch.ones(2, cfg.text.max_length)
    for _ in range(2):
        optimizer.zero_grad()
        model(states, mask)["pred"].square().mean().backward()
        optimizer.step()
        scheduler.step()
    path = save_training_state(tmp_path, optimizer, scheduler, epoch=2, best=0.25,
                               extra={"bad_epochs": 1})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    fresh_scheduler = torch.optim.lr_scheduler.ExponentialLR(fresh, gamma=0.8)
    state = load_training_state(tmp_path, fresh, fresh_scheduler)
    assert (state["epoch"], state["best"], state["extra"]) == (2, 0.25, {"bad_epochs": 1})
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()
    for group_state, original in zip(fresh.state.values(), optimizer.state.values()):
        assert torch.equal(group_state["exp_avg"], original["exp_avg"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected

    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(tmp_path)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_training_state(tmp_path / "elsewhere")
