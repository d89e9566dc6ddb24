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
from tests.builders import regressors, sections

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
    model = AudioRegressor(cfg.models, cfg.fixes).eval()
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
    clf = build_classifier("attention_lstm", *sections(cfg), *regressors(cfg)).eval()
    save_checkpoint(tmp_path, clf, cfg)
    state, meta = load_checkpoint(tmp_path, expect_stage="multimodal")
    assert meta["kind"] == "attention_lstm" and meta["regressors"] is True
    assert meta["num_heads"] == {"multimodal": 2, "audio": 4, "text": 2}
    rebuilt = build_from_checkpoint(tmp_path)
    assert rebuilt.audio_num_heads == 4
    feats, lengths = audio_inputs(cfg)
    states = torch.randn(2, cfg.text.max_length, text_input_dim(cfg.models))
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
    bert = tiny_bert(text_input_dim(cfg.models))
    text = TextRegressor(cfg.models, cfg.fixes, encoder=bert).eval()
    clf = build_classifier("attention_lstm", *sections(cfg), AudioRegressor(cfg.models, cfg.fixes), text)
    save_checkpoint(tmp_path / "text", text, cfg)
    save_checkpoint(tmp_path / "multimodal", clf, cfg)
    for stage, plain in (("text", TextRegressor(cfg.models, cfg.fixes)),
                         ("multimodal", build_classifier("attention_lstm", *sections(cfg),
                                                         *regressors(cfg)))):
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
    model = build_classifier("tensor", *sections(cfg))
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
        save_checkpoint(target, AudioRegressor(cfg.models, cfg.fixes), cfg)
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
        load_into(AudioRegressor(deeper.models, deeper.fixes), directory)
    wider = load_config("tiny", ["models.audio.inner_dim=96"])
    with pytest.raises(CheckpointError, match=r"shape: AEBlock1\.AE1\.0\.ffn\.fc1\.weight"):
        load_into(AudioRegressor(wider.models, wider.fixes), directory)


def test_head_count_mismatch_is_an_error(cfg, audio_ckpt):
    directory, _ = audio_ckpt
    with pytest.raises(CheckpointError, match="audio: saved with 2 heads, model has 4"):
        load_into(AudioRegressor(cfg.models, cfg.fixes, num_heads=4), directory)


def test_config_mismatch_is_an_error(audio_ckpt):
    other = load_config("tiny", ["models.audio.rnn_hidden=8"])
    with pytest.raises(CheckpointError, match="does not fit the config: models"):
        build_from_checkpoint(audio_ckpt[0], cfg=other)
    seven = load_config("tiny", ["data.label_policy=seven"])
    with pytest.raises(CheckpointError, match="classes"):
        build_from_checkpoint(audio_ckpt[0], cfg=seven)


