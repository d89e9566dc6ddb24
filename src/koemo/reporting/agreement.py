"""Inter-rater agreement: how far the human raters agree with each other, per corpus.

It is the ceiling every model number should be read against: a classifier that matches the
total label better than the raters match each other is fitting the vote, not the emotion.

- emotion: Krippendorff's alpha (nominal) and Fleiss' kappa (statsmodels; rows with every
  rater's vote), plus the share of votes that went to the row's total label;
- valence, arousal: Krippendorff's alpha (interval).

Krippendorff's alpha is computed here from the coincidence matrix (Krippendorff 2011,
"Computing Krippendorff's alpha-reliability"); missing ratings are allowed, units with fewer
than two ratings are not pairable and left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from koemo.dataset.raters import rater_columns

LEVELS = ("nominal", "interval")
NOTE = ("Agreement among the raters of the kept rows (ties and labels outside the classes are "
        "already dropped by the label policy, so it is higher than over the whole corpus). "
        "Krippendorff's alpha: 1 = perfect agreement, 0 = chance; emotion nominal, valence and "
        "arousal interval. Fleiss' kappa over rows with every rater's vote. `votes for label`: "
        "mean share of a row's votes that went to its total label. Read model scores against "
        "these: the raters are the ceiling.")


def _value_counts(ratings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values [V], counts per unit and value [U, V]) of a [U, R] array, NaN missing."""
    present = ~pd.isna(ratings)
    values = np.unique(ratings[present])
    codes = np.full(ratings.shape, -1)
    for k, value in enumerate(values):
        codes[present & (ratings == value)] = k
    counts = np.stack([(codes == k).sum(axis=1) for k in range(len(values))], axis=1) \
        if len(values) else np.zeros((len(ratings), 0), dtype=int)
    return values, counts


def krippendorff_alpha(ratings: ArrayLike, level: str = "nominal") -> float:
    """Krippendorff's alpha of a [units, raters] array (NaN or None = no rating).

    nominal: any two different values disagree equally; interval: disagreement (a - b)^2."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    values, counts = _value_counts(np.asarray(ratings, dtype=object))
    m = counts.sum(axis=1)
    counts = counts[m >= 2].astype(float)
    m = m[m >= 2].astype(float)
    if len(values) < 2 or not len(m):
        return float("nan")
    # coincidences o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1)
    coincide = np.einsum("uc,uk->ck", counts / (m - 1)[:, None], counts)
    coincide -= np.diag((counts / (m - 1)[:, None]).sum(axis=0))
    n_c = coincide.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        delta = 1.0 - np.eye(len(values))
    else:
        numeric = values.astype(float)
        delta = (numeric[:, None] - numeric[None, :]) ** 2
    expected = (np.outer(n_c, n_c) * delta).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * (coincide * delta).sum() / expected)


def fleiss_kappa(labels: ArrayLike) -> float:
    """Fleiss' kappa of a [units, raters] array of category labels; units with a missing
    rating are left out (the statistic needs the same number of raters per unit)."""
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    labels = np.asarray(labels, dtype=object)
    complete = labels[~pd.isna(labels).any(axis=1)]
    if len(complete) < 1:
        return float("nan")
    _, counts = _value_counts(complete)
    if counts.shape[1] < 2:
        return float("nan")
    return float(_fleiss(counts, method="fleiss"))


def _emotions(table: pd.DataFrame) -> np.ndarray:
    """Rater emotions [N, R] with "" (no vote) as missing."""
    votes = table[rater_columns(table, "emotion")].to_numpy(dtype=object, copy=True)
    votes[votes == ""] = None
    return votes


def corpus_agreement(table: pd.DataFrame) -> dict:
    """Agreement statistics of one corpus' kept rows."""
    emotions = _emotions(table)
    row = {"utterances": len(table), "raters": emotions.shape[1],
           "emotion alpha (nominal)": krippendorff_alpha(emotions, "nominal"),
           "emotion Fleiss kappa": fleiss_kappa(emotions)}
    for field in ("valence", "arousal"):
        scores = table[rater_columns(table, field)].to_numpy(dtype=float)
        row[f"{field} alpha (interval)"] = krippendorff_alpha(scores, "interval")
    cast = (emotions != None).sum(axis=1)                                    # noqa: E711
    for_label = (emotions == table["label"].to_numpy()[:, None]).sum(axis=1)
    row["votes for label"] = float(np.mean(for_label / np.maximum(cast, 1)))
    return row


def agreement_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per corpus (the `corpus` column, when the table has one) and, with more than
    one corpus, all of them together. A table without rater columns gives a note, no rows."""
    if not rater_columns(table, "emotion"):
        frame = pd.DataFrame()
        frame.attrs["notes"] = ["No rater columns in utterances.parquet (prepared before koemo "
                                "kept them): re-run `koemo prepare` to see the raters' agreement."]
        return frame
    groups = list(table.groupby("corpus", sort=True)) if "corpus" in table.columns else []
    if len(groups) != 1:
        groups.append(("all", table))
    frame = pd.DataFrame([{"corpus": name, **corpus_agreement(part)} for name, part in groups])
    frame.attrs["notes"] = [NOTE]
    return frame
