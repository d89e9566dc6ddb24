"""A user's first try: three sessions of the corpus with a single sad utterance. Statistics that
cannot be computed say why, cv5 folds without a test session are skipped and said so, and
every row of a classification table averages over the test set's own classes."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from koemo.experiments import plan as ex
from koemo.reporting import page as results_page, report

SESSIONS = 3


def keep_one(root: Path, label: str = "sad", instead: str = "neutral") -> None:
    """Relabel every total-emotion `label` of the annotation CSVs but the first as `instead`
    (two header rows; column 4 holds the total emotion)."""
    seen = False
    for path in sorted((root / "annotation").glob("Sess*_eval.csv")):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines[2:], start=2):
            cells = line.split(",")
            if cells[4] == label:
                if seen:
                    cells[4] = instead
                    lines[i] = ",".join(cells)
                seen = True
        path.write_text("".join(lines), encoding="utf-8")


@pytest.fixture(scope="module")
def partial(tmp_path_factory, tiny_config):
    """Corpus root and prepared workdir: three sessions, one sad utterance, and a fourth
    session recorded but not annotated (a partial download: wav/Session04, no Sess04_eval.csv)."""
    from koemo.dataset.prepare import prepare
    from koemo.synth import write_corpus

    root = tmp_path_factory.mktemp("partial") / "KEMDy20_v1_1"
    write_corpus(root, sessions=SESSIONS, seed=0, utterances_per_session=24,
                 faults="unannotated-session")
    keep_one(root)
    workdir = tmp_path_factory.mktemp("partial_work")
    prepare(root, workdir, tiny_config, progress=False)
    return root, workdir


@pytest.fixture(scope="module")
def cfg(tiny_config):
    """tiny with one variant and one epoch a stage: the partial-corpus rules depend on neither."""
    from koemo.config.load import with_changes

    return with_changes(tiny_config, {"reproduce": {"variants": ["corrected"]}, "train": {
        stage: {"epochs": 1} for stage in ("audio", "text", "multimodal")}})


def test_the_corpus_has_three_sessions_and_one_sad_utterance(partial):
    table = report.load_table(partial[1])
    assert sorted(table["session"].unique()) == [1, 2, 3]
    assert (table["label"] == "sad").sum() == 1


def test_a_session_without_annotation_is_one_line_not_a_file_per_recording(partial):
    """Before, each of Session04's recordings and transcripts was a problem file of its own
    (724 on the real KEMDy20 sample); now the session is one line with its wav count."""
    from koemo.dataset.prepare_report import summary_text

    report = json.loads((partial[1] / "prepare_report.json").read_text(encoding="utf-8"))
    folder = partial[0] / "wav" / "Session04"
    wavs = len(list(folder.glob("*.wav")))
    [lost] = report["sessions_without_rows"]
    assert lost["message"] == (f"{folder}: {wavs} wav file(s), none with an annotation row "
                               "(no Sess04_eval.csv)")
    assert report["problem_files"] == [] and report["sessions"]["Session04"]["rows_read"] == 0
    printed = summary_text(report)
    assert lost["message"] in printed and "problem files" not in printed
    assert "; 1 input problem (1 session)" in printed.splitlines()[0]


def test_welch_leaves_out_the_single_sad_row_and_says_so(partial, cfg):
    tables = report.welch_tables(report.load_table(partial[1]), cfg)
    anova = tables["welch_anova"].set_index(["value", "source"])
    for value in ("arousal", "valence"):
        ours = anova.loc[(value, "ours")]
        assert ours["note"] == "left out: group 'sad' has 1 row (needs >= 2)"
        assert ours["df1"] == 3 and np.isfinite(ours["F"])      # the four other classes
        assert anova.loc[(value, report.REPORTED), "note"] == ""
    text = report.markdown_table(tables["welch_anova"])
    assert "Note: A group with fewer than two rows" in text
    means = tables["class_means"].set_index(["value", "source"])
    assert np.isfinite(means.loc[("arousal", "ours"), "sad"])   # one row is still its own mean
    assert "sad (1 row)" in report.markdown_table(tables["class_means"])


def test_cv5_plans_skip_the_folds_without_a_test_session(partial, cfg, capsys):
    workdir = partial[1]
    unusable = {k: v for k, v in ex.unusable_splits(workdir).items() if k.startswith("cv5")}
    assert unusable == {"cv5_f3": "no test session", "cv5_f4": "no test session"}
    plan = ex.main_plan(cfg, workdir=workdir)
    assert {spec.split for spec in plan} == {"paper", "cv5_f0", "cv5_f1", "cv5_f2"}
    assert "cv5_f3 skipped: no test session" in capsys.readouterr().out
    assert {spec.split for spec in ex.fusion_plan(cfg, workdir)} == {"cv5_f0", "cv5_f1", "cv5_f2"}
    # Without the workdir the plan cannot know; run_plan then drops the empty folds itself.
    unchecked = [s for s in ex.main_plan(cfg) if s.split in ("cv5_f3", "cv5_f4")]
    assert len(unchecked) == 6
    runs = ex.run_plan(unchecked, workdir, progress=False, parallel_runs=1)
    assert runs.empty and runs.attrs["skipped"] == unusable
    sizes = report.split_tables(workdir, cfg)["sizes"].set_index("protocol")
    assert sizes.loc["cv5_3", "status"] == "skipped: no test session"
    assert sizes.loc["cv5_0", "status"] == "ok"


@pytest.fixture(scope="module")
def trained(partial, cfg):
    """The main plan trained on the partial corpus (paper protocol + the three usable folds)."""
    workdir = partial[1]
    return ex.run_plan(ex.main_plan(cfg, workdir=workdir), workdir, progress=False, parallel_runs=1)


def test_tables_say_how_many_folds_they_average(trained):
    assert set(trained["split"]) == {"paper", "cv5_f0", "cv5_f1", "cv5_f2"}
    note = "cv5 rows: mean over 3 of 5 folds (folds 0, 1, 2); folds 3, 4 skipped: no test session."
    audio = report.regressor_tables(trained[trained["stage"] == "audio"],
                                    pd.DataFrame(columns=ex.RUN_COLUMNS), "audio")["test_metrics"]
    assert audio.set_index("protocol")["n_folds"].to_dict() == {"paper": 1, "cv5": 3}
    assert note in report.markdown_table(audio)
    tables = report.classifier_tables(trained, pd.DataFrame(columns=ex.RUN_COLUMNS))
    main = tables["test_metrics"]
    baseline = main[main["variant"] == "majority class (ours)"].set_index("protocol")
    assert baseline["n_folds"].to_dict() == {"cv5": 3, "paper": 1}
    assert note in report.markdown_table(main)
    assert report.LABEL_RULE in report.markdown_table(main)
    per_class = tables["per_class"].set_index(["protocol", "class"])
    assert per_class.loc[("cv5", "sad"), "support"] == 1          # the one sad row, one fold
    fusion = report.fusion_tables(trained)["fusion"]          # models and the baseline
    assert set(zip(fusion["protocol"], fusion["n_folds"])) == {("paper", 1), ("cv5", 3)}
    assert note in report.markdown_table(fusion)


def test_every_row_averages_over_the_classes_of_its_test_set(trained, cfg):
    classes = cfg.data.classes
    for run_dir in trained.loc[trained["stage"] == "multimodal", "run_dir"]:
        metrics = json.loads((Path(run_dir) / "test_metrics.json").read_text())
        predictions = pd.read_parquet(Path(run_dir) / "test_predictions.parquet")
        present = [c for c in classes if c in set(predictions["true"])]
        assert metrics["label_set"] == present
        assert "sad" not in present or metrics["split"] != "paper"
        true, pred = predictions["true"], predictions["pred"]
        assert metrics["macro_f1"] == pytest.approx(
            skm.f1_score(true, pred, labels=present, average="macro", zero_division=0))
        majority = np.full(len(true), metrics["baseline"]["majority_class"])
        assert metrics["baseline"]["macro_f1"] == pytest.approx(
            skm.f1_score(true, majority, labels=present, average="macro", zero_division=0))
        assert np.array(metrics["confusion_matrix"]).shape == (5, 5)


def test_runs_scored_before_the_label_set_rule_are_rescored(trained, tmp_path):
    """A finished run from an earlier version (no label_set) is re-scored when collected, into
    a new version of its metrics: the file training wrote stays as it was."""
    import shutil

    from koemo.modeling.runs import RunDir

    source = Path(trained.loc[trained["stage"] == "multimodal", "run_dir"].iloc[0])
    run_dir = Path(shutil.copytree(source, tmp_path / "run"))
    current = json.loads((run_dir / "test_metrics.json").read_text())
    stale = json.loads(json.dumps({k: v for k, v in current.items() if k != "label_set"}))
    stale["macro_f1"] = stale["baseline"]["macro_f1"] = -1.0
    (run_dir / "test_metrics.json").write_text(json.dumps(stale))
    again = ex.rescore_classifier(run_dir)
    assert again.macro_f1 == pytest.approx(current["macro_f1"])
    assert again.majority().as_dict() == pytest.approx(current["baseline"])
    assert again.weighted_f1_batch_mean == current["weighted_f1_batch_mean"]
    assert json.loads((run_dir / "test_metrics.json").read_text()) == stale
    assert RunDir(run_dir).metrics().label_set == current["label_set"]


def test_the_results_page_carries_the_notes(partial, trained, cfg, tmp_path):
    out = tmp_path / "paper"
    tables = out / "tables"
    report.save_tables(report.welch_tables(report.load_table(partial[1]), cfg), tables, "statistics_")
    report.save_tables(report.classifier_tables(trained, pd.DataFrame(columns=ex.RUN_COLUMNS)),
                       tables, "multimodal_")
    report.save_runs(trained, tables / "runs_main.csv", partial[1])
    page = results_page.write_paper_page(partial[1], cfg, out).read_text(encoding="utf-8")
    assert "folds 3, 4 skipped: no test session" in page
    assert "left out: group 'sad' has 1 row (needs >= 2)" in page
    assert report.LABEL_RULE in page
    assert (out / "figures" / "confusion.png").is_file()


@pytest.mark.slow
def test_reproduce_runs_every_notebook_on_the_partial_corpus(partial, trained, tmp_path):
    """`koemo reproduce` end to end on the three sessions, in a copy of the module's workdir:
    its prepare is reused and the main plan's runs (`trained`, trained by the same
    koemo.experiments.plan.run_plan call as notebook 4-1's) are not trained again; the
    ablations, the fusion and foundation studies are trained by the notebooks."""
    import shutil

    from koemo.reporting.reproduce import NOTEBOOK_ORDER, reproduce

    work, out = tmp_path / "work", tmp_path / "paper"
    shutil.copytree(partial[1], work)
    # one variant, one epoch a stage (as `cfg` above): the partial-corpus rules depend on neither;
    # nor on worker processes, which would cost more to start than these runs take to train
    # (the notebooks' workers: tests/test_notebooks.py and tests/test_interrupted.py)
    # Notebook 5-4 with one audio and one text upstream: skipping the folds without a test
    # session does not depend on the system (every tiny upstream and zero-shot model:
    # tests/test_notebooks.py's reproduce and tests/test_foundation_study.py)
    overrides = ["reproduce.variants=[corrected]", "reproduce.parallel_runs=1",
                 "reproduce.foundation.audio=[tiny:wavlm]", "reproduce.foundation.fused=[]",
                 "reproduce.foundation.zero_shot=[]"] + [
        f"train.{stage}.epochs=1" for stage in ("audio", "text", "multimodal")]
    timings = reproduce("tiny", work, out, data_root=partial[0], overrides=overrides)
    assert [row["notebook"] for row in timings] == list(NOTEBOOK_ORDER)
    page = (out / "README.md").read_text(encoding="utf-8")
    assert "left out: group 'sad' has 1 row (needs >= 2)" in page
    assert page.count("folds 3, 4 skipped: no test session") >= 4   # audio, text, classifier, fusion
    assert report.LABEL_RULE in page
    runs = pd.read_csv(out / "tables" / "runs_main.csv")
    assert set(runs["split"]) == {"paper", "cv5_f0", "cv5_f1", "cv5_f2"}
