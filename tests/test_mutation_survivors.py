"""Behaviour that mutation testing (make mutation, benchmarks/results/*-mutation.json) showed
no test pinned: split_column's fold rule (fold 0 is cv5's default test fold; a config without
a fold means fold 0) and CCC on constant series."""
from __future__ import annotations

import math
import warnings

from types import SimpleNamespace

import pandas as pd
import pytest

from koemo.dataset.splits import N_FOLDS, SPLIT_COLUMNS, add_splits, split_column
from koemo.errors import KoemoInputError
from koemo.modeling.metrics import concordance_correlation


def cv5(**data):
    """A config as split_column reads it: data.protocol and data.fold (the schema's default
    fold is 0; the values here bypass the schema to reach split_column's own check)."""
    return SimpleNamespace(data=SimpleNamespace(**{"protocol": "cv5", "fold": 0, **data}))


def test_every_fold_names_its_column_and_a_missing_fold_is_fold_0():
    assert [split_column(cv5(fold=k)) for k in range(N_FOLDS)] == \
        [f"split_cv5_{k}" for k in range(N_FOLDS)]
    assert split_column(cv5()) == "split_cv5_0"


@pytest.mark.parametrize("fold", [-1, N_FOLDS, "1", 1.0, None])
def test_a_fold_outside_0_to_4_is_an_input_error(fold):
    with pytest.raises(KoemoInputError, match=f"data.fold must be an integer 0..{N_FOLDS - 1}"):
        split_column(cv5(fold=fold))


def test_ccc_of_identical_constant_series_is_nan_without_a_warning():
    """Zero variance and equal means: the denominator is 0, and CCC is undefined, not 0/0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(concordance_correlation([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]))
    assert concordance_correlation([3.0, 3.0], [2.0, 2.0]) == 0.0


def split_cfg(**data):
    return SimpleNamespace(data=SimpleNamespace(**{"split_seed": 1, "folds_file": None, **data}))


def test_add_splits_needs_three_rows():
    """The paper split takes 20 % test, then 10 % of the rest as valid: two rows leave one for
    the second split, which scikit-learn refuses with its own error. add_splits 16/17/18."""
    def rows(n):
        return pd.DataFrame({"segment_id": [f"u{i}" for i in range(n)],
                             "session": list(range(1, n + 1))})
    out = add_splits(rows(3), split_cfg())
    for column in SPLIT_COLUMNS:
        assert set(out[column]) <= {"train", "valid", "test"}, column
    assert sorted(out["split_paper"]) == ["test", "train", "valid"]
    for n in (1, 2):
        with pytest.raises(KoemoInputError, match=f"cannot split {n} utterance.*at least 3"):
            add_splits(rows(n), split_cfg())