def test_training_state_resumes_optimizer_scheduler_and_rngs(cfg, tmp_path):
    torch.manual_seed(0)
    model = TextRegressor(cfg.models, cfg.fixes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    states = torch.randn(2, cfg.text.max_length, text_input_dim(cfg.models))
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


# Survivors of mutation testing (benchmarks/results/2026-12-02-mutation-checkpoint.json), named
# by their mutmut ids (x_<function>__mutmut_<n>).

META_KEYS = {"format", "stage", "kind", "regressors", "classes", "num_heads", "config_name",
             "config_fingerprint", "feature_fingerprint", "data_fingerprint", "epoch", "metrics",
             "versions", "saved_at", "config", "weights_sha256"}


def test_meta_json_holds_exactly_the_documented_entries(tmp_path):
    """What a checkpoint saved without `meta` records, read by predictors, reports and the
    hub; the safetensors header says format pt (transformers refuses files without it).
    checkpoint_snapshot 19/20/51-54/59-64/67/68 (renamed keys), 40 (an audio model recorded
    with regressors), 45/47 (configured classes ignored), 55 (fingerprint of None), 70 (local
    time without a zone); _weights_bytes 2, 4-10; write_checkpoint 3/5/7 (no parents made),
    35/39 (a Path in meta is not JSON)."""
    import datetime as dt

    from safetensors import safe_open

    from koemo.config.fingerprints import fingerprint
    three = load_config("tiny", DETERMINISTIC + ["data.classes=[neutral,happy,sad]"])
    directory = save_checkpoint(tmp_path / "runs" / "r1" / "audio", AudioRegressor(three.models, three.fixes), three,
                                {"source": tmp_path / "elsewhere"})
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    assert set(meta) == META_KEYS | {"source"}
    assert (meta["stage"], meta["kind"], meta["regressors"]) == ("audio", None, False)
    assert meta["classes"] == ["neutral", "happy", "sad"]
    assert (meta["config_name"], meta["config_fingerprint"]) == ("tiny", fingerprint(three))
    assert (meta["data_fingerprint"], meta["epoch"], meta["metrics"]) == (None, None, {})
    assert dt.datetime.fromisoformat(meta["saved_at"]).utcoffset() == dt.timedelta(0)
    assert meta["source"] == str(tmp_path / "elsewhere")
    with safe_open(directory / WEIGHTS_FILE, framework="pt") as fh:
        assert fh.metadata() == {"format": "pt", "koemo_stage": "audio"}


def test_a_meta_stage_that_contradicts_the_model_is_refused(cfg, tmp_path):
    """checkpoint_snapshot 6/10/11 (the check reads another key: meta's stage would overwrite
    the record's), 13-15 (no message, or a KeyError building it)."""
    with pytest.raises(ValueError, match="meta says stage 'text' but the model is a audio model"):
        save_checkpoint(tmp_path, AudioRegressor(cfg.models, cfg.fixes), cfg, {"stage": "text"})
    assert not (tmp_path / META_FILE).exists()


def test_a_snapshot_does_not_share_memory_with_the_model(cfg):
    """Background writers save a snapshot while training updates the weights in place.
    cpu_copy 4/7 (`.to("cpu")` without copy=True returns the CPU tensor itself)."""
    from koemo.modeling.checkpoint import checkpoint_snapshot
    model = AudioRegressor(cfg.models, cfg.fixes)
    snapshot = checkpoint_snapshot(model, cfg)
    before = {k: v.clone() for k, v in snapshot["state"].items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert all(torch.equal(snapshot["state"][k], v) for k, v in before.items())


def test_copy_checkpoint_into_a_new_nested_and_then_an_existing_directory(audio_ckpt, tmp_path):
    """copy_checkpoint 4 (no parents made), 5 (an existing directory refused)."""
    from koemo.modeling.checkpoint import copy_checkpoint
    source, _ = audio_ckpt
    target = tmp_path / "run" / "best"
    for _ in range(2):
        copy_checkpoint(source, target)
        assert load_checkpoint(target)[1] == load_checkpoint(source)[1]


def test_saved_config_warns_about_keys_of_another_version(cfg):
    """saved_config 13/15 (the note lost, or warn() without a message), 3/4 (a typed config
    in meta looked up under another key)."""
    from koemo.config.fingerprints import written_config
    from koemo.modeling.checkpoint import saved_config
    assert saved_config({"config": cfg}) is cfg
    written = written_config(cfg)
    written["train"] = {**written["train"], "from_the_future": 1}
    with pytest.warns(UserWarning, match="from_the_future.*ignored"):
        assert saved_config({"config": written}).name == "tiny"


def test_a_pooled_fusion_with_regressors_has_no_fusion_heads(cfg):
    """The regressors' attention is theirs, not the fusion's. model_num_heads 13-15 (the
    TextModel prefix broken: the text regressor's heads counted as the fusion's)."""
    from koemo.modeling.checkpoint import model_num_heads
    model = build_classifier("tensor", *sections(cfg), *regressors(cfg))
    assert model_num_heads(model) == {"multimodal": None, "audio": 2, "text": 2}


def test_a_rebuild_uses_the_recorded_heads_and_the_asked_attention(cfg, tmp_path):
    """Regressors saved with 4 heads (the config says 2) rebuild with 4; attention_impl
    reaches every attention layer, the classifier's regressors included. build_model 8/12/13,
    19/22-25, 32/36-39, 57/61-64 (recorded heads ignored), 21/35/52/60/74 (attention_impl
    dropped)."""
    from koemo.modeling.layers import MultiHeadAttention
    torch.manual_seed(0)
    audio, text = regressors(cfg, num_heads=4)
    clf = build_classifier("attention_lstm", *sections(cfg), AudioRegressor(cfg.models, cfg.fixes),
                           TextRegressor(cfg.models, cfg.fixes, num_heads=4))
    for stage, model in (("audio", audio), ("text", text), ("multimodal", clf)):
        save_checkpoint(tmp_path / stage, model, cfg)
        rebuilt = build_from_checkpoint(tmp_path / stage, attention_impl="manual")
        impls = {m.attention_impl for m in rebuilt.modules() if isinstance(m, MultiHeadAttention)}
        assert impls == {"manual"}, stage
        assert {n: m.num_heads for n, m in rebuilt.named_modules()
                if isinstance(m, MultiHeadAttention)} == \
            {n: m.num_heads for n, m in model.named_modules()
             if isinstance(m, MultiHeadAttention)}, stage
    assert rebuilt.TextModel.num_heads == 4


def test_unknown_stage_and_unbuildable_meta_name_the_problem(cfg, tmp_path):
    """build_model 43, build_from_checkpoint 22 (messages replaced by None)."""
    from koemo.modeling.checkpoint import build_model
    with pytest.raises(CheckpointError, match="unknown checkpoint stage 'foo'"):
        build_model({"stage": "foo", "config": cfg})
    directory = save_checkpoint(tmp_path, build_classifier("tensor", *sections(cfg)), cfg)
    meta = json.loads((directory / META_FILE).read_text())
    (directory / META_FILE).write_text(json.dumps({**meta, "kind": "nope"}))
    with pytest.raises(CheckpointError, match="cannot rebuild the model from meta.json") as err:
        build_from_checkpoint(directory)
    assert str(directory) in str(err.value)


def test_load_into_checks_stage_config_heads_and_keys_naming_the_directory(cfg, audio_ckpt,
                                                                           tmp_path):
    """Every CheckpointError names the checkpoint (the module's contract). load_into 3/5 (no
    stage check), 8-13 (check_config called wrongly), 16/22 and build_from_checkpoint
    11/25/31 (None for the directory); load_weights 7/21/22 (unexpected keys unreported)."""
    from safetensors.torch import save_file
    directory, model = audio_ckpt
    text_dir = save_checkpoint(tmp_path / "text", TextRegressor(cfg.models, cfg.fixes), cfg)
    with pytest.raises(CheckpointError, match="a text checkpoint, expected a audio one"):
        load_into(AudioRegressor(cfg.models, cfg.fixes), text_dir)
    assert load_into(AudioRegressor(cfg.models, cfg.fixes), directory, cfg)["stage"] == "audio"
    other = load_config("tiny", ["models.audio.rnn_hidden=8"])
    wrong_heads = AudioRegressor(cfg.models, cfg.fixes, num_heads=4)
    shallower = load_config("tiny", ["models.audio.n_layers=2"])
    for call in (lambda: load_into(AudioRegressor(other.models, other.fixes), directory, other),
                 lambda: build_from_checkpoint(directory, cfg=other),
                 lambda: load_into(wrong_heads, directory),
                 lambda: load_into(AudioRegressor(shallower.models, shallower.fixes), directory)):
        with pytest.raises(CheckpointError) as err:
            call()
        assert str(err.value).startswith(f"{directory}: "), str(err.value)
    # A state with one key too many: reported as unexpected, not left to torch's own error.
    extra = tmp_path / "extra"
    extra.mkdir()
    state = {**model.state_dict(), "stray.weight": torch.zeros(1)}
    save_file(state, extra / WEIGHTS_FILE)
    meta = json.loads((directory / META_FILE).read_text())
    meta["weights_sha256"] = hashlib.sha256((extra / WEIGHTS_FILE).read_bytes()).hexdigest()
    (extra / META_FILE).write_text(json.dumps(meta))
    for call in (lambda: load_into(AudioRegressor(cfg.models, cfg.fixes), extra),
                 lambda: build_from_checkpoint(extra)):
        with pytest.raises(CheckpointError, match=r"unexpected: stray\.weight") as err:
            call()
        assert str(err.value).startswith(f"{extra}: ")


class NotAllowed:
    """Not on torch's weights_only allowlist: loading it would run arbitrary pickle code."""


def test_training_state_edges(cfg, tmp_path):
    """load_training_state 25 (the optimizer not loaded), 29 (a saved scheduler loaded into
    None), 18/24 (a dict without the format), 16 (weights_only off), 37 (the mismatch error
    without the file); save_training_state 10 (the given RNG state replaced by the current)."""
    from koemo.modeling.checkpoint import CHECKPOINT_FORMAT, capture_rng_state
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    rng = capture_rng_state()
    torch.rand(3)                                       # the global state moves on
    save_training_state(tmp_path, optimizer, scheduler, epoch=1, rng_state=rng)
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = load_training_state(tmp_path, fresh, restore_rng=False)   # no scheduler given
    assert len(fresh.state) == len(optimizer.state) == 2
    assert torch.equal(state["rng"]["torch"], rng["torch"])

    with pytest.raises(CheckpointError, match="does not fit this optimizer") as err:
        load_training_state(tmp_path, torch.optim.Adam([torch.zeros(1, requires_grad=True)]))
    assert str(tmp_path) in str(err.value)

    path = tmp_path / "training_state.pt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="not a koemo training state"):
        load_training_state(tmp_path)
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": 1, "best": None, "extra": {}, "rng": rng,
                "optimizer": None, "scheduler": None, "payload": NotAllowed()}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(tmp_path, restore_rng=False)


def test_configured_classes_are_compared_on_both_sides(cfg):
    """Same label policy, other classes: a different classifier head. config_differences
    21/23/28/31/32 (the checkpoint's classes read as the default), 35/37/42/45/46 (the
    config's)."""
    from koemo.modeling.checkpoint import check_config
    three = load_config("tiny", ["data.classes=[neutral,happy,sad]"])
    for saved, asked in ((three, cfg), (cfg, three)):
        with pytest.raises(CheckpointError, match=r"x: checkpoint does not fit the config: "
                                                  r"classes: checkpoint \[.*\] vs config"):
            check_config({"config": saved}, asked, "x")
    check_config({"config": three}, load_config("tiny", ["data.classes=[neutral,happy,sad]"]), "x")


# --- mutation survivors of 2026-12-03 (checkpoint.py) -------------------------------------

def test_copy_checkpoint_copies_where_hard_links_are_refused(audio_ckpt, tmp_path, monkeypatch):
    """copy_checkpoint 19-23 (the copyfile fallback given no source, no or a missing target,
    or a `*` path): where os.link fails (a FUSE-mounted Drive) the files are copied, and the
    copy loads as the same checkpoint with the same weights."""
    from koemo.modeling.checkpoint import copy_checkpoint

    def no_links(src, dst):
        raise OSError("hard links not supported here")

    source, _ = audio_ckpt
    monkeypatch.setattr(os, "link", no_links)
    target = copy_checkpoint(source, tmp_path / "best")
    assert sorted(p.name for p in target.iterdir()) == sorted([WEIGHTS_FILE, META_FILE])
    (state, meta), (want_state, want_meta) = load_checkpoint(target), load_checkpoint(source)
    assert meta == want_meta and state.keys() == want_state.keys()
    assert all(torch.equal(state[k], want_state[k]) for k in state)
    assert os.stat(target / WEIGHTS_FILE).st_ino != os.stat(source / WEIGHTS_FILE).st_ino


def test_a_meta_without_head_counts_is_a_checkpoint_error(cfg, audio_ckpt, tmp_path):
    """check_num_heads 3/5 and build_model 9/11 (a missing `num_heads` read as None, so
    None.get raises AttributeError): a meta.json without head counts is refused with a
    CheckpointError naming the directory, by load_into and by build_from_checkpoint alike."""
    from koemo.modeling.checkpoint import copy_checkpoint
    source, _ = audio_ckpt
    directory = copy_checkpoint(source, tmp_path / "edited")
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    del meta["num_heads"]
    (directory / META_FILE).unlink()                    # a hard link: do not edit the source
    (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(CheckpointError, match="head count mismatch") as err:
        load_into(AudioRegressor(cfg.models, cfg.fixes), directory)
    assert str(directory) in str(err.value)
    with pytest.raises(CheckpointError, match="head count mismatch"):
        build_from_checkpoint(directory, expect_stage="audio")
    assert "num_heads" in json.loads((source / META_FILE).read_text(encoding="utf-8"))


@pytest.mark.parametrize("n_missing, listed, more", [
    (1, 1, ""), (5, 5, ""), (6, 5, " (+1 more)"), (8, 5, " (+3 more)")])
def test_a_weights_error_lists_five_keys_and_counts_the_rest(n_missing, listed, more):
    """load_weights 25-32 and 36 (the "+N more" suffix dropped, always or never added, miscounted
    or its threshold moved; six keys listed), 35/39 (the keys' separator, the model's name):
    the error names the model and the first five missing keys and says exactly how many more
    there are."""
    from koemo.modeling.checkpoint import load_weights
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2, bias=False) for _ in range(8)])
    state = model.state_dict()
    keys = sorted(state)
    for key in keys[:n_missing]:
        del state[key]
    with pytest.raises(CheckpointError) as err:
        load_weights(model, state, "src")
    assert str(err.value) == ("src: weights do not fit Sequential: missing: "
                              + ", ".join(keys[:listed]) + more)


