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


MIN_ROWS = 2   # a group needs a variance estimate to enter Welch's test


def _unusable(name: str, sample: np.ndarray) -> str | None:
    """Why a group cannot enter Welch's test (its weight is n / variance), or None."""
    if len(sample) < MIN_ROWS:
        rows = f"{len(sample)} row{'' if len(sample) == 1 else 's'}"
        return f"group {name!r} has {rows} (needs >= {MIN_ROWS})"
    if np.ptp(sample) == 0:
        return f"group {name!r} has no spread (all {len(sample)} rows equal {sample[0]:g})"
    return None


def welch_anova(table: pd.DataFrame, value: str, group: str = "label",
                order: Sequence[str] | None = None) -> dict:
    """Welch ANOVA of `table[value]` by `table[group]` (statsmodels anova_oneway, unequal var).

    Returns F, df1, df2, p, eta_squared and per-group n / mean / std (std with ddof=1), groups in
    `order` (default: sorted names, the paper's alphabetical order). A group with fewer than two
    rows or no spread has no usable variance: it is left out (`left_out` says why) and the test
    compares the other groups (`tested`). With fewer than two groups left nothing is computed:
    `computed` is False, the numbers are NaN and `note` says why. A partial corpus (a few
    sessions, one sad utterance) thus still gets a test, clearly labelled, instead of an error.
    """
    missing = [c for c in (value, group) if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}")
    data = table[[value, group]].dropna()
    names = list(order) if order is not None else sorted(data[group].unique())
    data = data[data[group].isin(names)]
    samples = {name: data.loc[data[group] == name, value].to_numpy(dtype=float) for name in names}
    left_out = {name: why for name, s in samples.items() if (why := _unusable(name, s))}
    tested = [name for name in names if name not in left_out]
    result = {"value": value, "group": group, "tested": tested, "left_out": left_out,
              "groups": {name: _describe(s) for name, s in samples.items()}}
    reasons = "; ".join(left_out.values())
    if len(tested) < 2:
        why = reasons or f"{len(names)} group(s) given"
        return {**result, "computed": False, "F": np.nan, "df1": np.nan, "df2": np.nan,
                "p": np.nan, "eta_squared": np.nan,
                "note": f"not computed: needs >= 2 groups with >= {MIN_ROWS} rows each; {why}"}
    from statsmodels.stats.oneway import anova_oneway

    test = anova_oneway([samples[n] for n in tested], use_var="unequal", welch_correction=True)
    used = data[data[group].isin(tested)]
    df1, df2 = (float(d) for d in test.df)
    return {**result, "computed": True, "F": float(test.statistic), "df1": df1, "df2": df2,
            "p": float(test.pvalue),
            "eta_squared": eta_squared(used[value].to_numpy(), used[group].to_numpy()),
            "note": f"left out: {reasons}" if reasons else ""}


def _describe(sample: np.ndarray) -> dict:
    """n, mean and std (ddof=1) of a group; NaN where there are too few rows."""
    return {"n": int(len(sample)), "mean": float(sample.mean()) if len(sample) else np.nan,
            "std": float(sample.std(ddof=1)) if len(sample) > 1 else np.nan}


def format_p(p: float) -> str:
    return "p < .001" if p < 0.001 else f"p = {p:.3f}".replace("0.", ".", 1)


def format_anova(result: dict) -> str:
    """APA-like one-liner: `F(4, 246.83) = 63.12, p < .001, eta^2 = .379` (or why not)."""
    if result.get("computed", True) is False:
        return result["note"]
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
