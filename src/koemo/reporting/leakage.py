"""Scores without repeated text: the second, leakage-free score of a classifier run.

Scripted dialogues repeat lines across sessions (and corpora), so a text model can meet in a
test session a line it met in training. `unseen_text_scores` scores a run again on the test
utterances whose (cleaned) text occurs in none of its training or validation rows; empty
texts count as unseen. The fusion (5-2) and cross-corpus (5-3) tables show it beside the
usual score when `reproduce.leakage_free` is on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from koemo.experiments.plan import split_column_of
from koemo.modeling.runs import RunDir, workdir_of_run

METRICS = ["macro_f1", "uar", "weighted_f1"]
UNSEEN = "macro_f1 unseen text"
UNSEEN_SHARE = "unseen share"


class _Tables:
    """Each workdir's utterance table, read once."""

    def __init__(self) -> None:
        self._tables: dict[Path, pd.DataFrame] = {}

    def __call__(self, workdir: Path) -> pd.DataFrame:
        if workdir not in self._tables:
            self._tables[workdir] = pd.read_parquet(workdir / "utterances.parquet")
        return self._tables[workdir]


def seen_texts(table: pd.DataFrame, column: str) -> set[str]:
    """The non-empty texts of the rows a run trains or validates on."""
    texts = table.loc[table[column].isin(["train", "valid"]), "text"]
    return set(texts[texts.str.len() > 0])


def unseen_text_scores(run_dir: str | Path, split: str, tables: _Tables | None = None) -> dict:
    """`macro_f1`, `uar`, `weighted_f1` of a classifier run on its test utterances whose text is
    not among its training or validation texts, with `n_unseen` and `n_test`."""
    from koemo.modeling.metrics import classification_report

    run = RunDir(run_dir)
    table = (tables or _Tables())(workdir_of_run(run.path))
    predictions = run.predictions()
    text = table.set_index("segment_id")["text"]
    seen = seen_texts(table, split_column_of(split))
    unseen = ~predictions["segment_id"].map(text).isin(seen).to_numpy()
    classes = run.metrics().class_names()
    scores = {m: np.nan for m in METRICS}
    if unseen.any():
        report = classification_report(predictions["true"][unseen].to_numpy(),
                                       predictions["pred"][unseen].to_numpy(), classes)
        scores = {m: float(report[m]) for m in METRICS}
    return {**scores, "n_unseen": int(unseen.sum()), "n_test": int(len(unseen))}


def unseen_columns(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """by + UNSEEN (mean over the group's runs) + UNSEEN_SHARE (share of test rows kept)."""
    tables, rows = _Tables(), []
    for key, group in runs.groupby(by, sort=False):
        scores = [unseen_text_scores(d, s, tables) for d, s in zip(group["run_dir"], group["split"])]
        rows.append({**dict(zip(by, key)),
                     UNSEEN: float(np.nanmean([s["macro_f1"] for s in scores]))
                     if any(np.isfinite(s["macro_f1"]) for s in scores) else np.nan,
                     UNSEEN_SHARE: sum(s["n_unseen"] for s in scores)
                     / max(1, sum(s["n_test"] for s in scores))})
    return pd.DataFrame(rows, columns=by + [UNSEEN, UNSEEN_SHARE])