def test_training_state_nested_dir_no_scheduler_and_a_frozen_extra(tmp_path):
    """write_training_state 3/5/7 (no parent directories made), training_state_snapshot 15
    (a None scheduler's state_dict asked for), 27 (a shallow copy of `extra`): the state is
    written into a new nested run directory without a scheduler, and a snapshot keeps the
    history as it was when taken while training goes on appending to it."""
    from koemo.modeling.checkpoint import training_state_snapshot, write_training_state
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = {"history": [{"epoch": 1, "rmse": 0.5}], "bad_epochs": 0}
    snapshot = training_state_snapshot(optimizer, None, epoch=1, best=0.5, extra=history)
    history["history"].append({"epoch": 2, "rmse": 0.4})     # training goes on
    history["history"][0]["rmse"] = 9.0
    assert snapshot["extra"] == {"history": [{"epoch": 1, "rmse": 0.5}], "bad_epochs": 0}
    assert snapshot["scheduler"] is None
    directory = tmp_path / "runs" / "tiny" / "last"
    path = write_training_state(directory, snapshot)
    assert path == directory / "training_state.pt" and path.is_file()
    state = load_training_state(directory, torch.optim.SGD(model.parameters(), lr=0.1),
                                restore_rng=False)
    assert (state["epoch"], state["best"]) == (1, 0.5)
    assert state["extra"] == {"history": [{"epoch": 1, "rmse": 0.5}], "bad_epochs": 0}


def test_a_training_state_is_read_weights_only_whatever_the_environment(tmp_path, monkeypatch):
    """load_training_state 10/13 (weights_only left to torch's default): with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set, torch's default turns full unpickling on; the
    explicit weights_only=True keeps a file holding an arbitrary object refused."""
    from koemo.modeling.checkpoint import CHECKPOINT_FORMAT, capture_rng_state
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": 1, "best": None, "extra": {},
                "rng": capture_rng_state(), "optimizer": None, "scheduler": None,
                "payload": NotAllowed()}, tmp_path / "training_state.pt")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_training_state(tmp_path, restore_rng=False)
