"""Per-batch trimming of time padding (train.trim_padding): only where padding is masked and no
dropout draw depends on the padded shape, and then the same results to <= 1e-6."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from koemo.config.load import load_config, with_changes
from koemo.errors import KoemoInputError
from koemo.experiments.plan import corrected
from koemo.modeling import trim
from koemo.modeling.train import train_stage
from koemo.modeling.stage import cached_forward, regressor_forward
from tests.builders import regressors, sections

# Trimming changes nothing in exact arithmetic; in float32 a shorter tensor can take other
# kernel blocking and summation order (one AVX-512 EPYC: 1.2e-6 absolute, 7.6e-7 relative on a
# loss of 1.58 after training). A real difference (padding read, a wrong length) is far larger.
TOL = 1e-6
RTOL = 1e-5


def _corrected(*overrides) -> dict:
    return corrected(load_config("tiny", list(overrides)))


def test_faithful_padding_is_never_trimmed():
    cfg = load_config("tiny", ["models.audio.dropout=0", "models.text.dropout=0",
                               "models.multimodal.dropout=0"])
    for stage in ("audio", "text", "multimodal"):
        assert trim.trimmed_passes(cfg, stage, cached=True) == {True: False, False: False}


def test_trimmed_where_masked_and_no_dropout_is_drawn():
    cfg = _corrected()                   # dropout 0.1 in training, off in eval
    for stage in ("audio", "text"):
        assert trim.trimmed_passes(cfg, stage) == {True: False, False: True}
    assert trim.trimmed_passes(cfg, "multimodal", cached=True) == {True: False, False: True}
    assert trim.trimmed_passes(cfg, "multimodal", cached=False) == {True: False, False: False}
    assert trim.trimmed_passes(cfg, "multimodal", cached=True, classifier_kind="early") == \
        {True: False, False: False}
    no_dropout = _corrected("models.audio.dropout=0")
    assert trim.trimmed_passes(no_dropout, "audio") == {True: True, False: True}
    off = _corrected("train.trim_padding=false", "models.audio.dropout=0")
    assert trim.trimmed_passes(off, "audio") == {True: False, False: False}
    eval_dropout = with_changes(_corrected(), {"fixes": {"eval_attention_dropout_off": False}})
    assert trim.trimmed_passes(eval_dropout, "text") == {True: False, False: False}
    with pytest.raises(KoemoInputError, match="train.trim_padding"):
        trim.trimmed_passes(_corrected("train.trim_padding=always"), "audio")


def _compare(forward, model, batch, stage, shortened_key):
    model.eval()
    trimmed = trim.trim_batch(batch, stage)
    assert trimmed[shortened_key].shape[1 if stage != "audio" else 2] < \
        batch[shortened_key].shape[1 if stage != "audio" else 2]
    with torch.no_grad():
        full, cut = forward(model, batch, "cpu"), forward(model, trimmed, "cpu")
    assert torch.allclose(full, cut, atol=TOL, rtol=0), (full - cut).abs().max()


def test_trimmed_regressors_predict_the_same():
    from koemo.modeling.models import AudioRegressor, TextRegressor

    cfg = _corrected()
    torch.manual_seed(0)
    frames, bins = cfg.features.max_frames, cfg.features.n_mels
    lengths = torch.tensor([5, 40, 17, 33])
    feats = torch.randn(4, 2, frames, bins)
    _compare(regressor_forward, AudioRegressor(cfg.models, cfg.fixes), {"feats": feats, "lengths": lengths},
             "audio", "feats")
    tokens, width = cfg.text.max_length, cfg.models.text.input_dim
    mask = (torch.arange(tokens)[None] < torch.tensor([3, 9, 12, 7])[:, None]).long()
    states = torch.randn(4, tokens, width)
    _compare(regressor_forward, TextRegressor(cfg.models, cfg.fixes), {"states": states, "attention_mask": mask},
             "text", "states")


def test_trimmed_classifier_predicts_the_same():
    from koemo.modeling.models import AudioRegressor, EmoClassifier, TextRegressor

    cfg = _corrected()
    torch.manual_seed(0)
    model = EmoClassifier(*sections(cfg), *regressors(cfg))
    frames, tokens, d = cfg.features.max_frames, cfg.text.max_length, cfg.models.d_model
    batch = {"audio_hidden": torch.randn(3, frames, d).half(),
             "audio_mask": torch.arange(frames)[None] < torch.tensor([10, 64, 30])[:, None],
             "text_hidden": torch.randn(3, tokens, d).half(),
             "text_mask": torch.arange(tokens)[None] < torch.tensor([4, 11, 0])[:, None]}
    _compare(cached_forward, model, batch, "multimodal", "text_hidden")


def test_a_batch_with_an_empty_row_is_left_whole():
    lengths = torch.tensor([0, 20])
    batch = {"feats": torch.zeros(2, 2, 64, 8), "lengths": lengths}
    assert trim.trim_batch(batch, "audio") is batch


def _train_all(workdir, cfg) -> dict:
    out = {}
    for stage in ("audio", "text", "multimodal"):
        run_dir = train_stage(stage, workdir, cfg, seed=1, progress=False)
        out[stage] = (json.loads((run_dir / "log.json").read_text()),
                      json.loads((run_dir / "test_metrics.json").read_text()),
                      pd.read_parquet(run_dir / "test_predictions.parquet"))
    return out


@pytest.mark.slow
def test_training_with_trimmed_batches_gives_the_same_runs(module_workdir, monkeypatch):
    """Corrected tiny runs without dropout (so training batches are trimmed too): losses,
    metrics and predictions of every stage equal the untrimmed runs' to float32 rounding."""
    cut = []
    real = trim.trim_batch

    def counted(batch, stage):
        out = real(batch, stage)
        cut.append(stage) if out is not batch else None
        return out
    monkeypatch.setattr(trim, "trim_batch", counted)
    base = ["models.audio.dropout=0", "models.text.dropout=0", "models.multimodal.dropout=0",
            "train.audio.batch_size=4"]
    whole = _train_all(module_workdir, _corrected(*base, "train.trim_padding=false", "name=whole"))
    assert not cut
    trimmed = _train_all(module_workdir, _corrected(*base, "name=trimmed"))
    assert set(cut) == {"audio", "text", "multimodal"}
    for stage in ("audio", "text", "multimodal"):
        (log_a, metrics_a, pred_a), (log_b, metrics_b, pred_b) = whole[stage], trimmed[stage]
        for key in ("train_loss", "valid_loss"):
            np.testing.assert_allclose([r[key] for r in log_a], [r[key] for r in log_b], atol=TOL,
                                       rtol=RTOL)
        numbers = [k for k, v in metrics_a.items() if isinstance(v, float)]
        np.testing.assert_allclose([metrics_a[k] for k in numbers], [metrics_b[k] for k in numbers],
                                   atol=TOL, rtol=RTOL)
        assert pred_a["true"].tolist() == pred_b["true"].tolist()
        if stage == "multimodal":
            assert pred_a["pred"].tolist() == pred_b["pred"].tolist()
            probs = [c for c in pred_a.columns if c.startswith("prob_")]
            np.testing.assert_allclose(pred_a[probs].to_numpy(), pred_b[probs].to_numpy(), atol=TOL,
                                       rtol=RTOL)
        else:
            np.testing.assert_allclose(pred_a["pred"], pred_b["pred"], atol=TOL, rtol=RTOL)
