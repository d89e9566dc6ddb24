"""The original's step 1-3 redone: do TEMP/EDA carry emotion?

The original clustered per-utterance wrist temperature series with DTW k-means in R (`dtwclust`)
and concluded that TEMP carries no emotion signal; EDA (sessions with gaps) and IBI (irregular
sampling) were excluded. Its input file was never published, so the input is rebuilt from the
corpus files (io.py) and the conclusion is COMPUTED from the data. `analyse(root)` runs, per
signal, two complementary checks:
  1. shape (clustering.py): DTW k-means clusters vs emotion labels.
  2. level (levels.py): Kruskal-Wallis of the per-utterance mean level by emotion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from koemo.biosignals.clustering import (N_INIT, N_PERMUTATIONS, cluster_association,
                                         dtw_kmeans_sweep, normalised_series, stratified_sample)
from koemo.biosignals.io import _load_with_labels, check_request, require_signal_folders
from koemo.biosignals.levels import level_tests
from koemo.config.schema import Biosignal, LabelPolicy
from koemo.errors import KoemoInputError
from koemo.dataset.labels import PAPER_CLASSES, classes_for, resolve_label

# Defaults sized so the tiny test corpus runs in seconds and full KEMDy20 in minutes: DTW k-means
# and the DTW silhouette are O(n^2 * L^2). 24 samples = 6 s at 4 Hz, the mean utterance length.
DEFAULT_MAX_SERIES = 600
DEFAULT_SERIES_LENGTH = 24
MIN_SAMPLES = 3          # fewer samples carry no shape (KEMDy20's shortest utterance: 0.73 s)


@dataclass
class SignalResult:
    """Everything computed for one signal. Tables are DataFrames; see `analyse` for meaning."""
    signal: str
    n_labelled: int                 # utterances with a label and >= MIN_SAMPLES samples
    n_clustered: int                # after the stratified `max_series` cap
    series_length: int
    k: int
    silhouette: pd.DataFrame        # k, silhouette, inertia, n_iter, problem
    assignments: pd.DataFrame       # segment_id, speaker, label, cluster (for the reported k)
    centroids: np.ndarray           # [k, series_length] DTW barycentres of the normalised series
    contingency: pd.DataFrame       # clusters x labels, counts
    chi2: float
    dof: int
    p: float                        # asymptotic chi-square p-value
    p_permutation: float            # labels permuted against clusters (valid for sparse tables)
    cramers_v: float
    low_expected_share: float       # share of expected counts < 5 (Cochran's rule: <= 0.2)
    clusters_associated: bool
    level_tests: pd.DataFrame       # measure, H, p, epsilon_squared, n, n_groups, associated
    level_by_label: pd.DataFrame    # label, n, mean, median of the per-utterance mean level
    conclusion_clusters: str
    conclusion_level: str


@dataclass
class BiosignalReport:
    results: dict[str, SignalResult]
    coverage: pd.DataFrame          # as load_biosignals
    skipped: pd.DataFrame           # signal, segment_id, reason: utterances not analysed
    settings: dict

    @property
    def conclusions(self) -> list[str]:
        return [line for r in self.results.values()
                for line in (r.conclusion_clusters, r.conclusion_level)]



def _decisive_p(assoc: dict) -> tuple[float, str]:
    """The permutation p-value decides when Cochran's rule fails (> 20% of expected counts < 5)."""
    if assoc["low_expected_share"] > 0.2:
        return assoc["p_permutation"], "permutation"
    return assoc["p"], "chi-square"


def conclude_clusters(signal: str, k: int, n: int, assoc: dict, alpha: float) -> str:
    """One sentence computed from the test results (never written in by hand)."""
    from koemo.reporting.stats import format_p

    if math.isnan(assoc["chi2"]):
        return (f"{signal}: no test of clusters vs emotion (k={k}, n={n}): fewer than two "
                f"clusters or two emotions among the clustered utterances.")
    p, which = _decisive_p(assoc)
    verdict = "are" if p < alpha else "are not"
    return (f"{signal}: DTW k-means clusters (k={k}, n={n}) {verdict} associated with emotion at "
            f"alpha={alpha} (chi2({assoc['dof']}) = {assoc['chi2']:.2f}, {format_p(assoc['p'])}; "
            f"permutation {format_p(assoc['p_permutation'])}; Cramer's V = "
            f"{assoc['cramers_v']:.3f}; decided by the {which} p-value, "
            f"{assoc['low_expected_share']:.0%} of expected counts < 5).")


def conclude_level(signal: str, tests: pd.DataFrame, alpha: float) -> str:
    from koemo.reporting.stats import format_p

    parts = []
    for row in tests.itertuples(index=False):
        what = "raw mean level" if row.measure == "mean_level" else "within-speaker standardised level"
        if math.isnan(row.H):
            parts.append(f"{what}: not testable (n={row.n}, {row.n_groups} emotion group(s))")
            continue
        verdict = "differs" if row.associated else "does not differ"
        parts.append(f"{what} {verdict} by emotion at alpha={alpha} (Kruskal-Wallis H = "
                     f"{row.H:.2f}, {format_p(row.p)}, epsilon^2 = {row.epsilon_squared:.3f}, "
                     f"n = {row.n}, {row.n_groups} emotions)")
    return f"{signal}: per-utterance " + "; ".join(parts) + "."


