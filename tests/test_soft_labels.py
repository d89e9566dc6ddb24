"""`train.multimodal.target: soft`: the classifier learns the raters' label distribution and is
scored on the total label; `hard` (the default) is the paper's target, unchanged."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from koemo.config.load import load_config
from koemo.dataset.raters import soft_targets
from koemo.errors import KoemoInputError
from koemo.modeling import data as D
from koemo.modeling.train import loss_function, train_stage
from koemo.modeling.stage import StageJob, build_stage

ONE_BATCH = [f"train.{stage}.{key}={value}" for stage in ("audio", "text", "multimodal")
             for key, value in (("batch_size", 256), ("epochs", 1))]
SOFT = ["train.multimodal.target=soft"]


@pytest.fixture(scope="module")
def regressors(module_workdir):
    torch.set_num_threads(1)
    cfg = load_config("tiny", ONE_BATCH)
    for stage in ("audio", "text"):
        train_stage(stage, module_workdir, cfg, seed=1, progress=False)
    return module_workdir


@pytest.mark.slow
def test_hard_is_the_default_and_trains_on_class_ids(regressors, tmp_path):
    cfg = load_config("tiny", ONE_BATCH)
    assert D.target_kind(cfg) == "hard" and "target" not in cfg.train.multimodal.as_dict()
    job = build_stage("multimodal", regressors, cfg, 1, run_dir=tmp_path, device=torch.device("cpu"))
    target = job.datasets["train"].target
    assert target.dtype == np.int64
    assert target.tolist() == job.rows["train"]["label_id"].tolist()


@pytest.mark.slow
def test_soft_trains_on_the_raters_distribution(regressors, tmp_path):
    cfg = load_config("tiny", ONE_BATCH + SOFT)
    job = build_stage("multimodal", regressors, cfg, 1, run_dir=tmp_path, device=torch.device("cpu"))
    target = job.datasets["train"].target
    assert target.shape == (len(job.rows["train"]), len(cfg.data.classes))
    np.testing.assert_allclose(target, soft_targets(job.rows["train"], cfg.data.classes))
    assert (target.max(axis=1) < 1).any()          # some rows are not unanimous
    assert job.datasets["test"].target.dtype == np.int64    # evaluation keeps the total label


def test_soft_loss_is_cross_entropy_against_the_distribution():
    unweighted = ["train.multimodal.class_weights=false"]
    cfg_soft, cfg_hard = load_config("tiny", SOFT + unweighted), load_config("tiny", unweighted)
    job = StageJob("multimodal", torch.nn.Linear(1, 1), {}, {}, None, classes=list("abc"))
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    dist = torch.tensor([[0.7, 0.3, 0.0], [0.0, 1.0, 0.0]])
    soft = loss_function(job, cfg_soft, torch.device("cpu"))(logits, dist)
    expected = -(dist * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
    assert float(soft) == pytest.approx(float(expected))
    # one-hot distributions give exactly the hard loss
    hard = loss_function(job, cfg_hard, torch.device("cpu"))(logits, torch.tensor([0, 1]))
    one_hot = loss_function(job, cfg_soft, torch.device("cpu"))(logits, torch.eye(3)[[0, 1]])
    assert float(hard) == pytest.approx(float(one_hot))


@pytest.mark.slow
def test_soft_run_end_to_end_is_scored_on_the_total_label(regressors, tmp_path):
    cfg = load_config("tiny", ONE_BATCH + SOFT)
    run_dir = train_stage("multimodal", regressors, cfg, seed=1, out_dir=tmp_path / "soft",
                          progress=False)
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    predictions = pd.read_parquet(run_dir / "test_predictions.parquet")
    table = pd.read_parquet(regressors / "utterances.parquet").set_index("segment_id")
    assert predictions["true"].tolist() == table.loc[predictions["segment_id"], "label"].tolist()
    assert 0.0 <= metrics["macro_f1"] <= 1.0 and np.isfinite(metrics["loss"])
    log = pd.read_csv(run_dir / "log.csv")
    assert np.isfinite(log["train_loss"]).all()


def test_an_unknown_target_is_a_clear_error():
    with pytest.raises(KoemoInputError, match="train.multimodal.target"):
        D.target_kind(load_config("tiny", ["train.multimodal.target=fuzzy"]))
