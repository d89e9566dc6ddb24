"""Intervals and paired tests for the result tables (koemo.reporting.report), and the claims the
results page may state: only those whose paired interval excludes no difference.

Statistics: koemo.reporting.uncertainty. A claim row names A, B, the metric, the mean
difference A - B over the paired runs, its 95% interval, the p-value and `supported`: which
side the interval favours ("A", "B") or "" when it contains 0, in which case no claim is made.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from koemo.experiments.plan import with_protocol
from koemo.reporting import uncertainty as U

CI = "95% CI"
CLAIM_COLUMNS = ["protocol", "A", "B", "metric", "pairs", "difference", CI, "p", "supported"]
CLAIMS_NOTE = (f"Paired over the same test utterances of the same folds and seeds: mean "
               f"difference A - B, its {CI} ({U.N_RESAMPLES} bootstrap draws of the utterances "
               "of each fold) and a two-sided p-value. `supported` names the side the interval "
               "favours; empty = the interval contains 0, so neither is claimed better.")


def _by_split(group: pd.DataFrame) -> dict[str, list[str]]:
    return {split: list(part["run_dir"]) for split, part in group.groupby("split", sort=False)}


def interval_columns(runs: pd.DataFrame, by: list[str], metrics: list[str],
                     cache: U.PredictionCache | None = None) -> pd.DataFrame:
    """by + one `<metric> 95% CI` column per metric: the interval of the mean of each group
    (resampled per fold, see koemo.reporting.uncertainty)."""
    cache = cache or U.PredictionCache()
    rows = []
    for key, group in with_protocol(runs).groupby(by, sort=False) if "run_dir" in runs else ():
        found = U.mean_interval(_by_split(group), metrics, cache)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     **{f"{m} {CI}": U.format_interval(*found[m][1:]) for m in metrics if m in found}})
    return pd.DataFrame(rows, columns=by + [f"{m} {CI}" for m in metrics])


def run_interval(run: pd.Series, metric: str, cache: U.PredictionCache | None = None) -> str:
    """The interval of one run's score (a row of a runs table), over its test utterances."""
    if "run_dir" not in run:
        return ""
    found = U.mean_interval({run["split"]: [run["run_dir"]]}, [metric], cache)
    return U.format_interval(*found[metric][1:]) if metric in found else ""


def per_fold_table(runs: pd.DataFrame, by: list[str], metrics: list[str],
                   cache: U.PredictionCache | None = None) -> pd.DataFrame:
    """One row per group and fold (split): the mean over its runs (seeds) with its interval."""
    cache = cache or U.PredictionCache()
    rows = []
    runs = with_protocol(runs)
    for key, group in runs.groupby(by + ["split"], sort=False):
        found = U.mean_interval(_by_split(group), metrics, cache)
        row = dict(zip(by + ["split"], key))
        row.update({m: f"{found[m][0]:.3f} {U.format_interval(*found[m][1:])}"
                    for m in metrics if m in found})
        rows.append({**row, "n_runs": len(group), "n_test": len(cache(group["run_dir"].iloc[0]).true)})
    frame = pd.DataFrame(rows)
    frame.attrs["notes"] = [f"Mean over the fold's runs (seeds) and its {CI} over the fold's test "
                            f"utterances ({U.N_RESAMPLES} bootstrap draws)."]
    return frame


def claim_row(protocol: str, a: str, b: str, metric: str, pairs: list,
              cache: U.PredictionCache) -> dict:
    test = U.paired_test(pairs, metric, cache)
    return {"protocol": protocol, "A": a, "B": b, "metric": metric, "pairs": test["pairs"],
            "difference": test["difference"], CI: U.format_interval(test["ci_low"], test["ci_high"]),
            "p": test["p"], "supported": winner(test, metric, a, b)}


def winner(test: dict, metric: str, a: str, b: str) -> str:
    """The name of the system the interval favours, or "" (no claim)."""
    return {"A": a, "B": b}.get(U.supports(test, metric), "")


def paired_runs(runs: pd.DataFrame, column: str, a: str, b: str) -> list[tuple]:
    """(split, run dir of A, run dir of B) for every split and seed where both ran."""
    if "run_dir" not in runs:
        return []           # a table of scores alone: nothing to resample
    wide = runs.pivot_table(index=["split", "seed"], columns=column, values="run_dir",
                            aggfunc="first")
    if a not in wide or b not in wide:
        return []
    both = wide[[a, b]].dropna()
    return [(split, row[a], row[b]) for (split, _), row in both.iterrows()]


def best_of_pairs(runs: pd.DataFrame, a: str, candidates: tuple[str, ...], metric: str) -> list[tuple]:
    """Like paired_runs, B being whichever candidate scored higher on that split and seed."""
    index = ["split", "seed"]
    if "run_dir" not in runs:
        return []
    dirs = runs.pivot_table(index=index, columns="classifier", values="run_dir", aggfunc="first")
    scores = runs.pivot_table(index=index, columns="classifier", values=metric, aggfunc="first")
    if a not in dirs or not set(candidates) <= set(dirs.columns):
        return []
    best = scores[list(candidates)].dropna().idxmax(axis=1)
    return [(split, dirs.loc[(split, seed), a], dirs.loc[(split, seed), b])
            for (split, seed), b in best.items() if isinstance(dirs.loc[(split, seed), a], str)]


def test_columns(pairs: list[tuple], metric: str, cache: U.PredictionCache, a: str, b: str) -> dict:
    """The paired-test columns of one comparison (for tables that already hold the gains)."""
    test = U.paired_test(pairs, metric, cache)
    return {CI: U.format_interval(test["ci_low"], test["ci_high"]), "p": test["p"],
            "supported": winner(test, metric, a, b)}


