"""Numbers with uncertainty: bootstrap confidence intervals over test utterances, and paired
tests for "A beats B", from the test predictions every run writes (koemo.modeling.runs.RunDir).

- A run's interval resamples its test utterances (percentile bootstrap, 95%).
- A table row averages runs (seeds, cv5 folds); its interval resamples the utterances of each
  fold, the same draw for every run of that fold, and averages the runs' scores per draw, so it
  is the interval of the very mean the row shows.
- A paired test scores both systems on the SAME resampled utterances of the same runs' folds:
  the interval of the mean difference, and a two-sided p-value from the bootstrap distribution
  shifted to the null (p = (1 + #{|d* - d| >= |d|}) / (B + 1); Efron & Tibshirani 1993, 16.4).
  Identical systems give d* = d = 0 on every draw, so p = 1.

Deterministic: the draw of a fold depends only on its name and size (a fixed seed), so two
tables that resample the same fold resample the same utterances. Vectorised: every score of
every draw comes from one confusion-matrix bincount (classes) or array reductions (regressors).
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from koemo.modeling.runs import RunDir

N_RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 23
CLASS_METRICS = ("accuracy", "weighted_f1", "macro_f1", "uar")
REGRESSION_METRICS = ("rmse", "mae", "pearson_r", "ccc")
LOWER_IS_BETTER = ("rmse", "mae")


# ---------------------------------------------------------------- resampling and scores
def resample_indices(n: int, name: str = "", n_resamples: int = N_RESAMPLES) -> np.ndarray:
    """[B, n] utterance indices drawn with replacement; fixed by (name, n)."""
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode()), n])
    return rng.integers(0, n, size=(n_resamples, n))


def classification_scores(true: np.ndarray, pred: np.ndarray, n_classes: int,
                          index: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, weighted/macro F1 and UAR [B] of each row of `index` [B, n], each averaged
    over the classes present in that draw's true labels (the rule of koemo.modeling.metrics,
    so row 0 = the whole set gives exactly the reported numbers)."""
    n_draws, n = index.shape
    draws = np.arange(n_draws)[:, None]
    flat = (draws * n_classes + true[index]) * n_classes + pred[index]
    cm = np.bincount(flat.ravel(), minlength=n_draws * n_classes ** 2)
    cm = cm.reshape(n_draws, n_classes, n_classes).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=present)
    n_present = present.sum(axis=1)
    return {"accuracy": tp.sum(axis=1) / n,
            "weighted_f1": (f1 * support).sum(axis=1) / n,
            "macro_f1": f1.sum(axis=1) / n_present, "uar": recall.sum(axis=1) / n_present}


