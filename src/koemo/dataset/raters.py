"""The raters' own judgements in a prepared table: `rater<NN>_emotion|valence|arousal` columns.

`koemo prepare` keeps every rater of an annotation row (KEMDy20: ten). Everything here finds
the columns by name, so any prepared table with that layout works (another corpus, another
number of raters). Used for agreement statistics (koemo.reporting.agreement) and for the
classifier's soft-label target (`train.multimodal.target: soft`).
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from koemo.errors import KoemoInputError

RATER_FIELDS = ("emotion", "valence", "arousal")
RATER_COLUMN_RE = re.compile(r"^rater(\d+)_(emotion|valence|arousal)$")


def rater_columns(table: pd.DataFrame, field: str) -> list[str]:
    """The table's columns of one field, in rater order ([] when it has none)."""
    found = [(int(m.group(1)), c) for c in table.columns
             if (m := RATER_COLUMN_RE.match(str(c))) and m.group(2) == field]
    return [c for _, c in sorted(found)]


def require_raters(table: pd.DataFrame, what: str) -> list[str]:
    """The emotion columns, or a clear error for a table prepared before they were kept."""
    columns = rater_columns(table, "emotion")
    if not columns:
        raise KoemoInputError(f"utterances.parquet has no rater columns (rater01_emotion ...), "
                              f"which {what} needs; re-run `koemo prepare`")
    return columns


def emotion_votes(table: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """Votes per class [N, C] of every row; votes for other labels (or none) are not counted."""
    columns = require_raters(table, "the raters' votes")
    votes = table[columns].fillna("").to_numpy(dtype=object)
    return np.stack([(votes == name).sum(axis=1) for name in classes], axis=1).astype(np.int64)


def soft_targets(table: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    """The raters' label distribution [N, C] (float32, rows sum to 1) over the classes.

    Votes outside the classes (e.g. fear under the paper's five) are left out and the rest
    renormalised; a row without any vote among the classes gets its total label (one-hot)."""
    votes = emotion_votes(table, classes).astype(np.float64)
    one_hot = np.eye(len(classes))[table["label_id"].to_numpy(dtype=np.int64)]
    counted = votes.sum(axis=1, keepdims=True)
    dist = np.where(counted > 0, votes / np.maximum(counted, 1), one_hot)
    return dist.astype(np.float32)
