"""The cross-corpus study of notebook 5-3 end to end on tiny corpora: what it trains where, the
table's rows and baselines, and the second score without test text seen in training."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from koemo.config.load import with_changes
from koemo.experiments import cross
from koemo.modeling.runs import workdir_of_run
from koemo.reporting import cross_corpus as cc
from koemo.reporting import leakage, report


@pytest.fixture(scope="module")
def cfg(cross_study_config):
    return cross_study_config


@pytest.fixture(scope="module")
def study(cross_study):
    """The study trained once per session (conftest: notebook 5-4's tests read its runs too)."""
    return cross_study


@pytest.fixture(scope="module")
def watcher(cross_study_watcher):
    """What `koemo reproduce` shows of notebook 5-3 (conftest: started before the study trains)."""
    return cross_study_watcher


def test_no_second_corpus_no_study(cfg, tiny_corpus, tmp_path):
    assert cross.run_study(cfg, tiny_corpus, None, tmp_path) is None
    off = with_changes(cfg, {"reproduce": {"cross_corpus": None}})
    assert cross.cross_plan(off, tmp_path) == [] and cross.in_corpus_plan(off, tmp_path) == []
    tables = cc.not_run()
    assert "--kemdy19" in report.markdown_table(tables["cross_corpus"])


@pytest.mark.slow   # trains the study (tiny, one fold, one epoch)
def test_each_direction_trains_where_it_should(study, cfg):
    workdir, runs = study
    kinds = list(cfg.reproduce.fusion.kinds)
    assert cross.study_kinds(cfg) == kinds
    assert set(runs["in_corpus"]["split"]) == {"cv5_f0"}
    assert set(runs["cross"]["split"]) == {"kemdy19_cv5_f0", "kemdy19_to_kemdy20",
                                           "kemdy20_to_kemdy19"}
    for name, where in (("in_corpus", workdir), ("cross", workdir / "cross")):
        for run_dir in runs[name]["run_dir"]:
            assert workdir_of_run(run_dir) == where
        classifiers = runs[name][runs[name]["stage"] == "multimodal"]
        assert sorted(classifiers["classifier"].unique()) == sorted(kinds)


@pytest.mark.slow   # trains the study (tiny, one fold, one epoch)
def test_reproduce_shows_every_run_of_the_study_wherever_it_trains(study, watcher):
    workdir, runs = study
    lines = watcher.poll()
    trained = pd.concat([runs["in_corpus"], runs["cross"]])
    assert set(watcher.runs) == set(trained["run_dir"].astype(str))     # W's and W/cross's
    assert watcher.planned == len(watcher.runs)
    for split in set(trained["split"]):
        assert any(f" {split}/" in line for line in lines), split


@pytest.mark.slow   # trains the study (tiny, one fold, one epoch)
def test_cross_runs_never_see_the_target_in_training(study):
    workdir, runs = study
    table = pd.read_parquet(workdir / "cross" / "utterances.parquet").set_index("segment_id")
    for _, run in runs["cross"].iterrows():
        predictions = pd.read_parquet(f"{run['run_dir']}/test_predictions.parquet")
        corpora = set(table.loc[predictions["segment_id"], "corpus"])
        source, target, _ = cc.direction(run["split"], "kemdy20")
        assert corpora == {target}
        if source != target:       # every target row with signal (corrected: silent ones out)
            scored = (table["corpus"] == target) & (table["audio_problem"] == "")
            assert len(predictions) == scored.sum()


@pytest.mark.slow   # trains the study (tiny, one fold, one epoch)
def test_table_puts_in_corpus_beside_cross_corpus_with_the_test_corpus_majority(study):
    workdir, runs = study
    tables = cc.cross_corpus_tables(runs["in_corpus"], runs["cross"])
    table = tables["cross_corpus"]
    directions = table[["test", "train", "evaluation"]].drop_duplicates().values.tolist()
    assert directions == [["kemdy19", "kemdy19", cc.IN_CORPUS], ["kemdy19", "kemdy20", cc.CROSS],
                          ["kemdy20", "kemdy20", cc.IN_CORPUS], ["kemdy20", "kemdy19", cc.CROSS]]
    assert (table["classifier"] == cc.MAJORITY).sum() == 4
    for metric in cc.CROSS_METRICS:
        assert f"{metric} 95% CI" in table
    # the majority row of kemdy19 -> kemdy20: the most frequent KEMDy20 class for every row
    row = table[(table["train"] == "kemdy19") & (table["test"] == "kemdy20")
                & (table["classifier"] == cc.MAJORITY)].iloc[0]
    run = runs["cross"][(runs["cross"]["split"] == "kemdy19_to_kemdy20")
                        & (runs["cross"]["stage"] == "multimodal")].iloc[0]
    true = pd.read_parquet(f"{run['run_dir']}/test_predictions.parquet")["true"]
    constant = np.full(len(true), true.value_counts().idxmax())
    present = sorted(set(true))
    expected = skm.f1_score(true, constant, labels=present, average="macro", zero_division=0)
    assert float(row["macro_f1"]) == pytest.approx(expected, abs=5e-4)
    paired = tables["cross_paired"]
    assert set(paired["train -> test"]) == {"kemdy19 -> kemdy19", "kemdy19 -> kemdy20",
                                            "kemdy20 -> kemdy20", "kemdy20 -> kemdy19"}
    assert "kemdy19_to_kemdy20" not in report.markdown_table(table)


@pytest.mark.slow   # trains the study (tiny, one fold, one epoch)
def test_unseen_text_score_leaves_out_test_lines_met_in_training(study):
    workdir, runs = study
    run = runs["cross"][(runs["cross"]["split"] == "kemdy19_to_kemdy20")
                        & (runs["cross"]["classifier"] == "attention_lstm")].iloc[0]
    table = pd.read_parquet(workdir / "cross" / "utterances.parquet")
    seen = set(table.loc[table["corpus"] == "kemdy19", "text"]) - {""}
    predictions = pd.read_parquet(f"{run['run_dir']}/test_predictions.parquet")
    text = table.set_index("segment_id").loc[predictions["segment_id"], "text"].to_numpy()
    keep = ~np.isin(text, list(seen))
    scores = leakage.unseen_text_scores(run["run_dir"], run["split"])
    assert scores["n_test"] == len(predictions) and scores["n_unseen"] == int(keep.sum())
    true, pred = predictions["true"][keep], predictions["pred"][keep]
    expected = skm.f1_score(true, pred, labels=sorted(set(true)), average="macro", zero_division=0)
    assert scores["macro_f1"] == pytest.approx(expected)


def test_seen_texts_are_the_training_and_validation_lines():
    table = pd.DataFrame({"text": ["a", "b", "c", "", "d"],
                          "split_cv5_0": ["train", "valid", "test", "train", "unused"]})
    assert leakage.seen_texts(table, "split_cv5_0") == {"a", "b"}