def regression_scores(true: np.ndarray, pred: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, MAE, Pearson r and CCC [B] (population moments, as koemo.modeling.metrics)."""
    y, yhat = true[index], pred[index]
    error = yhat - y
    dy, dyhat = y - y.mean(axis=1, keepdims=True), yhat - yhat.mean(axis=1, keepdims=True)
    cov = (dy * dyhat).mean(axis=1)
    var_y, var_yhat = (dy ** 2).mean(axis=1), (dyhat ** 2).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = cov / np.sqrt(var_y * var_yhat)
        ccc = 2 * cov / (var_y + var_yhat + (y.mean(axis=1) - yhat.mean(axis=1)) ** 2)
    return {"rmse": np.sqrt((error ** 2).mean(axis=1)), "mae": np.abs(error).mean(axis=1),
            "pearson_r": pearson, "ccc": ccc}


# ---------------------------------------------------------------- a run's predictions
class Predictions:
    """One run's test predictions as arrays, by segment id."""

    def __init__(self, run_dir: str | Path):
        run = RunDir(run_dir)
        frame = run.predictions()
        self.segment_ids = frame["segment_id"].to_numpy()
        self._memo: dict = {}
        self.classes = None
        if not pd.api.types.is_numeric_dtype(frame["true"]):         # class names
            metrics = run.metrics()
            self.classes = metrics.class_names()
            lookup = {name: i for i, name in enumerate(self.classes)}
            self.true = frame["true"].map(lookup).to_numpy(dtype=np.int64)
            self.pred = frame["pred"].map(lookup).to_numpy(dtype=np.int64)
            self.majority = self.classes.index(metrics.majority().majority_class)
        else:
            self.true = frame["true"].to_numpy(dtype=float)
            self.pred = frame["pred"].to_numpy(dtype=float)

    def draws(self, split: str, order: np.ndarray, baseline: bool = False) -> dict[str, np.ndarray]:
        """Scores [1 + B] of the whole set (first) and of the fold's draws, over the rows
        `order` picks; kept when those are all rows in order (a run is paired many times)."""
        whole = len(order) == len(self.true) and bool((order == np.arange(len(order))).all())
        key = (split, baseline)
        if whole and key in self._memo:
            return self._memo[key]
        index = _with_identity(resample_indices(len(order), split))
        out = self.scores(index, None if whole else order, baseline)
        if whole:
            self._memo[key] = out
        return out

    def scores(self, index: np.ndarray, order: np.ndarray | None = None,
               baseline: bool = False) -> dict[str, np.ndarray]:
        """Scores of every draw; `order` picks and orders rows (alignment with another run);
        `baseline`: of the majority class (from train) instead of the model."""
        true, pred = self.true, self.pred
        if baseline:
            pred = np.full_like(true, self.majority)
        if order is not None:
            true, pred = true[order], pred[order]
        if self.classes is None:
            return regression_scores(true, pred, index)
        return classification_scores(true, pred, len(self.classes), index)


class PredictionCache:
    """Predictions read once per run directory."""

    def __init__(self) -> None:
        self._runs: dict[str, Predictions] = {}

    def __call__(self, run_dir: str | Path) -> Predictions:
        key = str(run_dir)
        if key not in self._runs:
            self._runs[key] = Predictions(key)
        return self._runs[key]


def _aligned(runs: list[Predictions]) -> tuple[list[np.ndarray], int]:
    """Row order of each run over the segment ids every one of them scored."""
    common = set(runs[0].segment_ids).intersection(*(r.segment_ids for r in runs[1:]))
    shared = [s for s in runs[0].segment_ids if s in common]
    orders = []
    for run in runs:
        position = {s: i for i, s in enumerate(run.segment_ids)}
        orders.append(np.fromiter((position[s] for s in shared), dtype=np.int64, count=len(shared)))
    return orders, len(shared)


# ---------------------------------------------------------------- intervals and paired tests
def _with_identity(index: np.ndarray) -> np.ndarray:
    """Row 0: the set as it is (the point estimate); rows 1..B: the draws."""
    return np.vstack([np.arange(index.shape[1])[None, :], index])


def interval(point: float, draws: np.ndarray) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    tail = 100 * (1 - CONFIDENCE) / 2
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def mean_interval(by_split: dict[str, list[str]], metrics: Sequence[str],
                  cache: PredictionCache | None = None
                  ) -> dict[str, tuple[float, float, float]]:
    """metric -> (mean over the runs, lower, upper): `by_split` maps each fold (split name) to
    the run directories scored on it (e.g. its seeds)."""
    cache = cache or PredictionCache()
    total: dict[str, np.ndarray] = {}
    count = 0
    for split, dirs in by_split.items():
        runs = [cache(d) for d in dirs]
        orders, _ = _aligned(runs)
        for run, order in zip(runs, orders):
            for metric, values in run.draws(split, order).items():
                total[metric] = total.get(metric, 0.0) + values
            count += 1
    out = {}
    for metric in metrics:
        if metric in total:
            values = total[metric] / count
            out[metric] = (float(values[0]), *interval(values[0], values[1:]))
    return out


def paired_test(pairs: list[tuple[str, str, str | None]], metric: str,
                cache: PredictionCache | None = None) -> dict:
    """Mean difference A - B of `metric` over pairs (split, run dir A, run dir B) scored on the
    same utterances, its interval and p-value. B None: the majority-class baseline of A's run."""
    cache = cache or PredictionCache()
    diffs: Any = 0.0                # then the sum of the pairs' [1 + B] difference arrays
    n_pairs = 0
    for split, a_dir, b_dir in pairs:
        a = cache(a_dir)
        b = a if b_dir is None else cache(b_dir)
        (order_a, order_b), _ = _aligned([a, b])
        diffs = diffs + (a.draws(split, order_a)[metric]
                         - b.draws(split, order_b, baseline=b_dir is None)[metric])
        n_pairs += 1
    if not n_pairs:
        return {"pairs": 0, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    diffs = diffs / n_pairs
    point, draws = float(diffs[0]), diffs[1:]
    low, high = interval(point, draws)
    extreme = np.abs(draws - point) >= abs(point) - 1e-12
    return {"pairs": n_pairs, "difference": point, "ci_low": low, "ci_high": high,
            "p": float((1 + extreme.sum()) / (len(draws) + 1))}


def supports(test: dict, metric: str) -> str:
    """'A' when the interval says A is better, 'B' when B is, '' when it contains no winner."""
    low, high = test["ci_low"], test["ci_high"]
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return ""
    a_higher = low > 0
    return "A" if a_higher != (metric in LOWER_IS_BETTER) else "B"


def format_interval(low: float, high: float, digits: int = 3) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"
