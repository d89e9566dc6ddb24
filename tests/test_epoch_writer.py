"""Epoch files written in the background (train.background_writes): the same run files as
writing them in the training thread, `best/` a copy of `last/` that later epochs leave alone,
and a write error that reaches the training thread."""
from __future__ import annotations

import json

import pytest
import torch

from koemo.config.load import load_config
from koemo.modeling.checkpoint import (checkpoint_snapshot, copy_checkpoint, load_checkpoint,
                                       load_training_state, read_meta, write_checkpoint)
from koemo.modeling.epoch_writer import EpochWriter
from koemo.modeling.models import AudioRegressor
from koemo.modeling.train import train_stage


@pytest.fixture(scope="module")
def workdir(module_workdir):
    return module_workdir


def test_background_writes_give_the_same_run_files(workdir, tmp_path):
    runs = {}
    for setting in ("false", "true"):
        cfg = load_config("tiny", [f"train.background_writes={setting}", "train.audio.epochs=3",
                                   "fixes.eval_attention_dropout_off=true"])
        runs[setting] = train_stage("audio", workdir, cfg, seed=1, out_dir=tmp_path / setting,
                                    progress=False)
    logs = {k: json.loads((run / "log.json").read_text()) for k, run in runs.items()}
    for rows in logs.values():
        for row in rows:
            row.pop("seconds")
    assert logs["false"] == logs["true"] and len(logs["true"]) == 3
    for which in ("best", "last"):
        old, new = (load_checkpoint(run / which) for run in runs.values())
        assert old[1]["epoch"] == new[1]["epoch"]
        assert all(torch.equal(old[0][k], new[0][k]) for k in old[0])
    states = [load_training_state(run / "state", restore_rng=False) for run in runs.values()]
    assert states[0]["epoch"] == states[1]["epoch"] == 3
    assert states[0]["extra"] == states[1]["extra"]


def test_best_is_a_copy_of_last_that_later_epochs_leave_alone(tmp_path):
    cfg = load_config("tiny")
    model = AudioRegressor(cfg.models, cfg.fixes)
    write_checkpoint(tmp_path / "last", checkpoint_snapshot(model, cfg, {"epoch": 1}))
    copy_checkpoint(tmp_path / "last", tmp_path / "best")
    assert read_meta(tmp_path / "best")["epoch"] == 1
    snapshot = checkpoint_snapshot(model, cfg, {"epoch": 2})
    with torch.no_grad():                       # training goes on after the snapshot
        for parameter in model.parameters():
            parameter.add_(1.0)
    write_checkpoint(tmp_path / "last", snapshot)
    best, best_meta = load_checkpoint(tmp_path / "best")
    last, last_meta = load_checkpoint(tmp_path / "last")
    assert (best_meta["epoch"], last_meta["epoch"]) == (1, 2)
    assert all(torch.equal(best[k], last[k]) for k in best)       # weights as at the snapshots
    assert not torch.equal(last[next(iter(last))], model.state_dict()[next(iter(last))])


def test_a_write_error_reaches_the_training_thread():
    def fails():
        raise OSError("disk full")

    writer = EpochWriter(background=True)
    writer.submit(fails)
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    done = []
    with EpochWriter(background=True) as ordered:
        for k in range(5):
            ordered.submit(done.append, k)
    assert done == [0, 1, 2, 3, 4]
