"""Watching a long run: progress events from the training loop, the live lines `koemo
reproduce` prints from them, TensorBoard scalars, and a log free of kernel/loading noise."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from koemo.config.load import load_config
from koemo.modeling.progress import ProgressWatcher, emit, format_seconds, progress_path


def _epoch(run, epoch, **extra):
    return dict(run=run, stage="audio", seed=1, split="paper", config="tiny",
                classifier_kind="attention_lstm", epochs=3, precision="fp32", epoch=epoch,
                train_loss=0.5 / max(epoch, 1), valid_loss=0.6 / max(epoch, 1), seconds=10.0,
                epoch_seconds=10.0, **extra)


def test_watcher_prints_one_line_per_run_update(tmp_path):
    emit(tmp_path, "old", run="before the watcher")             # not shown: written earlier
    out = io.StringIO()
    watcher = ProgressWatcher(progress_path(tmp_path), stream=out, tty=False, prefix="[r] 2-1")
    emit(tmp_path, "plan", runs=2)
    emit(tmp_path, "start", **{**_epoch("runs/a", 0), "epoch": 0})
    emit(tmp_path, "epoch", **_epoch("runs/a", 1))
    emit(tmp_path, "epoch", **{**_epoch("runs/b", 1), "stage": "multimodal"})
    emit(tmp_path, "done", **{**_epoch("runs/a", 2), "stopped_early": True})
    lines = watcher.poll()
    assert out.getvalue().splitlines() == lines and len(lines) == 4
    assert lines[0] == "[r] 2-1 run 1/2 audio paper/tiny seed1 starting, 3 epochs, fp32"
    assert lines[1] == ("[r] 2-1 run 1/2 audio paper/tiny seed1 epoch 1/3 loss 0.5000/0.6000 "
                        "(train/valid) 10.0 s/epoch ETA 20s")
    assert lines[2].startswith("[r] 2-1 run 2/2 multimodal attention_lstm paper/tiny seed1 epoch 1/3")
    assert lines[3] == "[r] 2-1 run 1/2 audio paper/tiny seed1 stopped early after epoch 2/3"
    assert watcher.poll() == []                                 # nothing new


def test_a_frozen_models_pass_and_a_probe_show_as_lines(tmp_path):
    """The foundation study (5-4): an upstream's pass over the utterances is one line per
    report, never a numbered run; a probe is a run named by its system."""
    from koemo.modeling.progress import PassReporter

    out = io.StringIO()
    watcher = ProgressWatcher(progress_path(tmp_path), stream=out, tty=False, prefix="[r] 5-4")
    report = PassReporter(tmp_path, "tiny:wavlm (audio)", every=3600)
    for done in range(0, 41):
        report(done, 40)                         # the start and the end only, at this `every`
    emit(tmp_path, "pass", what="m (zero-shot)", done=10, total=40, seconds=5.0)
    emit(tmp_path, "start", **{**_epoch("runs/p", 0), "stage": "probe", "system": "probe: x (audio)"})
    lines = watcher.poll()
    assert lines[0] == "[r] 5-4 pass tiny:wavlm (audio): 40 utterances, starting"
    assert lines[1].startswith("[r] 5-4 pass tiny:wavlm (audio): 40 utterances done in ")
    assert lines[2] == "[r] 5-4 pass m (zero-shot): 10/40 utterances, 5s, ETA 15s"
    assert lines[3] == "[r] 5-4 run 1/1 probe probe: x (audio) paper/tiny seed1 starting, 3 epochs, fp32"
    assert len(lines) == 4


def test_watcher_waits_for_complete_lines_and_rewrites_on_a_tty(tmp_path):
    path = progress_path(tmp_path)
    out = io.StringIO()
    watcher = ProgressWatcher(path, stream=out, tty=True, prefix="[r]", from_end=False)
    line = json.dumps({"event": "epoch", **_epoch("runs/a", 1)})
    path.write_text(line[:20], encoding="utf-8")                # a line half written
    assert watcher.poll() == []
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line[20:] + "\n" + json.dumps({"event": "epoch", **_epoch("runs/a", 2)}) + "\n")
    assert len(watcher.poll()) == 2
    watcher.stop()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "epoch 2/3" in text.split("\r")[-1]


def test_reproduce_shows_runs_trained_in_a_workdir_inside_its_workdir(tmp_path, tiny_config, capsys):
    """Notebook 5-3 trains in W/cross (koemo.experiments.cross): reproduce's watcher of W shows
    those runs after W's own, numbered on (N grows with each plan); lines written before it
    started stay unread."""
    from koemo.experiments.cross import cross_workdir
    from koemo.modeling.monitor import RunMonitor
    from koemo.reporting.reproduce import progress_watcher

    cross = cross_workdir(tmp_path)
    emit(cross, "epoch", **_epoch("an earlier reproduce's run", 1))
    watcher = progress_watcher(tmp_path, "5-3_cross_corpus")
    emit(tmp_path, "plan", runs=1)
    emit(tmp_path, "epoch", **_epoch(str(tmp_path / "runs/a"), 1))
    emit(cross, "plan", runs=1)
    monitor = RunMonitor(cross, cross / "runs/b", tiny_config, "text", 1, "kemdy19_to_kemdy20",
                         "attention_lstm", "fp32")
    monitor.start(0)
    monitor.epoch({"epoch": 1, "train_loss": 0.5, "valid_loss": 0.6, "seconds": 2.0},
                  [{"seconds": 2.0}])
    monitor.done({"epoch": 1, "stopped_early": False})
    lines = watcher.poll()
    assert capsys.readouterr().out.splitlines() == lines and len(lines) == 4
    assert lines[0].startswith("[koemo reproduce] 5-3_cross_corpus run 1/1 audio paper/tiny")
    assert [line.split(" seed1 ")[0] for line in lines[1:]] == \
        ["[koemo reproduce] 5-3_cross_corpus run 2/2 text kemdy19_to_kemdy20/tiny"] * 3
    assert lines[-1].endswith("finished after epoch 1/2")


def test_format_seconds():
    assert [format_seconds(s) for s in (4, 75, 3 * 3600 + 120)] == ["4s", "1m15s", "3h02m"]


@pytest.fixture(scope="module")
def trained(tiny_workdir, tmp_path_factory):
    """One tiny audio stage (2 epochs) with TensorBoard on, in a private workdir."""
    workdir = tmp_path_factory.mktemp("progress") / "work"
    shutil.copytree(tiny_workdir, workdir, ignore=shutil.ignore_patterns("runs", "progress.jsonl"))
    from koemo.modeling.train import train_stage
    cfg = load_config("tiny", ["train.audio.epochs=2", "train.audio.batch_size=64",
                               "train.tensorboard=true", "train.device=cpu"])
    run_dir = train_stage("audio", workdir, cfg, seed=1, progress=False)
    return workdir, run_dir


def test_training_reports_every_epoch_to_the_watcher(trained):
    workdir, run_dir = trained
    out = io.StringIO()
    watcher = ProgressWatcher(progress_path(workdir), stream=out, tty=False, prefix="",
                              from_end=False)
    lines = watcher.poll()
    assert [line.split(" seed1 ")[1].split(" loss")[0] for line in lines] == \
        ["starting, 2 epochs, fp32", "epoch 1/2", "epoch 2/2", "finished after epoch 2/2"]
    assert all(line.startswith("run 1/1 audio paper/tiny seed1") for line in lines)
    assert "ETA" in lines[1] and lines[2].endswith("ETA 0s")
    events = [json.loads(x) for x in progress_path(workdir).read_text().splitlines()]
    assert events[1]["run"] == str(run_dir) and events[1]["train_loss"] > 0


def test_tensorboard_event_file_holds_the_logged_scalars(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir = trained
    files = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"loss/train", "loss/valid", "valid/ccc"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/valid")] == [1, 2]


def test_tensorboard_setting_does_not_change_the_run_identity():
    from koemo.modeling.resume import resume_fingerprint
    on, off = (load_config("tiny", [f"train.tensorboard={v}"]) for v in ("true", "false"))
    assert resume_fingerprint(on, "audio") == resume_fingerprint(off, "audio")


def test_notebook_kernels_leave_no_encryption_warning_in_the_log(tmp_path, capfd):
    import nbformat
    import papermill

    from koemo.reporting.reproduce import run_notebook

    notebook = tmp_path / "n.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), notebook)
    # The warning comes from ipykernel in the kernel process, straight to the shared stderr.
    papermill.execute_notebook(str(notebook), str(tmp_path / "plain.ipynb"), progress_bar=False,
                               kernel_name="python3")
    assert "without encryption" in capfd.readouterr().err     # what a plain start prints
    run_notebook(notebook, tmp_path / "quiet.ipynb", {}, tmp_path)
    assert "without encryption" not in capfd.readouterr().err


def test_loading_the_frozen_encoder_draws_no_progress_bar(tmp_path, capfd):
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    from koemo.text.encoder import load_kobert

    folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32)).save_pretrained(folder)
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    BertModel.from_pretrained(str(folder))
    assert "Loading weights" in capfd.readouterr().err        # transformers' own bar
    model = load_kobert(folder)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()               # the setting is restored
    assert not any(p.requires_grad for p in model.parameters())
