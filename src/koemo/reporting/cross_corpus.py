"""The cross-corpus table of notebook 5-3, and the score without repeated text.

One row per (train corpus, test corpus, classifier): in-corpus session folds (mean ± std over
folds and seeds) beside training on the other corpus, macro F1, UAR and weighted F1 with the
bootstrap interval of each mean, and the majority class of the test corpus' own test rows as
the baseline of each direction. A second table pairs each fused classifier with the single
modalities of the same direction, split and seed (koemo.reporting.claims).
With `reproduce.leakage_free`, each row is also scored without the test utterances whose text
the run met in training (koemo.reporting.leakage).
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from koemo.config.schema import CROSS_PROTOCOLS, Corpus
from koemo.experiments.plan import protocol_of
from koemo.modeling.runs import RunDir
# The metrics of the cross-corpus table are those the leakage-free score is computed for.
from koemo.reporting.leakage import METRICS as CROSS_METRICS
from koemo.reporting.leakage import UNSEEN, UNSEEN_SHARE, unseen_columns

IN_CORPUS, CROSS = "in-corpus (session folds)", "cross-corpus"
MAJORITY = "majority class of the test corpus"
BY = ["test", "train", "evaluation", "classifier"]


def direction(split: str, main_corpus: str) -> tuple[str, str, str]:
    """(train corpus, test corpus, evaluation) of a split: `cv5_fK` is the main workdir's
    corpus' own folds, `<corpus>_cv5_fK` that corpus', `a_to_b` cross-corpus."""
    if split in CROSS_PROTOCOLS:
        source, target = split.split("_to_")
        return source, target, CROSS
    protocol = protocol_of(split)
    corpus = main_corpus if protocol == "cv5" else protocol.removesuffix("_cv5")
    return corpus, corpus, IN_CORPUS


def with_directions(runs: pd.DataFrame, main_corpus: str) -> pd.DataFrame:
    parts = [direction(split, main_corpus) for split in runs["split"]]
    return runs.assign(train=[p[0] for p in parts], test=[p[1] for p in parts],
                       evaluation=[p[2] for p in parts])


# ---------------------------------------------------------------- the tables
def test_majority_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Per direction: the test corpus' most frequent class (over each split's test rows)
    predicted for every test row, scored by the classifiers' rule (classes present)."""
    from koemo.modeling.metrics import classification_report

    rows = []
    for key, group in runs.groupby(BY[:3], sort=False):
        first = group[group["seed"] == group["seed"].min()].drop_duplicates("split")
        scores = []
        for run_dir in first["run_dir"]:
            run = RunDir(run_dir)
            predictions, classes = run.predictions(), run.metrics().class_names()
            true = predictions["true"].to_numpy()
            scores.append(classification_report(true, true, classes)["baseline"])
        rows.append({**dict(zip(BY[:3], key)), "classifier": MAJORITY,
                     **{m: f"{np.mean([s[m] for s in scores]):.3f}" for m in CROSS_METRICS},
                     "n_folds": len(scores), "n_runs": len(scores)})
    return pd.DataFrame(rows)


def cross_corpus_tables(in_corpus: pd.DataFrame, cross: pd.DataFrame, main_corpus: Corpus = "kemdy20",
                        leakage_free: bool = True) -> dict[str, pd.DataFrame]:
    """{"cross_corpus": the table (module doc), "cross_paired": fusion against single
    modalities per direction}; notes only when the study trained nothing."""
    from koemo.reporting.report import summarise

    runs = pd.concat([in_corpus, cross], ignore_index=True)
    runs = runs[runs["stage"] == "multimodal"] if len(runs) else runs
    if runs.empty:
        return not_run()
    runs = with_directions(runs, main_corpus)
    table = summarise(runs, BY, CROSS_METRICS)
    if leakage_free:
        table = table.merge(unseen_columns(runs, BY), on=BY, how="left")
    table = pd.concat([table, test_majority_rows(runs).reindex(columns=table.columns)],
                      ignore_index=True)
    table = table.sort_values(["test", "evaluation"], key=_evaluation_order,
                              kind="stable").reset_index(drop=True)
    table.attrs["notes"] = notes(leakage_free)
    return {"cross_corpus": table, "cross_paired": paired_by_direction(runs)}


def _evaluation_order(column: pd.Series) -> pd.Series:
    """In-corpus rows before cross-corpus ones of the same test corpus."""
    return column.map({IN_CORPUS: 0, CROSS: 1}) if column.name == "evaluation" else column


def paired_by_direction(runs: pd.DataFrame) -> pd.DataFrame:
    """Each fused classifier against the single modalities of the same direction, split and
    seed (koemo.reporting.report.paired_fusion_gains), one block per `train -> test`."""
    from koemo.reporting.report import paired_fusion_gains

    paired = paired_fusion_gains(runs)
    names = {protocol_of(split): f"{a} -> {b}"
             for split, a, b in zip(runs["split"], runs["train"], runs["test"])}
    if "protocol" in paired:
        paired = paired.assign(protocol=paired["protocol"].map(names)).rename(
            columns={"protocol": "train -> test"})
    return paired


def notes(leakage_free: bool) -> list[str]:
    text = [f"{IN_CORPUS}: mean ± std over the test corpus' five session folds; {CROSS}: "
            "every row of the training corpus trains (10% validating), every row of the test "
            "corpus is test. 95% CI: bootstrap interval of the mean over the test utterances."]
    if leakage_free:
        text.append(f"`{UNSEEN}`: macro F1 again on the test utterances whose text occurs in "
                    f"none of the run's training or validation rows; `{UNSEEN_SHARE}`: the "
                    "share of test utterances that remains.")
    return text


CROSS_OFF = ("No cross-corpus study: it needs a KEMDy19 copy beside KEMDy20 (`koemo reproduce "
             "--kemdy19 ROOT`, notebook parameter KEMDY19_ROOT, or `synthetic.kemdy19` for "
             "synthetic runs), and `reproduce.cross_corpus` not null.")


def not_run(note: str = CROSS_OFF) -> dict[str, pd.DataFrame]:
    tables = {name: pd.DataFrame() for name in ("cross_corpus", "cross_paired")}
    for frame in tables.values():
        frame.attrs["notes"] = [note]
    return tables
