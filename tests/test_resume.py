"""Colab across sessions: a `koemo reproduce` killed mid-training resumes to the same tables,
and relative WORKDIR/OUT never silently land in a folder a disconnect wipes."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from koemo.config import assets
from koemo.reporting import notebook

# paper protocol only, one worker, 4 audio epochs: two audio runs (faithful, corrected) + the
# ablation at the config's own depth, which reuses the faithful run.
OVERRIDES = ["reproduce.protocols=[paper]", "reproduce.parallel_runs=1", "train.audio.epochs=4"]
SCRIPT = ("import sys; from koemo.reporting.reproduce import reproduce; "
          "reproduce('tiny', sys.argv[1], sys.argv[2], synthetic=True, overrides=sys.argv[3:], "
          "only=['1-1', '2-1'])")


def _reproduce(workdir: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(workdir), str(out), *OVERRIDES],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)   # its own process group: kernel included


@pytest.mark.slow
def test_reproduce_killed_mid_training_resumes_to_the_same_tables(tmp_path):
    killed_work, killed_out = tmp_path / "killed" / "work", tmp_path / "killed" / "paper"
    fresh = _reproduce(tmp_path / "fresh" / "work", tmp_path / "fresh" / "paper")  # meanwhile
    proc = _reproduce(killed_work, killed_out)
    state = killed_work / "runs" / "paper" / "tiny" / "audio" / "seed1" / "state" / "training_state.pt"
    deadline = time.monotonic() + 600
    while not state.is_file():      # first epoch of the first run written: training under way
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)      # as a runtime disconnect: no cleanup runs
    proc.wait()
    run_dir = state.parent.parent
    assert not (run_dir / "test_metrics.json").is_file(), "killed too late: the run had finished"

    again = _reproduce(killed_work, killed_out)
    log = again.communicate(timeout=900)[0]
    assert again.returncode == 0, log[-3000:]
    log = fresh.communicate(timeout=900)[0]
    assert fresh.returncode == 0, log[-3000:]

    import json
    epochs = json.loads((run_dir / "log.json").read_text())
    assert [row["epoch"] for row in epochs] == [1, 2, 3, 4]
    tables = sorted(p.name for p in (tmp_path / "fresh" / "paper" / "tables").iterdir())
    assert any(name.startswith("audio_") for name in tables)
    assert any(name.startswith("data_") for name in tables)
    assert sorted(p.name for p in (killed_out / "tables").iterdir()) == tables
    for name in tables:      # every table, byte for byte
        assert (killed_out / "tables" / name).read_bytes() == \
            (tmp_path / "fresh" / "paper" / "tables" / name).read_bytes(), name


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
    from koemo.modeling.runs import resume_fingerprint

    from koemo.config.load import with_changes

    other = with_changes(tiny_config, {"train": {
        stage: {"epochs": getattr(tiny_config.train, stage).epochs + 5}
        for stage in ("audio", "text", "multimodal")}})
    assert all(resume_fingerprint(other, s) == resume_fingerprint(tiny_config, s)
               for s in ("audio", "text", "multimodal"))
    other = with_changes(other, {"train": {"audio": {"lr": 0.5}}})
    assert resume_fingerprint(other, "audio") != resume_fingerprint(tiny_config, "audio")