def variant_claims(runs: pd.DataFrame, metrics: Sequence[str],
                   cache: U.PredictionCache | None = None) -> pd.DataFrame:
    """Each variant against every other one and, for classifiers, against the majority-class
    baseline of its own runs, per protocol."""
    cache = cache or U.PredictionCache()
    rows = []
    for protocol, group in with_protocol(runs).groupby("protocol", sort=False):
        variants = list(dict.fromkeys(group["variant"]))
        for i, a in enumerate(variants):
            own = group[group["variant"] == a]
            if (group["stage"] == "multimodal").all():
                pairs = [(s, d, None) for s, d in zip(own["split"], own["run_dir"])]
                rows += [claim_row(protocol, a, "majority class", m, pairs, cache) for m in metrics]
            for b in variants[i + 1:]:
                pairs = paired_runs(group, "variant", a, b)
                rows += [claim_row(protocol, a, b, m, pairs, cache) for m in metrics]
    frame = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    frame.attrs["notes"] = [CLAIMS_NOTE]
    return frame


# The metrics "A beats B" is tested on (every table row has intervals of all of them).
CLAIM_METRICS = {"classification": ["macro_f1", "uar", "weighted_f1"],
                 "regression": ["rmse", "ccc"]}


def uncertainty_tables(runs: pd.DataFrame, metrics: Sequence[str],
                       claim_metrics: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Per-fold means with intervals, and the paired claims between variants (and against
    the majority-class baseline for classifiers); see koemo.reporting.claims."""
    if runs.empty:
        return {}
    by = ["protocol", "variant"]
    return {"per_fold": per_fold_table(runs, by, list(metrics)),
            "claims": variant_claims(runs, claim_metrics)}


def paper_value_notes(runs: pd.DataFrame, reported: dict, metrics: Sequence[str],
                      cache: U.PredictionCache | None = None) -> list[str]:
    """Whether the paper's reported value lies inside our interval (paper protocol only: the
    paper's own split). No predictions of the paper exist, so this is no paired test."""
    cache = cache or U.PredictionCache()
    paper = with_protocol(runs)
    paper = paper[paper["protocol"] == "paper"]
    notes = []
    for variant, group in paper.groupby("variant", sort=False):
        found = U.mean_interval(_by_split(group), metrics, cache)
        for metric in metrics:
            if metric not in found or metric not in reported or not np.isfinite(reported[metric]):
                continue
            _, low, high = found[metric]
            where = ("inside" if low <= reported[metric] <= high else
                     "above" if reported[metric] > high else "below")
            notes.append(f"{variant}: the paper's {metric} {reported[metric]:.3f} is {where} our "
                         f"{CI} {U.format_interval(low, high)}")
    return ["Paper protocol, reported against ours: " + "; ".join(notes) + "."] if notes else []


def format_p(p: float) -> str:
    """p as the bootstrap can resolve it: never below 1 / (B + 1)."""
    floor = 1 / (U.N_RESAMPLES + 1)
    return f"p < {1 / U.N_RESAMPLES:.2g}" if p <= floor * 1.0001 else f"p = {p:.3g}"


def claim_sentences(frame: pd.DataFrame, digits: int = 3) -> tuple[list[str], list[str]]:
    """(claims the intervals support, comparisons that stay open) as sentences."""
    stated, open_ = [], []
    for row in frame.to_dict("records"):
        if not row.get("pairs"):
            continue
        better = row["supported"] if isinstance(row["supported"], str) else ""
        detail = (f"{row['A']} - {row['B']} = {row['difference']:+.{digits}f}, {CI} {row[CI]}, "
                  f"{format_p(row['p'])}, {row['pairs']} paired run(s)")
        if better:
            worse = row["B"] if better == row["A"] else row["A"]
            stated.append(f"{row['protocol']}: **{better}** beats {worse} on {row['metric']} "
                          f"({detail}).")
        else:
            open_.append(f"{row['protocol']}: {row['A']} vs {row['B']} on {row['metric']}: "
                         f"no claim, the interval contains 0 ({detail}).")
    return stated, open_


# ---------------------------------------------------------------- the results page
CLAIM_TABLES = ("multimodal_claims", "fusion_paired", "audio_claims", "text_claims",
                "foundation_claims")
PAGE_NOTE = ("Every \"A beats B\" below is a paired test over the same test utterances "
             f"(bootstrap {CI} of the difference, two-sided p-value); a comparison is stated "
             "as a claim only where its interval excludes 0.")


def fusion_as_claims(frame: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """The fusion table's rows (classifier vs versus, mean gain) in the claims layout."""
    if CI not in frame.columns:
        return pd.DataFrame(columns=CLAIM_COLUMNS)       # saved before the tests existed
    return frame.rename(columns={"classifier": "A", "versus": "B", "mean_gain": "difference"}
                        ).assign(metric=metric)[CLAIM_COLUMNS]


def page_claims(tables: str | Path) -> list[str]:
    """The results page's section of claims, from the claims tables the notebooks saved."""
    from pathlib import Path

    frames = []
    for stem in CLAIM_TABLES:
        path = Path(tables) / f"{stem}.csv"
        if path.is_file() and path.stat().st_size > 1:
            frame = pd.read_csv(path)
            frames.append(fusion_as_claims(frame) if stem == "fusion_paired" else frame)
    frames = [f for f in frames if not f.empty]
    if not frames:
        return []
    stated, open_ = claim_sentences(pd.concat(frames, ignore_index=True))
    lines = ["## What the intervals support", "", PAGE_NOTE, ""]
    lines += [f"- {s}" for s in stated] or [
        "- No comparison's interval excludes 0: no system is claimed better than another."]
    if open_:
        lines += ["", "Not claimed (the interval contains 0):", ""] + [f"- {s}" for s in open_]
    return lines + [""]
