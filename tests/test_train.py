"""The training engine on the tiny synthetic corpus (CPU): each stage end to end, resume,
skip of finished runs, evaluation, the frozen-output cache, the CLI, and overfitting one batch."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from koemo.cli import main as cli_main
from koemo.config.load import load_config, with_changes
from koemo.config.workdir import load_utterances
from koemo.dataset.splits import split_column
from koemo.errors import KoemoInputError
from koemo.modeling import data as D
from koemo.modeling.evaluate import evaluate
from koemo.modeling.train import train_stage

# One batch per split and epoch: the whole tiny split fits in a batch of 256.
ONE_BATCH = [f"train.{stage}.{key}={value}" for stage in ("audio", "text", "multimodal")
             for key, value in (("batch_size", 256), ("epochs", 1))]
# Deterministic eval (no attention dropout at inference) so evaluate() can be compared.
DETERMINISTIC = ["fixes.eval_attention_dropout_off=true"]


pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def workdir(module_workdir):
    return module_workdir


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny", ONE_BATCH + DETERMINISTIC)


@pytest.fixture(scope="module")
def runs(workdir, cfg):
    """All three stages, one epoch each (their speed is benchmarks/bench_loop.py's concern)."""
    return {stage: train_stage(stage, workdir, cfg, seed=1, progress=False)
            for stage in ("audio", "text", "multimodal")}


def test_three_stages_train_on_cpu(runs):
    dirs = runs
    for stage, run_dir in dirs.items():
        for name in ("best/model.safetensors", "last/meta.json", "log.csv", "log.json", "run.json",
                     "config.yaml", "test_metrics.json", "test_predictions.parquet"):
            assert (run_dir / name).is_file(), f"{stage}: {name} missing"


def test_run_directory_layout(runs, workdir):
    dirs = runs
    assert dirs["audio"] == workdir / "runs" / "paper" / "tiny" / "audio" / "seed1"
    assert dirs["multimodal"] == workdir / "runs" / "paper" / "tiny" / "attention_lstm" / "seed1"
    record = json.loads((dirs["text"] / "run.json").read_text())
    assert record["seed"] == 1 and record["stage"] == "text"


def test_logs_have_one_row_per_epoch(runs):
    dirs = runs
    log = pd.read_csv(dirs["audio"] / "log.csv")
    assert log["epoch"].tolist() == [1]
    assert {"train_loss", "valid_loss", "valid_rmse", "valid_ccc", "lr", "seconds"} <= set(log.columns)
    assert log["valid_loss"].iloc[0] == pytest.approx(log["valid_rmse"].iloc[0])
    assert json.loads((dirs["audio"] / "log.json").read_text())[0]["epoch"] == 1
    multimodal = pd.read_csv(dirs["multimodal"] / "log.csv")
    assert {"valid_accuracy", "valid_macro_f1", "valid_uar"} <= set(multimodal.columns)


def test_test_predictions_cover_every_test_row_in_order(runs, workdir, cfg):
    dirs = runs
    table = pd.read_parquet(workdir / "utterances.parquet")
    test_ids = table.loc[table[split_column(cfg)] == "test", "segment_id"].tolist()
    for stage, run_dir in dirs.items():
        predictions = pd.read_parquet(run_dir / "test_predictions.parquet")
        assert predictions["segment_id"].tolist() == test_ids, stage
    probs = pd.read_parquet(dirs["multimodal"] / "test_predictions.parquet")
    prob_columns = [f"prob_{name}" for name in cfg.data.classes]
    assert np.allclose(probs[prob_columns].sum(axis=1), 1.0, atol=1e-5)
    assert (probs["pred"] == probs[prob_columns].idxmax(axis=1).str.removeprefix("prob_")).all()


def test_test_metrics_are_whole_set_and_consistent_with_predictions(runs, cfg):
    dirs = runs
    metrics = json.loads((dirs["multimodal"] / "test_metrics.json").read_text())
    predictions = pd.read_parquet(dirs["multimodal"] / "test_predictions.parquet")
    assert metrics["n"] == len(predictions)
    assert metrics["accuracy"] == pytest.approx((predictions["true"] == predictions["pred"]).mean())
    assert metrics["checkpoint"] == "last"          # faithful: last epoch's weights
    assert metrics["baseline"]["majority_source"] == "train"
    for key in ("weighted_f1", "macro_f1", "uar", "weighted_f1_batch_mean", "confusion_matrix"):
        assert key in metrics
    audio = json.loads((dirs["audio"] / "test_metrics.json").read_text())
    predictions = pd.read_parquet(dirs["audio"] / "test_predictions.parquet")
    assert audio["rmse"] == pytest.approx(np.sqrt(((predictions["true"] - predictions["pred"]) ** 2).mean()))


def test_finished_run_is_returned_without_training_again(runs, workdir, cfg):
    dirs = runs
    before = (dirs["audio"] / "log.json").stat().st_mtime_ns
    assert train_stage("audio", workdir, cfg, seed=1, progress=False) == dirs["audio"]
    assert (dirs["audio"] / "log.json").stat().st_mtime_ns == before


def test_settings_training_does_not_read_keep_a_run_finished(runs, workdir, cfg):
    """Bio-signal, ASR, segmentation, corpus-recipe and speed settings are not a run's identity;
    a run whose state holds the fingerprint of earlier koemo versions (which counted the unread
    sections) is still recognised as finished."""
    import copy

    from koemo.modeling.checkpoint import load_training_state, write_training_state
    from koemo.modeling.resume import resume_fingerprint, run_is_finished

    dirs = runs
    other = with_changes(cfg, {"biosignals": {"n_jobs": 7}, "asr": {"batch_size": 3},
                               "train": {"resident": "false"}})
    assert run_is_finished(dirs["audio"], other, "audio", workdir)
    before = (dirs["audio"] / "log.json").stat().st_mtime_ns
    assert train_stage("audio", workdir, other, seed=1, progress=False) == dirs["audio"]
    assert (dirs["audio"] / "log.json").stat().st_mtime_ns == before

    state_file = dirs["text"] / "state"
    payload = __import__("torch").load(state_file / "training_state.pt", weights_only=True)
    payload["extra"]["fingerprint"] = resume_fingerprint(cfg, "text", legacy=True)
    write_training_state(state_file, payload)
    assert run_is_finished(dirs["text"], cfg, "text", workdir)
    other = with_changes(other, {"seed": 99 if cfg.seed != 99 else 98})   # a setting training reads
    assert not run_is_finished(dirs["text"], other, "text", workdir)
    assert load_training_state(state_file, restore_rng=False)["extra"]["fingerprint"] == \
        resume_fingerprint(cfg, "text", legacy=True)


def test_evaluate_reproduces_the_test_scoring(runs, workdir):
    dirs = runs
    saved = json.loads((dirs["audio"] / "test_metrics.json").read_text())
    again = evaluate(dirs["audio"], workdir)
    assert again["rmse"] == pytest.approx(saved["rmse"], abs=1e-6)
    assert again["checkpoint"].endswith("last")
    # The classifier is scored from the run's float16 frozen-output cache, as training scored it.
    saved = pd.read_parquet(dirs["multimodal"] / "test_predictions.parquet")
    out = workdir / "eval_predictions.parquet"
    again = evaluate(dirs["multimodal"] / "best", workdir, predictions_out=out)
    assert again["n"] == len(saved)
    evaluated = pd.read_parquet(out)
    assert evaluated.equals(saved)


def test_frozen_cache_holds_the_regressor_outputs(runs, workdir, cfg):
    from koemo.modeling.checkpoint import build_from_checkpoint
    from koemo.modeling.stage import build_stage

    dirs = runs
    classifier = build_from_checkpoint(dirs["multimodal"] / "last")
    job = build_stage("multimodal", workdir, cfg, 1, run_dir=dirs["multimodal"],
                      device=torch.device("cpu"), splits=("valid",), model=classifier,
                      cache_frozen=False)
    raw = next(iter(D.DataLoader(job.datasets["valid"], batch_size=4)))
    fresh = D.frozen_outputs(classifier.eval(), raw, "cpu")
    cached = D.FrozenOutputsDataset(dirs["multimodal"] / "frozen" / "valid", job.datasets["valid"].target)
    stored = cached.__getitems__([0, 1, 2, 3])
    for name in D.FROZEN_ARRAYS:
        assert torch.allclose(stored[name].float(), fresh[name].float(), atol=2e-2, rtol=1e-2), name
    # A batch read in any order equals the rows read one by one.
    shuffled = cached.__getitems__([3, 0, 2])
    for k, i in enumerate([3, 0, 2]):
        assert torch.equal(shuffled["audio_hidden"][k], cached[i]["audio_hidden"])
        assert shuffled["target"][k] == cached.target[i] and shuffled["row"][k] == i
    assert json.loads((dirs["multimodal"] / "frozen" / "valid" / "meta.json").read_text())["complete"]


def test_resume_continues_from_the_saved_epoch(workdir, tmp_path):
    """Faithful config. 1 epoch, then asked for 2: continues at epoch 2 and ends exactly where an
    uninterrupted 2-epoch run ends (every epoch reseeds itself)."""
    base = ["train.audio.batch_size=64"]
    one = load_config("tiny", base + ["train.audio.epochs=1"])
    two = load_config("tiny", base + ["train.audio.epochs=2"])
    interrupted = train_stage("audio", workdir, one, seed=3, out_dir=tmp_path / "a", progress=False)
    first = pd.read_csv(interrupted / "log.csv")
    resumed = train_stage("audio", workdir, two, seed=3, out_dir=tmp_path / "a", progress=False)
    log = pd.read_csv(resumed / "log.csv")
    assert log["epoch"].tolist() == [1, 2]
    assert log.loc[0, "train_loss"] == first.loc[0, "train_loss"]      # epoch 1 kept, not redone
    assert log.loc[1, "lr"] == pytest.approx(two.train.audio.lr * two.train.audio.gamma)
    straight = pd.read_csv(train_stage("audio", workdir, two, seed=3, out_dir=tmp_path / "b",
                                       progress=False) / "log.csv")
    assert np.allclose(log[["train_loss", "valid_loss"]], straight[["train_loss", "valid_loss"]],
                       rtol=1e-5)
    # A run with other settings in the same directory is refused, not silently mixed.
    other = load_config("tiny", base + ["train.audio.epochs=2", "train.audio.lr=0.1"])
    with pytest.raises(KoemoInputError, match="other settings"):
        train_stage("audio", workdir, other, seed=3, out_dir=tmp_path / "a", progress=False)


def test_training_rows_are_augmented_and_evaluation_rows_are_not(workdir, cfg):
    table = load_utterances(workdir)
    train = D.stage_rows(table, cfg, "train", seed=1)
    minority = train.query("aug_kind == 'orig'")["label"].isin(cfg.augment.minority_classes).sum()
    assert (train["aug_kind"] != "orig").sum() == 3 * minority > 0
    for split in ("valid", "test"):
        rows = D.stage_rows(table, cfg, split, seed=1)
        assert (rows["aug_kind"] == "orig").all()
        assert len(rows) == (table[split_column(cfg)] == split).sum()


def test_augmented_text_rows_get_their_own_token_ids(runs, workdir, cfg):
    from koemo.text import open_text_pipeline

    rows = D.stage_rows(load_utterances(workdir), cfg, "train", seed=1)
    pick = pd.concat([rows[rows["aug_kind"] == kind].head(3) for kind in
                      ("orig", "swap_text", "mask_audio", "delete_text_mask_audio")])
    text = open_text_pipeline(cfg, workdir)
    ids, mask = D.encode_rows(pick, text.tokenizer, cfg)
    by_kind = {kind: ids[(pick["aug_kind"] == kind).to_numpy()] for kind in pick["aug_kind"].unique()}
    originals = {tuple(r) for r in D.encode_rows(pick.assign(aug_kind="orig"), text.tokenizer, cfg)[0]}
    assert {tuple(r) for r in by_kind["mask_audio"]} <= originals          # text untouched
    assert mask[(pick["aug_kind"] == "delete_text_mask_audio").to_numpy()].sum() < \
        mask[(pick["aug_kind"] == "mask_audio").to_numpy()].sum()          # pieces deleted
    # Training ensured the states of the augmented sequences too: nothing left to compute.
    assert all(row in text.cache for row in ids)
    assert text.cache.ensure(ids, mask, progress=False)["computed"] == 0


def test_multimodal_without_regressors_says_what_to_train_first(workdir):
    cfg = load_config("tiny", ONE_BATCH + ["data.protocol=cv5", "data.fold=2"])
    with pytest.raises(KoemoInputError, match="koemo train audio"):
        train_stage("multimodal", workdir, cfg, seed=1, progress=False)


def test_classifier_overfits_one_small_batch(runs, cfg):
    """Eight cached training rows, 150 Adam steps: the classifier must fit them exactly."""
    from koemo.modeling.checkpoint import build_from_checkpoint

    dirs = runs
    torch.manual_seed(0)
    classifier = build_from_checkpoint(dirs["multimodal"] / "last")
    frozen = D.FrozenOutputsDataset(dirs["multimodal"] / "frozen" / "train",
                                    np.zeros(len(np.load(dirs["multimodal"] / "frozen" / "train" /
                                                         "audio_mask.npy", mmap_mode="r"))))
    rows = frozen.__getitems__(range(8))
    batch = {name: rows[name].float() if name.endswith("hidden") else rows[name] for name in D.FROZEN_ARRAYS}
    target = torch.arange(8) % len(cfg.data.classes)
    optimizer = torch.optim.Adam([p for p in classifier.parameters() if p.requires_grad], lr=3e-3)
    classifier.train()
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(classifier(**batch)["logits"], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    classifier.eval()
    with torch.no_grad():
        accuracy = (classifier(**batch)["logits"].argmax(1) == target).float().mean().item()
    assert accuracy == 1.0, f"loss {loss.item():.3f}"


def test_cli_train_and_evaluate(runs, workdir, capsys):
    dirs = runs
    sets = [arg for item in ONE_BATCH + DETERMINISTIC for arg in ("--set", item)]
    assert cli_main(["train", "audio", "--workdir", str(workdir), "--config", "tiny", "--seed", "1",
                     "--no-progress", *sets]) == 0
    assert f"run: {dirs['audio']}" in capsys.readouterr().out
    assert cli_main(["evaluate", "--run", str(dirs["audio"]), "--workdir", str(workdir),
                     "--split", "valid"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["subset"] == "valid" and report["split"] == "paper" and report["rmse"] > 0
    # The training split is scored on its original rows, without augmented copies.
    table = pd.read_parquet(workdir / "utterances.parquet")
    train = evaluate(dirs["audio"], workdir, split="train")
    assert train["n"] == (table[split_column(load_config("tiny"))] == "train").sum()


def test_cli_reports_bad_input_in_one_line(workdir, tmp_path, capsys):
    assert cli_main(["evaluate", "--run", str(tmp_path / "nope"), "--workdir", str(workdir)]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert cli_main(["train", "audio", "--workdir", str(tmp_path), "--config", "tiny"]) == 1
    assert "utterances.parquet" in capsys.readouterr().err


def test_early_stopping_and_best_checkpoint_scoring(workdir, tmp_path):
    """lr 1e-30 keeps the weights (a step that small is below float32's resolution; the schema
    refuses lr 0), so (deterministic eval) the valid loss never improves after epoch 1:
    patience 2 stops after epoch 3, and the fix scores the best checkpoint."""
    cfg = load_config("tiny", DETERMINISTIC + [
        "train.audio.batch_size=256", "train.audio.epochs=6", "train.audio.patience=2",
        "train.audio.lr=1e-30", "fixes.test_best_checkpoint=true"])
    run_dir = train_stage("audio", workdir, cfg, seed=1, out_dir=tmp_path / "run", progress=False)
    log = pd.read_csv(run_dir / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3]
    assert log["best"].tolist() == [True, False, False]
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["checkpoint"] == "best" and metrics["epochs_trained"] == 3
    # Stopped early: asking again (even for more epochs) returns the finished run.
    more = load_config("tiny", DETERMINISTIC + [
        "train.audio.batch_size=256", "train.audio.epochs=9", "train.audio.patience=2",
        "train.audio.lr=1e-30", "fixes.test_best_checkpoint=true"])
    assert pd.read_csv(train_stage("audio", workdir, more, seed=1, out_dir=tmp_path / "run",
                                   progress=False) / "log.csv")["epoch"].tolist() == [1, 2, 3]


def test_balanced_class_weights_follow_train_counts(cfg):
    from koemo.modeling.train import class_weights
    from koemo.modeling.stage import StageJob

    rows = pd.DataFrame({"label_id": [0, 0, 0, 0, 1, 2, 2, 3, 4, 4]})
    job = StageJob("multimodal", torch.nn.Linear(1, 1), {}, {"train": rows}, None,
                   classes=list(cfg.data.classes))
    assert class_weights(job, load_config("paper")) is None      # the paper: unweighted
    assert class_weights(job, load_config("tiny", ["train.multimodal.class_weights=false"])) is None
    weighted = load_config("tiny", ["train.multimodal.class_weights=true"])
    expected = 10 / (5 * np.array([4, 1, 2, 1, 2]))
    assert np.allclose(class_weights(job, weighted).numpy(), expected)
    explicit = load_config("tiny", ["train.multimodal.class_weights=[1, 2, 3, 4, 5]"])
    assert class_weights(job, explicit).tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(KoemoInputError, match="one weight per class, 5"):      # refused at load
        load_config("tiny", ["train.multimodal.class_weights=[1, 2]"])


class _Launch:
    """The main process of a multi-process launch, as far as prepare_job asks."""
    is_main_process = True

    def main_process_first(self):
        import contextlib
        return contextlib.nullcontext()


def test_a_launch_refuses_the_classifier_that_runs_its_regressors(runs, workdir, cfg, tmp_path):
    """Under accelerate the classifier must train from cached regressor outputs (forward_raw
    would bypass DDP): the job says which it reads (`from_cache`), whatever wraps its forward."""
    from koemo.modeling.precision import Runtime
    from koemo.modeling.runs import RunDir
    from koemo.modeling.train import prepare_job

    launch = Runtime(torch.device("cpu"), "fp32", False, accelerator=_Launch())
    raw = with_changes(cfg, {"train": {"multimodal": {"cache_frozen": False}}})
    with pytest.raises(KoemoInputError, match="cache_frozen=true"):
        prepare_job("multimodal", workdir, raw, 1, RunDir(tmp_path / "raw"), launch,
                    "attention_lstm", False)
    job = prepare_job("multimodal", workdir, cfg, 1, RunDir(tmp_path / "cached"), launch,
                      "attention_lstm", False)
    assert job.from_cache and not job.runs_regressors
    alone = Runtime(torch.device("cpu"), "fp32", False)
    job = prepare_job("multimodal", workdir, raw, 1, RunDir(tmp_path / "raw"), alone,
                      "attention_lstm", False)
    assert job.runs_regressors                  # one process: it may run them


def test_the_stage_job_is_frozen_and_derived_jobs_are_new(workdir, cfg, tmp_path):
    import dataclasses

    from koemo.modeling.stage import build_stage, on_device, regressor_forward

    job = build_stage("audio", workdir, cfg, 1, run_dir=tmp_path, device=torch.device("cpu"),
                      splits=("valid",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.forward = None
    ready = on_device(job, with_changes(cfg, {"train": {"resident": True}}), torch.device("cpu"),
                      "attention_lstm")
    assert ready is not job and ready.model is job.model and ready.rows is job.rows
    assert job.forward is regressor_forward and type(job.datasets["valid"]) is D.AudioDataset
    assert type(ready.datasets["valid"]).__name__ == "ResidentDataset"
