"""Reads of `fixes.*` switches and data policies that no other test pinned: each test fails when
that one read is ignored (tests/test_switch_reads.py lists every read and the test for it)."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from koemo.config.load import with_changes
import torch

from koemo.config.load import load_config
from koemo.errors import CheckpointError
from koemo.modeling import AudioRegressor, EmoClassifier, TextRegressor
from tests.builders import regressors, sections

# Attention masks that really mask, deterministic eval: only last_valid_step is left to decide.
MASKED = ["fixes.eval_attention_dropout_off=true", "fixes.text_padding_mask=true",
          "fixes.length_padding_mask=true"]


def with_fix(cfg, name: str, value=True):
    return with_changes(cfg, {"fixes": {name: value}})


# ----------------------------------------------------------------------------- prediction

@pytest.fixture(scope="module")
def predictor(tiny_workdir, tiny_config):
    """Untrained tiny models: these reads shape the inputs and notes, not the weights."""
    from koemo.inference.predictor import Predictor
    from koemo.dataset.labels import classes_for
    from koemo.text.encoder import open_text_pipeline

    cfg = tiny_config
    text = open_text_pipeline(cfg, tiny_workdir)
    audio_model, text_model = regressors(cfg)
    return Predictor(audio_model, text_model, EmoClassifier(*sections(cfg), audio_model, text_model),
                     text.tokenizer, text.encoder, cfg, classes_for(cfg.data.label_policy))


@pytest.fixture(scope="module")
def short_utterance(tiny_workdir, predictor):
    """The shortest tiny utterance: shorter than the model's window, so it is padded."""
    table = pd.read_parquet(tiny_workdir / "utterances.parquet")
    row = table.sort_values("duration").iloc[0]
    assert row["duration"] < predictor.window_seconds
    return row["wav_path"], row["text_raw"]


@pytest.mark.parametrize("fixed", [False, True])
def test_predictor_pads_like_training_reads_the_store(predictor, short_utterance, fixed):
    """fixes.db_floor_padding: training reads padding frames at -top_db (FeatureStore.get), so
    prediction must too, or the two are out of step; faithful padding stays 0 dB."""
    floor = -float(predictor.cfg.features.top_db)
    faithful_cfg = predictor.cfg
    predictor.cfg = with_fix(faithful_cfg, "db_floor_padding", fixed)
    try:
        item = predictor._prepare(short_utterance[0], short_utterance[1])
        ((feats, lengths),) = list(item.frames.chunks(1))     # the one window, as scored
    finally:
        predictor.cfg = faithful_cfg
    (valid,) = lengths
    padding = feats[0, :, valid:]
    assert padding.size and np.all(padding[0] == (floor if fixed else 0.0))
    assert np.all(padding[1] == 0.0)                     # the delta channel is never floored
    assert np.all(feats[0, 0, :valid] > floor - 1)  # real frames untouched


@pytest.mark.parametrize("fixed", [False, True])
def test_predictor_notes_a_random_draw_only_without_the_dropout_fix(predictor, short_utterance, fixed):
    from koemo.inference.predictor import Predictor

    p = predictor
    cfg = with_fix(p.cfg, "eval_attention_dropout_off", fixed)
    other = Predictor(p.audio_model, p.text_model, p.classifier, p.tokenizer, p.encoder, cfg, p.classes)
    notes = other._prepare(short_utterance[0], short_utterance[1]).notes
    assert other.random_in_eval is not fixed
    assert any("outputs are one draw" in note for note in notes) is not fixed


def card_for(exported_predictor_dir, change) -> str:
    from koemo.inference.hub import model_card
    from koemo.inference.manifest import read_manifest
    from koemo.modeling.checkpoint import read_meta

    manifest = read_manifest(exported_predictor_dir)
    metas = {stage: read_meta(exported_predictor_dir / manifest["stages"][stage])
             for stage in ("audio", "text", "multimodal")}
    change(metas["multimodal"]["config"])
    return model_card("someone/tiny", manifest, metas, {})


def test_model_card_says_inference_is_deterministic_with_the_dropout_fix(exported_predictor_dir):
    card = card_for(exported_predictor_dir,
                    lambda cfg: cfg["fixes"].update(eval_attention_dropout_off=True))
    assert "## Inference is deterministic" in card and "## Inference is a random draw" not in card


def test_model_card_names_the_label_policy(exported_predictor_dir):
    card = card_for(exported_predictor_dir, lambda cfg: cfg["data"].update(label_policy="seven"))
    assert "| label policy | seven |" in card


# ----------------------------------------------------------------------------- models