def labelled_series(series: pd.DataFrame, labels: pd.DataFrame, label_policy: LabelPolicy,
                    classes: Sequence[str], signal: str) -> tuple[pd.DataFrame, list[dict]]:
    """Join series with their emotion label under the label policy; returns the usable rows
    (segment_id, speaker, label, values, level) and one skip record per dropped utterance."""
    merged = series.merge(labels[["segment_id", "emotion_total"]], on="segment_id", how="left")
    skipped, keep = [], []
    for row in merged.itertuples(index=False):
        if pd.isna(row.emotion_total):
            reason = "segment id not in any annotation file"
            label = None
        else:
            label, reason = resolve_label(row.emotion_total, label_policy, tuple(classes))
        if label is not None and row.n_samples < MIN_SAMPLES:
            label, reason = None, f"{row.n_samples} sample(s), fewer than {MIN_SAMPLES}"
        keep.append(label)
        if label is None:
            skipped.append({"signal": signal, "segment_id": row.segment_id, "reason": reason})
    merged["label"] = keep
    usable = merged[merged["label"].notna()].reset_index(drop=True)
    usable["speaker"] = usable["session"].astype(str) + "/" + usable["speaker"].astype(str)
    usable["level"] = [float(np.mean(v)) for v in usable["values"]]
    return usable[["segment_id", "speaker", "label", "values", "level"]], skipped


def analyse_signal(frame: pd.DataFrame, signal: str, ks: Iterable[int], k: int, seed: int,
                   max_series: int, series_length: int, alpha: float,
                   n_jobs: int = 1) -> SignalResult:
    """Both checks for one signal on its labelled utterances (see the module docstring).

    The level test uses every labelled utterance (cheap); clustering uses the stratified
    `max_series` sample (DTW is O(n^2)).
    """
    tests, by_label = level_tests(frame, alpha)
    sample = stratified_sample(frame, "label", max_series, seed).reset_index(drop=True)
    X = normalised_series(sample["values"], series_length) if len(sample) else \
        np.zeros((0, series_length, 1))
    sweep, models = dtw_kmeans_sweep(X, list(ks) + [k], seed, n_jobs=n_jobs)
    model = models.get(k)
    clusters = model.labels_ if model is not None else np.full(len(sample), -1)
    # Without a model every utterance is in "cluster -1": one row, so the statistics are NaN.
    assoc = cluster_association(clusters, sample["label"].to_numpy(), seed)
    assignments = sample[["segment_id", "speaker", "label"]].assign(cluster=clusters)
    p, _ = _decisive_p(assoc)
    return SignalResult(
        signal=signal, n_labelled=len(frame), n_clustered=len(sample), series_length=series_length,
        k=k, silhouette=sweep,
        assignments=assignments,
        centroids=(model.cluster_centers_[..., 0] if model is not None
                   else np.zeros((0, series_length))),
        contingency=assoc["contingency"], chi2=assoc["chi2"], dof=assoc["dof"], p=assoc["p"],
        p_permutation=assoc["p_permutation"], cramers_v=assoc["cramers_v"],
        low_expected_share=assoc["low_expected_share"],
        clusters_associated=bool(p < alpha),
        level_tests=tests, level_by_label=by_label,
        conclusion_clusters=conclude_clusters(signal, k, len(sample), assoc, alpha),
        conclusion_level=conclude_level(signal, tests, alpha))


def analyse(data_root: str | Path, signals: Iterable[Biosignal] = ("TEMP", "EDA"),
            ks: Iterable[int] = range(2, 11), k: int = 5, seed: int = 0,
            max_series: int = DEFAULT_MAX_SERIES, series_length: int = DEFAULT_SERIES_LENGTH,
            alpha: float = 0.05, label_policy: LabelPolicy = "paper5",
            classes: Sequence[str] = PAPER_CLASSES, n_jobs: int = 1) -> BiosignalReport:
    """The original's step 1-3, redone: do TEMP/EDA carry emotion? (module docstring).

    Per signal: labelled utterances (label policy as the models use; ties and other classes
    skipped and listed), a Kruskal-Wallis level test over all of them, then DTW k-means of the
    min-max normalised series on a stratified sample of at most `max_series` utterances,
    resampled to `series_length` points: silhouette for every k in `ks`, and for `k` the
    contingency table with emotion, chi-square, permutation p-value and Cramer's V.
    The conclusion strings are computed from these results at level `alpha`.
    n_jobs (-1: every core) fits the ks in parallel threads; results do not depend on it.
    Raises BiosignalsNotAvailable (a KoemoInputError) when a signal's folder is absent.
    """
    if max_series < 2 or series_length < 2:
        raise KoemoInputError("max_series and series_length must be at least 2")
    root, signals = check_request(data_root, signals)
    no_labels = KoemoInputError(f"{root / 'annotation'}: no readable SessNN_eval.csv; "
                                "emotion labels are needed for the analysis")
    # Cheap checks before any file is parsed: labels first (nothing runs without them), then
    # the signal folders, which an audio + text download of KEMDy20 lacks.
    if not any(root.glob("annotation/Sess*_eval.csv")):
        raise no_labels
    require_signal_folders(root, signals)
    series, coverage, labels = _load_with_labels(root, signals)
    if labels.empty:
        raise no_labels
    classes = classes_for(label_policy, classes)
    results: dict[str, SignalResult] = {}
    skipped: list[dict] = []
    for signal in signals:
        frame, dropped = labelled_series(series[signal], labels, label_policy, classes, signal)
        skipped.extend(dropped)
        results[signal] = analyse_signal(frame, signal, ks, k, seed, max_series, series_length,
                                         alpha, n_jobs)
    settings = {"data_root": str(data_root), "signals": list(signals), "ks": list(ks), "k": k,
                "seed": seed, "max_series": max_series, "series_length": series_length,
                "alpha": alpha, "label_policy": label_policy, "classes": list(classes),
                "min_samples": MIN_SAMPLES, "n_init": N_INIT, "n_permutations": N_PERMUTATIONS}
    return BiosignalReport(results, coverage,
                           pd.DataFrame(skipped, columns=["signal", "segment_id", "reason"]),
                           settings)

