"""The foundation-model study of notebook 5-4 end to end on the tiny corpora: the folds and
directions it trains, that no test utterance trains a probe, the tables' rows and their order,
the majority row against scikit-learn, zero-shot predictions scored both ways by hand, the
paired test's symmetry, the results page and `koemo plan --summary`. The paper's method is the
cross-corpus study's runs (tests/conftest.py trains them once per session)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier

from koemo.config.load import with_changes
from koemo.experiments import foundation as fd
from koemo.experiments import foundation_plan as plan
from koemo.experiments.plan import split_column_of, split_config
from koemo.reporting import foundation as fr
from koemo.reporting import uncertainty as U
from koemo.reporting.report import markdown_table, save_runs, save_tables

TABLES = ["kemdy20", "kemdy19", "kemdy19_to_kemdy20", "kemdy20_to_kemdy19"]


@pytest.fixture(scope="module")
def study(cross_study, cross_study_config, tiny_corpus, cross_study_corpus19, tmp_path_factory):
    """tiny.yaml's foundation study over the cross-corpus study's workdir and runs."""
    workdir, paper = cross_study
    runs = fd.run_study(cross_study_config, tiny_corpus, cross_study_corpus19, workdir,
                        progress=False)
    out = tmp_path_factory.mktemp("paper")
    save_runs(paper["in_corpus"], out / "runs_cross_in_corpus.csv", workdir)
    save_runs(paper["cross"], out / "runs_cross.csv", workdir)
    tables = fr.foundation_tables(runs, fr.paper_runs(out, workdir))
    return workdir, runs, tables, paper


def _expected_systems(cfg) -> list[str]:
    study = cfg.reproduce.foundation
    names = [f"probe: {n} (audio)" for n in study.audio] + [f"probe: {n} (text)" for n in study.text]
    names += [f"probe: {p.audio} + {p.text} (fused)" for p in study.fused]
    if plan.funasr_installed():       # the optional extra: its models run, else are left out
        names += [fd.zero_shot_name(e.kind, e.model, s) for e in study.zero_shot
                   for s in ("excluded", "errors")]
    return [fr.PAPER, *names, fd.MAJORITY]


@pytest.mark.slow   # reads the session's cross-corpus study (trained once for both modules)
def test_each_table_trains_its_folds_and_no_test_utterance_trains_a_probe(study):
    workdir, runs, _, paper = study
    assert {t: sorted(set(runs.loc[runs["table"] == t, "split"])) for t in TABLES} == {
        "kemdy20": ["kemdy20_cv5_f0"], "kemdy19": ["kemdy19_cv5_f0"],
        "kemdy19_to_kemdy20": ["kemdy19_to_kemdy20"], "kemdy20_to_kemdy19": ["kemdy20_to_kemdy19"]}
    table = pd.read_parquet(workdir / "cross" / "utterances.parquet").set_index("segment_id")
    for _, run in runs.iterrows():
        assert Path(run["run_dir"]).is_relative_to(workdir / "cross" / "runs" / run["split"])
        tested = pd.read_parquet(Path(run["run_dir"]) / "test_predictions.parquet")["segment_id"]
        column = table[split_column_of(run["split"])]
        assert set(column[tested]) == {"test"}
        if "_to_" in run["table"]:
            assert set(table.loc[tested, "corpus"]) == {run["table"].split("_to_")[1]}
    # the same test utterances as the paper's method on KEMDy20's fold 0 (its own workdir)
    theirs = paper["in_corpus"]
    theirs = theirs[(theirs["classifier"] == "attention_lstm") & (theirs["split"] == "cv5_f0")]
    probe = runs[(runs["table"] == "kemdy20") & (runs["kind"] == "probe")].iloc[0]
    ids = [set(pd.read_parquet(Path(d) / "test_predictions.parquet")["segment_id"])
           for d in (theirs["run_dir"].iloc[0], probe["run_dir"])]
    assert ids[0] == ids[1]


@pytest.mark.slow
def test_tables_hold_every_row_in_order_with_intervals_and_the_paired_test(study, cross_study_config):
    _, runs, tables, _ = study
    assert list(tables) == TABLES + ["claims"]
    for name in TABLES:
        table = tables[name]
        assert table["system"].tolist() == _expected_systems(cross_study_config)
        for shown in ("WA", "UA", "macro F1", "weighted F1"):
            assert table[f"{shown} 95% CI"].str.startswith("[").all()
        others = table[table["system"] != fr.PAPER]
        assert others[f"{fr.VERSUS} 95% CI"].str.startswith("[").all()
        assert table.loc[table["system"] == fr.PAPER, fr.VERSUS].isna().all()
        assert "macro F1 unseen text" in table
        text = markdown_table(table)
        if not plan.funasr_installed():
            assert "Left out: tiny:emotion2vec (FunASR is not installed" in text
    claims = tables["claims"]
    assert set(claims["B"]) == {fr.PAPER} and len(claims) == 4 * (len(_expected_systems(
        cross_study_config)) - 1)


@pytest.mark.slow
def test_reproduce_is_told_of_every_pass_and_probe(study, cross_study_config):
    """Each upstream's pass and each probe trained reach the progress files koemo reproduce
    follows (W/progress.jsonl and W/cross/progress.jsonl), as the paper method's runs do."""
    from koemo.modeling.progress import progress_files

    workdir, runs, _, _ = study
    events = [json.loads(line) for path in progress_files(workdir)
              for line in path.read_text(encoding="utf-8").splitlines()]
    probes = {e["run"] for e in events if e.get("stage") == "probe" and e["event"] == "done"}
    assert probes == set(runs.loc[runs["kind"] == "probe", "run_dir"])
    passes = {e["what"] for e in events if e["event"] == "pass" and e["done"] == e["total"]}
    foundation = cross_study_config.reproduce.foundation
    assert {f"{n} (audio)" for n in foundation.audio} | {f"{n} (text)" for n in foundation.text} <= passes


