"""Bootstrap intervals and paired tests (koemo.reporting.uncertainty / claims) on predictions
with a known answer, and the tables and results page that use them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from koemo.modeling.metrics import classification_report, regression_report
from koemo.reporting import claims as C
from koemo.reporting import uncertainty as U

CLASSES = ["neutral", "sad", "happy"]


def fake_run(run_dir, true, pred, classes=CLASSES):
    """A finished classifier run's test outputs, scored by koemo's own metrics."""
    run_dir.mkdir(parents=True)
    names = [classes[i] for i in true], [classes[i] for i in pred]
    pd.DataFrame({"segment_id": [f"u{i:05d}" for i in range(len(true))], "true": names[0],
                  "pred": names[1]}).to_parquet(run_dir / "test_predictions.parquet")
    metrics = classification_report(np.array(true), np.array(pred), classes, "neutral")
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics))
    return str(run_dir)


def noisy(true, accuracy, rng):
    """Predictions right with probability `accuracy`, else a random class."""
    wrong = rng.integers(0, len(CLASSES), len(true))
    return np.where(rng.random(len(true)) < accuracy, true, wrong)


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(0)
    return rng.choice(3, size=4000, p=[0.6, 0.2, 0.2]), rng


def test_vectorised_scores_equal_koemos_metrics_on_the_whole_set():
    rng = np.random.default_rng(1)
    true = rng.choice(4, 200, p=[0.5, 0.3, 0.2, 0.0])          # class 3 absent from the truth
    pred = rng.integers(0, 4, 200)
    identity = np.arange(200)[None, :]
    ours = U.classification_scores(true, pred, 4, identity)
    expected = classification_report(true, pred, list("abcd"))
    for metric in U.CLASS_METRICS:
        assert ours[metric][0] == pytest.approx(expected[metric]), metric
    y, yhat = rng.normal(3, 1, 200), rng.normal(3, 1, 200)
    ours = U.regression_scores(y, y * 0.5 + yhat * 0.5, identity)
    expected = regression_report(y, y * 0.5 + yhat * 0.5)
    for metric in U.REGRESSION_METRICS:
        assert ours[metric][0] == pytest.approx(expected[metric]), metric


def test_interval_contains_the_estimate_and_shrinks_with_more_data(labels, tmp_path):
    true, rng = labels
    pred = noisy(true, 0.7, rng)
    small = fake_run(tmp_path / "small", true[:200], pred[:200])
    large = fake_run(tmp_path / "large", true, pred)
    widths = {}
    for name, run in (("small", small), ("large", large)):
        found = U.mean_interval({"paper": [run]}, U.CLASS_METRICS)
        for metric, (point, low, high) in found.items():
            assert low <= point <= high, (name, metric)
        report = json.loads((tmp_path / name / "test_metrics.json").read_text())
        assert found["macro_f1"][0] == pytest.approx(report["macro_f1"])
        widths[name] = found["accuracy"][2] - found["accuracy"][1]
    # the width of a proportion's interval falls as 1 / sqrt(n): 20 x the data, ~4.5 x narrower
    assert widths["large"] < widths["small"] / 3


def test_intervals_are_deterministic(labels, tmp_path):
    true, rng = labels
    run = fake_run(tmp_path / "run", true[:300], noisy(true[:300], 0.6, rng))
    assert U.mean_interval({"cv5_f0": [run]}, ["uar"]) == U.mean_interval({"cv5_f0": [run]}, ["uar"])


def test_identical_systems_have_p_one_and_an_interval_around_zero(labels, tmp_path):
    true, rng = labels
    pred = noisy(true[:500], 0.6, rng)
    a, b = fake_run(tmp_path / "a", true[:500], pred), fake_run(tmp_path / "b", true[:500], pred)
    test = U.paired_test([("cv5_f0", a, b)], "macro_f1")
    assert test["p"] == pytest.approx(1.0)
    assert test["ci_low"] <= 0.0 <= test["ci_high"] and test["difference"] == 0.0
    assert U.supports(test, "macro_f1") == ""


def test_a_clearly_better_system_wins_with_a_small_p(labels, tmp_path):
    true, rng = labels
    good = fake_run(tmp_path / "good", true[:500], noisy(true[:500], 0.9, rng))
    poor = fake_run(tmp_path / "poor", true[:500], noisy(true[:500], 0.4, rng))
    test = U.paired_test([("cv5_f0", good, poor)], "macro_f1")
    assert test["p"] < 0.01 and test["ci_low"] > 0
    assert U.supports(test, "macro_f1") == "A"
    assert U.supports(U.paired_test([("cv5_f0", poor, good)], "macro_f1"), "macro_f1") == "B"
    # against the majority class (B None): the good system wins
    assert U.supports(U.paired_test([("cv5_f0", good, None)], "uar"), "uar") == "A"


def test_lower_error_is_the_better_regressor(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.normal(3, 0.5, 400)
    dirs = {}
    for name, noise in (("sharp", 0.1), ("blurry", 0.6)):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        pd.DataFrame({"segment_id": [f"u{i}" for i in range(400)], "true": y,
                      "pred": y + rng.normal(0, noise, 400)}).to_parquet(
            dirs[name] / "test_predictions.parquet")
    test = U.paired_test([("paper", str(dirs["sharp"]), str(dirs["blurry"]))], "rmse")
    assert test["difference"] < 0 and U.supports(test, "rmse") == "A"


def fusion_runs(tmp_path, labels) -> pd.DataFrame:
    """Two folds: audio_only and early identical, attention_lstm far better."""
    true, rng = labels
    rows = []
    for fold in (0, 1):
        part = true[fold * 400:(fold + 1) * 400]
        weak = noisy(part, 0.5, rng)
        for kind, pred in (("audio_only", weak), ("text_only", noisy(part, 0.5, rng)),
                           ("early", weak), ("attention_lstm", noisy(part, 0.95, rng))):
            run = fake_run(tmp_path / f"f{fold}" / kind, part, pred)
            metrics = json.loads((tmp_path / f"f{fold}" / kind / "test_metrics.json").read_text())
            rows.append({"stage": "multimodal", "variant": "faithful", "split": f"cv5_f{fold}",
                         "seed": 1, "classifier": kind, "run_dir": run,
                         **{m: metrics[m] for m in U.CLASS_METRICS}})
    return pd.DataFrame(rows)


def test_fusion_table_and_results_page_state_only_supported_claims(tmp_path, labels, tiny_config):
    from koemo.reporting.page import write_paper_page
    from koemo.reporting.report import fusion_tables, save_tables

    from koemo.config.load import with_changes

    runs = fusion_runs(tmp_path / "runs", labels)      # no workdir: no score without seen text
    tables = fusion_tables(runs, with_changes(tiny_config, {"reproduce": {"leakage_free": False}}))
    paired = tables["paired"].set_index(["classifier", "versus"])
    assert paired.loc[("early", "audio_only"), "p"] == pytest.approx(1.0)
    assert paired.loc[("early", "audio_only"), "supported"] == ""
    assert paired.loc[("attention_lstm", "better single modality"), "supported"] == "attention_lstm"
    assert paired.loc[("attention_lstm", "audio_only"), "p"] < 0.01
    assert "95% CI" in tables["fusion"].columns[tables["fusion"].columns.str.startswith("macro_f1")][1]
    out = tmp_path / "out"
    save_tables(tables, out / "tables", prefix="fusion_")
    page = write_paper_page(tmp_path, tiny_config, out).read_text(encoding="utf-8")
    claims = page.split("## What the intervals support")[1]
    stated, open_ = claims.split("Not claimed")
    assert "**attention_lstm** beats audio_only on macro_f1" in stated
    assert "early" not in stated
    assert "early vs audio_only on macro_f1: no claim" in open_


def test_variant_claims_and_per_fold_rows(tmp_path, labels):
    runs = fusion_runs(tmp_path / "runs", labels)
    runs = runs[runs["classifier"].isin(["audio_only", "attention_lstm"])].assign(
        variant=lambda f: f["classifier"].map({"audio_only": "faithful", "attention_lstm": "corrected"}))
    checked = C.uncertainty_tables(runs, U.CLASS_METRICS, ["macro_f1"])
    claims = checked["claims"].set_index(["A", "B"])
    assert claims.loc[("corrected", "majority class"), "supported"] == "corrected"
    assert claims.loc[("faithful", "corrected"), "supported"] == "corrected"
    per_fold = checked["per_fold"]
    assert sorted(per_fold["split"].unique()) == ["cv5_f0", "cv5_f1"]
    assert per_fold["n_test"].tolist() == [400] * 4


def test_a_single_runs_interval_for_the_ablation_tables(labels, tmp_path):
    true, rng = labels
    run = fake_run(tmp_path / "run", true[:300], noisy(true[:300], 0.7, rng))
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    text = C.run_interval(pd.Series({"split": "paper", "run_dir": run}), "weighted_f1")
    low, high = (float(v) for v in text.strip("[]").split(", "))
    assert low <= metrics["weighted_f1"] <= high
    assert C.run_interval(pd.Series({"split": "paper"}), "weighted_f1") == ""


def test_the_interval_is_the_2_5_and_97_5_percentiles_of_the_draws(labels, tmp_path):
    """95% percentile bootstrap: the 2.5th and 97.5th percentiles of the draws, as the tables
    say, both for the bare `interval` and for a table row's interval of one fold's run."""
    draws = np.random.default_rng(3).normal(0.5, 0.1, 1000)
    expected = np.percentile(draws, [2.5, 97.5])
    assert U.interval(0.5, draws) == pytest.approx(tuple(expected), abs=0)
    assert U.interval(0.5, np.append(draws, np.nan)) == pytest.approx(tuple(expected), abs=0)
    true, rng = labels
    pred = noisy(true[:300], 0.6, rng)
    run = fake_run(tmp_path / "run", true[:300], pred)
    point, low, high = U.mean_interval({"cv5_f2": [run]}, ["macro_f1"])["macro_f1"]
    redrawn = U.classification_scores(true[:300], pred, len(CLASSES),
                                      U.resample_indices(300, "cv5_f2"))["macro_f1"]
    assert (low, high) == pytest.approx(tuple(np.percentile(redrawn, [2.5, 97.5])), abs=1e-12)


def test_the_paired_test_is_two_sided_a_versus_b_as_b_versus_a(labels, tmp_path):
    """A two-sided p does not depend on which system comes first; a modest difference (p well
    inside (0, 1)) so a one-sided count would give two different p-values."""
    true, rng = labels
    a = fake_run(tmp_path / "a", true[:400], noisy(true[:400], 0.62, rng))
    b = fake_run(tmp_path / "b", true[:400], noisy(true[:400], 0.58, rng))
    forward = U.paired_test([("cv5_f1", a, b)], "macro_f1")
    backward = U.paired_test([("cv5_f1", b, a)], "macro_f1")
    assert 0.02 < forward["p"] < 0.9
    assert backward["p"] == forward["p"]
    assert backward["difference"] == -forward["difference"]
    assert (backward["ci_low"], backward["ci_high"]) == \
        pytest.approx((-forward["ci_high"], -forward["ci_low"]), abs=1e-12)