@pytest.mark.parametrize("fixed", [False, True])
def test_classifier_lstm_ignores_trailing_padding_only_with_last_valid_step(fixed):
    """The classifier's own LSTM read (AttentionLSTMHead.classify), apart from the regressors':
    text padding content after the last valid step reaches the logits only when the LSTM reads
    the last (padding) step, as the original did."""
    cfg = load_config("tiny", MASKED + [f"fixes.last_valid_step={str(fixed).lower()}"])
    torch.manual_seed(0)
    clf = EmoClassifier(*sections(cfg), *regressors(cfg)).eval()
    d_model, gen = cfg.models.d_model, torch.Generator().manual_seed(0)
    audio = torch.randn(2, 6, d_model, generator=gen)
    audio_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    text = torch.randn(2, 5, d_model, generator=gen)
    text_mask = torch.tensor([[1] * 3 + [0] * 2, [1] * 2 + [0] * 3])
    other = text.clone()
    other[text_mask == 0] = torch.randn(int((text_mask == 0).sum()), d_model, generator=gen)
    with torch.no_grad():
        same = torch.allclose(clf(audio, audio_mask, text, text_mask)["logits"],
                              clf(audio, audio_mask, other, text_mask)["logits"], atol=1e-6)
    assert same == fixed


def test_the_seven_label_policy_gives_seven_logits():
    cfg = load_config("tiny", ["data.label_policy=seven"])
    clf = EmoClassifier(*sections(cfg), *regressors(cfg))
    assert clf.fc.out_features == 7


def test_checkpoints_record_and_check_their_own_label_policy(tmp_path):
    from koemo.modeling.checkpoint import build_from_checkpoint, read_meta, save_checkpoint

    paper5, seven = load_config("tiny"), load_config("tiny", ["data.label_policy=seven"])
    torch.manual_seed(0)
    saved = save_checkpoint(tmp_path / "seven", AudioRegressor(seven.models, seven.fixes), seven)
    assert len(read_meta(saved)["classes"]) == 7
    build_from_checkpoint(saved, cfg=seven)                      # its own policy fits
    with pytest.raises(CheckpointError, match="classes"):
        build_from_checkpoint(saved, cfg=paper5)
    five = save_checkpoint(tmp_path / "paper5", AudioRegressor(paper5.models, paper5.fixes), paper5)
    with pytest.raises(CheckpointError, match="classes"):
        build_from_checkpoint(five, cfg=seven)


def test_a_classifier_run_names_and_targets_the_seven_classes_of_its_policy():
    """data.classes (the shipped configs list the paper's five) is not the class list under
    label_policy seven: a run's checkpoints, scores and soft targets use the policy's seven."""
    from koemo.modeling.data import classifier_target
    from koemo.modeling.stage import StageJob, regressor_forward
    from koemo.modeling.train import checkpoint_meta

    cfg = load_config("tiny", ["data.label_policy=seven", "train.multimodal.target=soft"])
    assert len(cfg.data.classes) == 5
    rows = pd.DataFrame({"label_id": [6, 0], "rater01_emotion": ["fear", "neutral"],
                         "rater02_emotion": ["fear", "sad"]})
    target = classifier_target(rows, cfg)
    assert target.shape == (2, 7) and target[0, 6] == 1.0 and target[1, :2].tolist() == [0.5, 0.5]
    job = StageJob("multimodal", torch.nn.Linear(1, 1), {}, {}, regressor_forward)
    meta = checkpoint_meta(job, cfg, seed=1, epoch=1, metrics={}, classifier_kind="attention_lstm")
    assert meta["classes"][5:] == ["disgust", "fear"]


# ----------------------------------------------------------------------------- evaluation

@pytest.mark.parametrize("fixed,which", [(False, "last"), (True, "best")])
def test_evaluate_scores_the_checkpoint_the_test_rule_names(tmp_path, fixed, which):
    """`koemo evaluate RUN` follows fixes.test_best_checkpoint as train's test scoring does."""
    from koemo.modeling.evaluate import resolve_checkpoint

    cfg = load_config("tiny", [f"fixes.test_best_checkpoint={str(fixed).lower()}"])
    for name in ("best", "last"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")
    assert resolve_checkpoint(tmp_path, cfg) == (tmp_path / which, cfg)


# ----------------------------------------------------------------------------- data and figures

def test_prepare_report_names_the_label_policy_it_applied(tiny_corpus, tiny_config, tmp_path):
    from koemo.dataset.prepare import prepare

    seven = with_changes(tiny_config, {"data": {"label_policy": "seven"}})
    report = prepare(tiny_corpus, tmp_path / "w", seven, progress=False, features=False).report
    assert report["label_policy"] == "seven"


@pytest.mark.parametrize("fixed", [False, True])
def test_augmentation_figure_masks_as_training_does(tiny_workdir, tiny_config, tmp_path,
                                                    monkeypatch, fixed):
    from koemo.dataset import augment
    from koemo.reporting.plots import augmentation_examples

    seen = []
    real = augment.frequency_mask
    monkeypatch.setattr(augment, "frequency_mask",
                        lambda *a, spectrogram_only=False, **k: seen.append(spectrogram_only)
                        or real(*a, spectrogram_only=spectrogram_only, **k))
    augmentation_examples(tiny_workdir, with_fix(tiny_config, "mask_spectrogram_only", fixed),
                          tmp_path / "aug.png")
    assert seen == [fixed] and (tmp_path / "aug.png").is_file()
