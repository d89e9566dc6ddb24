"""Colab across sessions: relative WORKDIR/OUT never silently land in a folder a disconnect
wipes, and a run killed between its files starts over. (A `koemo reproduce` killed with
SIGKILL mid-training resumes to byte-identical tables: tests/test_interrupted.py.)"""
from pathlib import Path

import pytest

from koemo.config import assets
from koemo.reporting import notebook


def test_relative_paths_follow_the_checkout_koemo_is_installed_from(tmp_path, monkeypatch):
    """Colab: the notebook installs koemo from KOEMO_SOURCE on Drive (editable); relative
    WORKDIR/OUT then land in that checkout, not in /content."""
    monkeypatch.chdir(tmp_path)                           # not a checkout
    checkout = tmp_path / "drive" / "koemo"
    monkeypatch.setattr(assets, "source_checkout", lambda: checkout)
    assert notebook.resolve_path("data/work") == checkout / "data" / "work"
    assert notebook.path_base() == (checkout, "installed checkout")


def test_relative_paths_without_a_checkout_warn_where_they_went(monkeypatch, capsys):
    monkeypatch.setattr(assets, "source_checkout", lambda: None)
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: Path("/content")))
    monkeypatch.setattr(notebook, "_WARNED", set())
    assert notebook.resolve_path("data/work") == Path("/content/data/work")
    err = capsys.readouterr().err
    assert "WARNING: relative path 'data/work' -> /content/data/work" in err
    assert "wiped when the Colab runtime disconnects" in err
    notebook.resolve_path("data/work")                    # once per path
    assert capsys.readouterr().err == ""
    assert notebook.resolve_path("/abs/out") == Path("/abs/out")


def test_kill_between_weights_and_state_trains_the_run_again(tiny_workdir, tmp_path, monkeypatch):
    """Killed after `last/` holds epoch 2 but before the state says so: resuming would train
    epoch 2 twice; the run starts over instead and ends as the uninterrupted one."""
    import json
    import shutil

    import numpy as np
    from safetensors.numpy import load_file

    from koemo.config.load import load_config
    from koemo.modeling import train as T

    work = tmp_path / "work"
    shutil.copytree(tiny_workdir, work, ignore=shutil.ignore_patterns("runs"))
    cfg = load_config("tiny", ["train.audio.epochs=2", "fixes.eval_attention_dropout_off=true"])
    whole = T.train_stage("audio", work, cfg, seed=1, out_dir=tmp_path / "whole", progress=False)

    real = T.write_counters

    def killed_at_epoch_two(run_dir, optimizer, scheduler, counters, *args):
        if counters["epoch"] == 2:
            raise KeyboardInterrupt            # as a kill right after last/ was saved
        real(run_dir, optimizer, scheduler, counters, *args)

    monkeypatch.setattr(T, "write_counters", killed_at_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        T.train_stage("audio", work, cfg, seed=1, out_dir=tmp_path / "again", progress=False)
    monkeypatch.setattr(T, "write_counters", real)
    again = T.train_stage("audio", work, cfg, seed=1, out_dir=tmp_path / "again", progress=False)

    metrics = [json.loads((d / "test_metrics.json").read_text()) for d in (whole, again)]
    assert metrics[0]["rmse"] == metrics[1]["rmse"]
    weights = [load_file(str(next((d / "last").glob("*.safetensors")))) for d in (whole, again)]
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_epoch_budgets_are_not_part_of_a_runs_identity(tiny_config):
    """More epochs for any stage later (or fewer for another stage) resume the same runs."""
    from koemo.modeling.resume import resume_fingerprint

    from koemo.config.load import with_changes

    other = with_changes(tiny_config, {"train": {
        stage: {"epochs": getattr(tiny_config.train, stage).epochs + 5}
        for stage in ("audio", "text", "multimodal")}})
    assert all(resume_fingerprint(other, s) == resume_fingerprint(tiny_config, s)
               for s in ("audio", "text", "multimodal"))
    other = with_changes(other, {"train": {"audio": {"lr": 0.5}}})
    assert resume_fingerprint(other, "audio") != resume_fingerprint(tiny_config, "audio")
