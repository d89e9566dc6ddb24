"""Classification and regression metrics over WHOLE evaluation sets.

The original averaged weighted F1 (and accuracy) over test batches; that number depends on the
batch size and the order of the rows, so everything here is computed once over the whole set.
`batch_averaged_f1` reproduces the paper's number only for the comparison table.
Every function returns plain JSON-serialisable dicts (floats, ints, lists).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm


def _as_ids(values: ArrayLike, classes: Sequence[str]) -> np.ndarray:
    """Class ids from ids or class names (names are looked up in `classes`)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "USO":  # strings or objects: class names
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted({str(v) for v in arr if v not in index})
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
        return np.array([index[v] for v in arr], dtype=np.int64)
    return arr.astype(np.int64)


@contextlib.contextmanager
def _quiet_absent_classes() -> Iterator[None]:
    """Small sets (a validation split, one test batch) often lack a class the model predicts.
    The averaging rules here are documented; scikit-learn's warning about it would repeat for
    every epoch and batch of every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        yield


def _summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, weighted/macro F1 and UAR over ONE label set: the classes present in y_true.

    scikit-learn's default for F1 is the classes in y_true OR y_pred, so a model that predicts a
    class absent from the set averaged over more classes (with a zero for each absent one) than
    the majority baseline scored on the same rows. Fixing the set to y_true's classes gives every
    row of a table the same denominator; with every class present nothing changes. Weighted F1
    and UAR are the same under either rule (absent classes weigh zero / have no recall)."""
    labels = np.unique(y_true)
    with _quiet_absent_classes():
        return {
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "weighted_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="weighted",
                                              zero_division=0)),
            "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro",
                                           zero_division=0)),
            "uar": float(skm.recall_score(y_true, y_pred, labels=labels, average="macro",
                                          zero_division=0)),
        }


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str],
                          majority_class: int | str | None = None) -> dict:
    """Whole-set classification metrics, per-class table, confusion matrix and the baseline.

    Averages run over the classes present in y_true (`label_set`); the per-class table and the
    confusion matrix keep every class.

    `majority_class` is the most frequent TRAIN class (id or name); the baseline predicts it for
    every row of this set. None falls back to the most frequent class of this set, which the
    dict records under `baseline.majority_source`.
    """
    classes = list(classes)
    y_true, y_pred = _as_ids(y_true, classes), _as_ids(y_pred, classes)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D shapes")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set")
    labels = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=float), where=row_sums > 0)

    if majority_class is None:
        majority_id, source = int(np.bincount(y_true, minlength=len(classes)).argmax()), "evaluated set"
    else:
        majority_id, source = int(_as_ids([majority_class], classes)[0]), "train"
    baseline = _summary(y_true, np.full_like(y_true, majority_id))
    baseline.update(majority_class=classes[majority_id], majority_source=source)

    return {
        "n": int(len(y_true)),
        **_summary(y_true, y_pred),
        "classes": classes,
        "label_set": [classes[i] for i in np.unique(y_true)],
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": cm_norm.tolist(),
        "baseline": baseline,
    }


def report_from_confusion(cm: ArrayLike, classes: Sequence[str],
                          majority_class: int | str | None = None) -> dict:
    """The same report from a confusion matrix (rows true, columns predicted), e.g. a
    published one: the matrix is expanded back into (true, pred) pairs."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(classes), len(classes)) or (cm < 0).any():
        raise ValueError(f"confusion matrix must be a non-negative {len(classes)}x{len(classes)} "
                         f"count matrix, got shape {cm.shape}")
    true_ids, pred_ids = np.indices(cm.shape)
    counts = cm.ravel()
    return classification_report(np.repeat(true_ids.ravel(), counts),
                                 np.repeat(pred_ids.ravel(), counts), classes, majority_class)


def batch_averaged_f1(y_true: ArrayLike, y_pred: ArrayLike, batch_size: int, drop_last: bool = False,
                      average: str = "weighted") -> float:
    """The paper's number: the mean over consecutive batches of each batch's F1.

    Each batch is scored alone over the classes of its y_true (for weighted F1 the same as the
    original's scikit-learn default: classes only predicted weigh zero), then the batch
    scores are averaged with equal weight, as the original test loop did. drop_last=True drops
    the final short batch, as a DataLoader(drop_last=True) would.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stops = range(0, len(y_true), batch_size)
    with _quiet_absent_classes():
        scores = [skm.f1_score(y_true[s:s + batch_size], y_pred[s:s + batch_size],
                               labels=np.unique(y_true[s:s + batch_size]), average=average,
                               zero_division=0)
                  for s in stops if not (drop_last and s + batch_size > len(y_true))]
    if not scores:
        raise ValueError(f"no complete batch of {batch_size} in {len(y_true)} rows")
    return float(np.mean(scores))


def concordance_correlation(y: ArrayLike, yhat: ArrayLike) -> float:
    """Lin's concordance correlation coefficient (population moments)."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    covariance = np.mean((y - y.mean()) * (yhat - yhat.mean()))
    denominator = y.var() + yhat.var() + (y.mean() - yhat.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else float("nan")


def pearson_r(y: ArrayLike, yhat: ArrayLike) -> float:
    """Pearson r; NaN (without a warning) when either side is constant."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(yhat) == 0:
        return float("nan")
    from scipy.stats import pearsonr
    return float(pearsonr(y, yhat).statistic)


def regression_report(y: ArrayLike, yhat: ArrayLike) -> dict:
    """RMSE, MAE, Pearson r and CCC of predictions `yhat` against targets `y`."""
    y, yhat = np.asarray(y, dtype=float).ravel(), np.asarray(yhat, dtype=float).ravel()
    if y.shape != yhat.shape or len(y) == 0:
        raise ValueError(f"y {y.shape} and yhat {yhat.shape} must be equal non-empty shapes")
    return {
        "n": int(len(y)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, yhat))),
        "mae": float(skm.mean_absolute_error(y, yhat)),
        "pearson_r": pearson_r(y, yhat),
        "ccc": concordance_correlation(y, yhat),
    }