def test_majority_row_is_sklearns_most_frequent_training_class(study):
    workdir, runs, tables, _ = study
    table = pd.read_parquet(workdir / "cross" / "utterances.parquet")
    rows = table[table["split_kemdy19_to_kemdy20"].isin(["train", "valid", "test"])]
    train = rows[rows["split_kemdy19_to_kemdy20"] == "train"]
    test = rows[rows["split_kemdy19_to_kemdy20"] == "test"]
    train, test = (part[part["audio_problem"] == ""] for part in (train, test))   # corrected
    guess = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(train), 1)), train["label"])
    pred = guess.predict(np.zeros((len(test), 1)))
    present = sorted(set(test["label"]))
    expected = {"WA": skm.accuracy_score(test["label"], pred),
                "UA": skm.recall_score(test["label"], pred, labels=present, average="macro"),
                "macro F1": skm.f1_score(test["label"], pred, labels=present, average="macro",
                                         zero_division=0),
                "weighted F1": skm.f1_score(test["label"], pred, average="weighted",
                                            zero_division=0)}
    row = tables["kemdy19_to_kemdy20"].set_index("system").loc[fd.MAJORITY]
    for column, value in expected.items():
        assert float(row[column].split(" ± ")[0]) == pytest.approx(value, abs=5e-4), column


@pytest.mark.slow
def test_paired_test_against_the_paper_is_symmetric(study):
    _, runs, tables, paper = study
    theirs = paper["cross"]
    theirs = theirs[(theirs["classifier"] == "attention_lstm")
                    & (theirs["split"] == "kemdy20_to_kemdy19")]["run_dir"].iloc[0]
    mine = runs[(runs["split"] == "kemdy20_to_kemdy19") & (runs["kind"] == "probe")]["run_dir"].iloc[0]
    ab = U.paired_test([("kemdy20_to_kemdy19", mine, theirs)], "macro_f1")
    ba = U.paired_test([("kemdy20_to_kemdy19", theirs, mine)], "macro_f1")
    assert ab["difference"] == pytest.approx(-ba["difference"])
    assert (ab["ci_low"], ab["ci_high"]) == pytest.approx((-ba["ci_high"], -ba["ci_low"]))
    assert ab["p"] == pytest.approx(ba["p"])
    row = tables["kemdy20_to_kemdy19"].set_index("system").iloc[1]       # the first probe
    assert row[fr.VERSUS] == pytest.approx(ab["difference"])


@pytest.mark.slow
def test_results_page_and_plan_summary_hold_the_study(study, cross_study_config, tmp_path):
    from koemo.reporting.page import write_paper_page
    from koemo.reporting.plan_summary import render, summarize

    workdir, _, tables, _ = study
    save_tables(tables, tmp_path / "tables", prefix="foundation_")
    page = write_paper_page(workdir, cross_study_config, tmp_path).read_text(encoding="utf-8")
    for title in fr.TABLES.values():
        assert f"## Foundation models: {title}" in page
    assert "## What the intervals support" in page and fr.PAPER in page
    summary = summarize(cross_study_config, workdir)["foundation"]
    systems = len(fd.probe_systems(cross_study_config))
    assert (summary["splits"], summary["probe runs"], summary["majority runs"]) == (4, 4 * systems, 4)
    assert summary["zero-shot runs"] == 2 * 4 * len(cross_study_config.reproduce.foundation.zero_shot)
    found = {row["upstream"]: row for row in summary["upstreams"]}
    assert found["tiny:wavlm"]["TFLOP"] is not None and found["tiny:wavlm"]["utterances"] == len(
        pd.read_parquet(workdir / "cross" / "utterances.parquet"))
    assert "Foundation study (notebook 5-4)" in render(summarize(cross_study_config, workdir))


