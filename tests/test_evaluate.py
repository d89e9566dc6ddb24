"""`koemo evaluate` says what the run said: a run under the faithful config (attention dropout
kept on in eval, so every pass is a random draw) is scored again to its own test_metrics.json,
exactly and on every call; a setting the checkpoint cannot honour is refused in one line, one
it can honour is applied and reported."""
from __future__ import annotations

import json

import pytest

from koemo.cli import main as cli_main
from koemo.config.load import load_config
from koemo.errors import KoemoInputError
from koemo.modeling.evaluate import evaluate
from koemo.modeling.runs import BOOKKEEPING
from koemo.modeling.train import train_stage

STAGES = ("audio", "text", "multimodal")
# One epoch; batches smaller than the test split, so the draw runs over several batches.
ONE_EPOCH = [f"train.{stage}.epochs=1" for stage in STAGES] + \
    [f"train.{stage}.batch_size=8" for stage in STAGES]
# Keys of test_metrics.json that name the run rather than measure it, and the record's own.
RUN_RECORD = {"checkpoint", "epochs_trained", "classifier_kind", "seed", *BOOKKEEPING}


pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def faithful_runs(module_workdir):
    cfg = load_config("tiny", ONE_EPOCH)
    assert not cfg.fixes.eval_attention_dropout_off          # the faithful default: draws in eval
    return {stage: train_stage(stage, module_workdir, cfg, seed=1, progress=False)
            for stage in STAGES}


def saved_metrics(run_dir) -> dict:
    metrics = json.loads((run_dir / "test_metrics.json").read_text(encoding="utf-8"))
    return {k: v for k, v in metrics.items() if k not in RUN_RECORD}


@pytest.mark.parametrize("stage", STAGES)
def test_evaluate_reproduces_the_runs_test_metrics_call_after_call(faithful_runs, module_workdir,
                                                                   stage, capsys):
    run_dir = faithful_runs[stage]
    saved = saved_metrics(run_dir)
    assert saved["scoring_seed"] == 1
    first = evaluate(run_dir, module_workdir)
    assert {k: first[k] for k in saved} == saved          # every metric, exactly
    assert cli_main(["evaluate", "--run", str(run_dir), "--workdir", str(module_workdir)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert {k: second[k] for k in saved} == saved
    assert "settings_changed" not in second


def test_an_eval_switch_is_honoured_and_reported(faithful_runs, module_workdir, capsys):
    """fixes.eval_attention_dropout_off changes how the trained model runs, not what it is:
    honoured (no draw: the same numbers again), and the output says the run's differ."""
    run_dir = faithful_runs["multimodal"]
    args = ["evaluate", "--run", str(run_dir), "--workdir", str(module_workdir),
            "--set", "fixes.eval_attention_dropout_off=true"]
    assert cli_main(args) == 0
    captured = capsys.readouterr()
    off = json.loads(captured.out)
    assert off["settings_changed"] == {
        "fixes.eval_attention_dropout_off": {"checkpoint": False, "evaluated": True}}
    assert "fixes.eval_attention_dropout_off: False -> True" in captured.err
    assert off["loss"] != saved_metrics(run_dir)["loss"]
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == off["loss"]
    # The run's own frozen-output cache (one draw with dropout on) was not overwritten.
    assert evaluate(run_dir, module_workdir)["loss"] == saved_metrics(run_dir)["loss"]


@pytest.mark.parametrize("override, named", [
    ("models.audio.n_layers=3", "models.audio.n_layers=3 (the checkpoint has 1: it shapes the model"),
    ("fixes.last_valid_step=true", "fixes.last_valid_step=True (the checkpoint has False"),
    ("data.fold=2", "data.fold=2 (the checkpoint has 0: it chooses the run's rows"),
    ("train.audio.lr=0.5", "train.audio.lr=0.5 (the checkpoint has "),
])
def test_an_override_the_checkpoint_cannot_honour_is_refused(faithful_runs, module_workdir,
                                                              override, named, capsys):
    run_dir = faithful_runs["audio"]
    with pytest.raises(KoemoInputError, match="cannot evaluate with") as err:
        evaluate(run_dir, module_workdir, overrides=[override])
    assert named in str(err.value) and str(run_dir / "last" / "meta.json") in str(err.value)
    assert cli_main(["evaluate", "--run", str(run_dir), "--workdir", str(module_workdir),
                     "--set", override]) == 1
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_whole_other_config_is_refused_not_silently_replaced(faithful_runs, module_workdir):
    """--config names a config whose model differs: every difference is named, none ignored."""
    with pytest.raises(KoemoInputError, match="models.audio.n_layers=.*models.text.n_layers="):
        evaluate(faithful_runs["audio"], module_workdir,
                 cfg=load_config("tiny", ONE_EPOCH + ["models.audio.n_layers=2",
                                                      "models.text.n_layers=2"]))


def test_batch_size_of_the_scored_stage_is_honoured(faithful_runs, module_workdir):
    """Another batching of the same rows: honoured (another draw), and said to differ."""
    metrics = evaluate(faithful_runs["audio"], module_workdir, overrides=["train.audio.batch_size=4"])
    assert metrics["settings_changed"] == {
        "train.audio.batch_size": {"checkpoint": 8, "evaluated": 4}}
    assert metrics["n"] == saved_metrics(faithful_runs["audio"])["n"]


def test_a_run_scored_before_seeding_is_named(faithful_runs, module_workdir, tmp_path):
    """A run whose test_metrics.json has no scoring_seed (an earlier koemo) cannot be reproduced
    where dropout is drawn: evaluate says so instead of presenting other numbers as its."""
    import shutil

    old = shutil.copytree(faithful_runs["text"], tmp_path / "old")
    path = old / "test_metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({k: v for k, v in metrics.items() if k != "scoring_seed"}))
    notes = evaluate(old, module_workdir)["notes"]
    assert notes == [f"{path} was scored before koemo seeded test scoring: where attention "
                     "dropout is drawn in eval, these numbers are repeatable but cannot equal "
                     "that file's"]
    assert "notes" not in evaluate(faithful_runs["text"], module_workdir)
    # With the dropout fix nothing is drawn in eval: the old run's numbers can be given again.
    fixed = evaluate(old, module_workdir, overrides=["fixes.eval_attention_dropout_off=true"])
    assert not any("seeded test scoring" in note for note in fixed["notes"])
