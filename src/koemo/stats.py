"""Does arousal/valence differ by emotion? Welch's one-way ANOVA (unequal variances, as the
class sizes and spreads of KEMDy20 differ wildly), eta squared and class means.

The paper reports e.g. arousal F(4, 246.83) = 63.12, eta^2 .379; `format_anova` writes that form.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd


def eta_squared(values: np.ndarray, groups: np.ndarray) -> float:
    """Between-group sum of squares over the total sum of squares."""
    values = np.asarray(values, dtype=float)
    grand_mean = values.mean()
    ss_total = float(((values - grand_mean) ** 2).sum())
    ss_between = sum(len(v) * (v.mean() - grand_mean) ** 2
                     for v in (values[groups == g] for g in np.unique(groups)))
    return float(ss_between / ss_total) if ss_total > 0 else float("nan")


def welch_anova(table: pd.DataFrame, value: str, group: str = "label",
                order: Sequence[str] | None = None) -> dict:
    """Welch ANOVA of `table[value]` by `table[group]` (statsmodels anova_oneway, unequal var).

    Returns F, df1, df2, p, eta_squared and per-group n / mean / std (std with ddof=1), groups in
    `order` (default: sorted names, the paper's alphabetical order). Groups with fewer than two
    rows have no variance and cannot enter Welch's test: they raise ValueError.
    """
    from statsmodels.stats.oneway import anova_oneway

    missing = [c for c in (value, group) if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}")
    data = table[[value, group]].dropna()
    names = list(order) if order is not None else sorted(data[group].unique())
    data = data[data[group].isin(names)]
    samples = [data.loc[data[group] == name, value].to_numpy(dtype=float) for name in names]
    too_small = [name for name, s in zip(names, samples) if len(s) < 2]
    if too_small or len(names) < 2:
        raise ValueError(f"Welch ANOVA of {value!r} needs >= 2 groups with >= 2 rows each; "
                         f"too small: {too_small or names}")
    result = anova_oneway(samples, use_var="unequal", welch_correction=True)
    df1, df2 = (float(d) for d in result.df)
    return {
        "value": value, "group": group,
        "F": float(result.statistic), "df1": df1, "df2": df2, "p": float(result.pvalue),
        "eta_squared": eta_squared(data[value].to_numpy(), data[group].to_numpy()),
        "groups": {name: {"n": int(len(s)), "mean": float(s.mean()), "std": float(s.std(ddof=1))}
                   for name, s in zip(names, samples)},
    }


def format_p(p: float) -> str:
    return "p < .001" if p < 0.001 else f"p = {p:.3f}".replace("0.", ".", 1)


def format_anova(result: dict) -> str:
    """APA-like one-liner: `F(4, 246.83) = 63.12, p < .001, eta^2 = .379`."""
    eta = f"{result['eta_squared']:.3f}".replace("0.", ".", 1)
    return (f"F({result['df1']:.0f}, {result['df2']:.2f}) = {result['F']:.2f}, "
            f"{format_p(result['p'])}, eta^2 = {eta}")


def emotion_statistics(table: pd.DataFrame, values: Iterable[str] = ("arousal", "valence"),
                       group: str = "label", order: Sequence[str] | None = None) -> dict:
    """Welch ANOVA of each of `values` by emotion, with its formatted line."""
    out = {}
    for value in values:
        result = welch_anova(table, value, group, order)
        out[value] = {**result, "text": format_anova(result)}
    return out


def class_means_table(stats: dict) -> pd.DataFrame:
    """Class means as a table: one row per value (arousal, valence), one column per class."""
    return pd.DataFrame({value: {name: g["mean"] for name, g in res["groups"].items()}
                         for value, res in stats.items()}).T