# ---------------------------------------------------------------- small cases, by hand
def test_zero_shot_predictions_scored_excluded_and_as_errors(tiny_config, tmp_path):
    from koemo.config.foundation import ZeroShotModel

    cfg = with_changes(tiny_config, {"reproduce": {"foundation": {}}})
    run_cfg = split_config(cfg, "cv5_f0")
    classes = list(cfg.data.classes)
    true = ["neutral", "neutral", "happy", "sad", "angry", "surprise"]
    said = ["neutral", None, "happy", "happy", None, "surprise"]
    test = pd.DataFrame({"segment_id": [f"t{i}" for i in range(6)], "label": true,
                         "label_id": [classes.index(c) for c in true]})
    train = pd.DataFrame({"segment_id": ["a", "b", "c"], "label_id": [classes.index("sad")] * 2 + [0]})
    parts = {"train": train, "valid": train.iloc[:1], "test": test}
    predictions = pd.DataFrame({"segment_id": test["segment_id"], "native": ["x"] * 6,
                                "label": said})
    entry = ZeroShotModel(kind="emotion2vec", model="some/model")
    context = plan.Context("kemdy20", tmp_path, ("cv5_f0",))
    rows = {r["system"]: r for r in fd.zero_shot_runs(context, entry, predictions, parts, run_cfg)}
    excluded = rows[fd.zero_shot_name("emotion2vec", "some/model", "excluded")]
    errors = rows[fd.zero_shot_name("emotion2vec", "some/model", "errors")]
    # excluded: 4 rows (neutral, happy, sad->happy, surprise): F1 1, 2/3, 0, 1 over 4 classes
    assert excluded["accuracy"] == pytest.approx(3 / 4)
    assert excluded["macro_f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    # as errors: 6 rows; neutral F1 2/3 (one of two), happy 2/3, sad 0, angry 0, surprise 1
    assert errors["accuracy"] == pytest.approx(3 / 6)
    assert errors["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0 + 0 + 1) / 5)
    assert errors["uar"] == pytest.approx((0.5 + 1 + 0 + 0 + 1) / 5)
    assert excluded["outside"] == errors["outside"] == 2
    metrics = json.loads((Path(errors["run_dir"]) / "test_metrics.json").read_text())
    assert metrics["baseline"]["majority_class"] == "sad"          # of the training rows
    saved = pd.read_parquet(Path(errors["run_dir"]) / "test_predictions.parquet")
    assert saved["pred"].tolist()[:2] == ["neutral", fd.OUTSIDE]


def test_without_funasr_its_models_are_left_out_and_named(monkeypatch):
    from koemo.config.load import load_config

    monkeypatch.setattr(plan, "funasr_installed", lambda: False)
    cfg = load_config("paper")                     # the schema's models
    missing = plan.left_out(cfg)
    assert sorted(missing) == ["FunAudioLLM/SenseVoiceSmall", "emotion2vec/emotion2vec_plus_base",
                               "emotion2vec/emotion2vec_plus_large"]
    assert all('pip install "koemo[foundation]"' in why for why in missing.values())
    monkeypatch.setattr(plan, "funasr_installed", lambda: True)
    assert plan.left_out(cfg) == {}


def test_every_bad_name_is_reported_before_anything_runs(tiny_config, tmp_path):
    from koemo.errors import KoemoInputError

    cfg = with_changes(tiny_config, {"reproduce": {"foundation": {
        "audio": ["tiny:wavml", "tiny:roberta"], "text": ["standin", "./no/such/dir"],
        "fused": [{"audio": "standin", "text": "tiny:electra"}], "zero_shot": []}}})
    with pytest.raises(KoemoInputError) as found:
        fd.run_study(cfg, None, None, tmp_path, progress=False)
    for part in ("tiny:wavml: no tiny audio model", "tiny:roberta: no tiny audio model",
                 "./no/such/dir: neither a directory nor a hub id",
                 "standin: the KoBERT stand-in is a text upstream, not audio"):
        assert part in str(found.value)
    assert not list(tmp_path.iterdir())                 # nothing built or written


def test_plan_summary_says_when_no_upstream_can_be_sized(tiny_config):
    """Offline (tests: HF_HUB_OFFLINE=1) the default hub upstreams' config files are not at
    hand: the summary says the GPU time is unknown instead of estimating 0.0 minutes."""
    from koemo.reporting.plan_summary import render, summarize

    cfg = with_changes(tiny_config, {"reproduce": {"foundation": {}}})
    summary = summarize(cfg)["foundation"]
    assert summary["upstreams sized"] == 0 and summary["GPU-min (estimate)"] is None
    text = render(summarize(cfg))
    assert "GPU-minutes unknown" in text and "0.0 GPU-minutes" not in text


def test_rows_keep_the_study_order_when_a_zero_shot_row_is_missing_from_early_folds():
    """The demo's SenseVoice stand-in predicted only outside the classes on the first folds,
    so its `excluded` row first appeared after the majority class of fold 0."""
    sv, e2v = "zero-shot: tiny:sensevoice", "zero-shot: tiny:emotion2vec"
    fold0 = [fr.PAPER, "probe: a (audio)", e2v + fd.EXCLUDED, e2v + fd.ERRORS, sv + fd.ERRORS,
             fd.MAJORITY]
    fold1 = [fr.PAPER, "probe: a (audio)", e2v + fd.EXCLUDED, e2v + fd.ERRORS,
             sv + fd.EXCLUDED, sv + fd.ERRORS, fd.MAJORITY]
    assert fr.system_order(pd.Series(fold0 + fold1)) == fold1
