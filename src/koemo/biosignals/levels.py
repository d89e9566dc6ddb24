"""Level check of step 1-3: does the per-utterance mean level differ by emotion? Kruskal-Wallis
on raw units and within speaker (removes personal baselines); independent of any clustering."""
from __future__ import annotations

import numpy as np
import pandas as pd


def within_speaker_z(level: pd.Series, speaker: pd.Series) -> pd.Series:
    """Standardise each utterance's level within its speaker (mean 0, sd 1). Removes the
    person's baseline (skin temperature and conductance differ far more between people than
    between emotions); speakers with < 2 utterances or no spread give NaN."""
    grouped = level.groupby(speaker)
    spread = grouped.transform("std")
    return (level - grouped.transform("mean")) / spread.where(spread > 0)


def level_tests(frame: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kruskal-Wallis tests of the per-utterance mean level by label (`frame`: label, speaker,
    level): raw units, and standardised within speaker. Effect size epsilon^2 = H / (n - 1)."""
    from scipy.stats import kruskal

    measures = {"mean_level": frame["level"],
                "within_speaker_level": within_speaker_z(frame["level"], frame["speaker"])}
    rows = []
    for name, values in measures.items():
        groups = [v.dropna().to_numpy() for _, v in values.groupby(frame["label"])]
        groups = [g for g in groups if len(g)]
        n = int(sum(len(g) for g in groups))
        row = {"measure": name, "H": float("nan"), "p": float("nan"),
               "epsilon_squared": float("nan"), "n": n, "n_groups": len(groups),
               "associated": False}
        if len(groups) >= 2 and np.ptp(np.concatenate(groups)) > 0:
            result = kruskal(*groups)
            row.update(H=float(result.statistic), p=float(result.pvalue),
                       epsilon_squared=float(result.statistic / (n - 1)),
                       associated=bool(result.pvalue < alpha))
        rows.append(row)
    by_label = (frame.groupby("label")["level"].agg(["size", "mean", "median"])
                .rename(columns={"size": "n"}).reset_index())
    return pd.DataFrame(rows), by_label

