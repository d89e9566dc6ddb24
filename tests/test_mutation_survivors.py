"""Behaviour that mutation testing (make mutation, benchmarks/results/*-mutation.json) showed
no test pinned: split_column's fold rule (fold 0 is cv5's default test fold; a config without
a fold means fold 0), CCC on constant series, the metrics' shape checks, zero-division rules
and baseline, and the split functions called on small tables. Each test names the mutants it
kills; the survivors left alive are listed with reasons in the results markdown."""
from __future__ import annotations

import math
import warnings

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from koemo.dataset.splits import (N_FOLDS, SPLIT_COLUMNS, add_splits, cv5_split, read_folds_file,
                                  split_column)
from koemo.config.load import load_config, with_changes
from koemo.config.schema import CROSS_PROTOCOLS, IN_CORPUS_PROTOCOLS
from koemo.errors import KoemoInputError
from koemo.modeling.metrics import (batch_averaged_f1, classification_report,
                                    concordance_correlation, pearson_r, regression_report,
                                    report_from_confusion)


def cv5(**data):
    """A config as split_column reads it: data.protocol and data.fold (the schema's default
    fold is 0)."""
    return SimpleNamespace(data=SimpleNamespace(**{"protocol": "cv5", "fold": 0, **data}))


def test_every_fold_names_its_column_and_a_missing_fold_is_fold_0():
    assert [split_column(cv5(fold=k)) for k in range(N_FOLDS)] == \
        [f"split_cv5_{k}" for k in range(N_FOLDS)]
    assert split_column(cv5()) == "split_cv5_0"


@pytest.mark.parametrize("fold", [-1, N_FOLDS, "1", 1.0, None])
def test_a_fold_outside_0_to_4_is_an_input_error(fold):
    """The schema refuses it when the config loads, before split_column could name a column."""
    with pytest.raises(KoemoInputError, match=f"data.fold: .* is not allowed: must be an integer "
                                              f"from 0 to {N_FOLDS - 1}"):
        with_changes(load_config("tiny"), {"data": {"protocol": "cv5", "fold": fold}})


def test_cross_corpus_protocols_name_their_column_and_an_unknown_protocol_is_refused():
    """splits.split_column 23 and 24 (2026-12-03 run): a cross protocol raised, an unknown one
    named a column that does not exist."""
    for protocol in CROSS_PROTOCOLS:
        assert split_column(cv5(protocol=protocol)) == f"split_{protocol}"
    for protocol in IN_CORPUS_PROTOCOLS:
        assert split_column(cv5(protocol=protocol, fold=3)) == f"split_{protocol}_3"
    assert split_column(cv5(protocol="paper", fold=3)) == "split_paper"
    assert split_column(cv5(protocol="session")) == "split_session"
    with pytest.raises(KoemoInputError, match="data.protocol: \"cv10\" is not allowed: must be "
                                              "paper, session, cv5"):
        load_config("tiny", ["data.protocol=cv10"])


def test_ccc_of_identical_constant_series_is_nan_without_a_warning():
    """Zero variance and equal means: the denominator is 0, and CCC is undefined, not 0/0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(concordance_correlation([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]))
    assert concordance_correlation([3.0, 3.0], [2.0, 2.0]) == 0.0


# --- koemo.modeling.metrics -------------------------------------------------------------------
# Survivors of benchmarks/results/2026-12-02-mutation.json; the mutant each test kills is named
# by its mutmut id (x_<function>__mutmut_<n>).

CLASSES = ["a", "b", "c"]


@pytest.mark.parametrize("y_true, y_pred", [
    ([0, 1, 2], [0, 1]),                       # unequal lengths (sklearn would say something else)
    ([[0], [1], [2]], [[0], [1], [2]]),        # a column vector: sklearn would silently ravel it
])
def test_classification_report_rejects_unequal_or_non_1d_labels_itself(y_true, y_pred):
    """classification_report 12 (`or` -> `and`), 16 (no message)."""
    with pytest.raises(ValueError, match=r"must be equal 1-D shapes"):
        classification_report(y_true, y_pred, CLASSES, majority_class=0)


def test_a_one_row_set_is_scored():
    """classification_report 18 (`len == 0` -> `len == 1`): one row is a set, not an error."""
    report = classification_report([1], [1], CLASSES)
    assert report["n"] == 1 and report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert report["label_set"] == ["b"] and report["baseline"]["majority_class"] == "b"
    with pytest.raises(ValueError, match="cannot score an empty set"):
        classification_report([], [], CLASSES)


def test_per_class_table_of_unpredicted_and_absent_classes_is_zero_without_warnings():
    """b is in y_true but never predicted (precision 0/0), c is in neither (0/0 everywhere):
    their precision/recall/F1 are 0, not 1 and not a warning; a class with one row normalises
    its confusion row to 1.0; a class with none to zeros. classification_report 33/34
    (zero_division default / 1), 56 (np.divide without `out`: numpy warns, and the rows of
    absent classes are uninitialised memory), 63 (`row_sums > 0` -> `> 1`), 102/103 (the
    `classes` key)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = classification_report([0, 0, 1], [0, 0, 0], CLASSES)
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
    assert report["confusion_matrix_normalized"] == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
                                                     [0.0, 0.0, 0.0]]
    assert report["classes"] == CLASSES


def test_report_from_confusion_keeps_the_train_majority():
    """The set's majority is a; the train majority b is what the baseline predicts.
    report_from_confusion 17/21 (majority_class dropped)."""
    cm = [[3, 1, 0], [0, 2, 0], [0, 0, 1]]
    base = report_from_confusion(cm, CLASSES, majority_class="b")["baseline"]
    assert base["majority_class"] == "b" and base["majority_source"] == "train"
    assert base["accuracy"] == pytest.approx(2 / 7)
    assert report_from_confusion(cm, CLASSES)["baseline"]["majority_class"] == "a"


def test_report_from_confusion_accepts_whole_number_float_counts():
    """A published matrix read from JSON or CSV may hold 2198.0. report_from_confusion 3/5
    (no int64 cast: np.repeat refuses float counts)."""
    cm = [[3, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert report_from_confusion(np.array(cm, dtype=float), CLASSES) == \
        report_from_confusion(cm, CLASSES)


def test_batch_averaged_f1_edges():
    """batch_averaged_f1 7/8 (batch_size 1 refused), 9/39 (no message), 37 (drop_last drops a
    last batch that is full)."""
    y_true, y_pred = [0, 0, 1, 1, 0], [0, 0, 1, 0, 0]
    # One row per batch: each batch scores 1 when right, 0 when wrong -> the accuracy.
    assert batch_averaged_f1(y_true, y_pred, batch_size=1) == pytest.approx(4 / 5)
    # Four rows in batches of two: both batches are full, drop_last keeps both.
    assert batch_averaged_f1(y_true[:4], y_pred[:4], batch_size=2, drop_last=True) == \
        pytest.approx((1 + 2 / 3) / 2)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be >= 1"):
            batch_averaged_f1(y_true, y_pred, batch_size=bad)
    with pytest.raises(ValueError, match="no complete batch of 2 in 1 rows"):
        batch_averaged_f1([0], [0], batch_size=2, drop_last=True)


def test_batch_macro_f1_averages_over_the_batch_classes_of_y_true():
    """Class 2 is only predicted: macro F1 over {0, 1} is (2/3 + 1) / 2, not (2/3 + 1 + 0) / 3.
    batch_averaged_f1 21/26 (labels dropped; equivalent for the weighted average only)."""
    assert batch_averaged_f1([0, 0, 1, 1], [0, 2, 1, 1], batch_size=4, average="macro") == \
        pytest.approx(5 / 6)


def test_regression_report_shapes():
    """regression_report 10 (`or` -> `and`), 13 (`len == 0` -> `len == 1`), 14 (no message):
    unequal and empty inputs are refused by its own check, one pair is scored."""
    with pytest.raises(ValueError, match="must be equal non-empty shapes"):
        regression_report([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="must be equal non-empty shapes"):
        regression_report([], [])
    one = regression_report([2.0], [3.0])
    assert (one["n"], one["rmse"], one["mae"], one["ccc"]) == (1, 1.0, 1.0, 0.0)
    assert math.isnan(one["pearson_r"])


def test_pearson_r_of_two_points_and_of_one_constant_side():
    """Two points are perfectly correlated (r = +-1), whatever their range; a constant side
    is NaN from the guard, without scipy's ConstantInputWarning. pearson_r 12/13 (`len < 2` ->
    `<= 2` / `< 3`), 16/19 (`ptp == 0` -> `ptp == 1`), 10/11 (`or` -> `and`: one constant side
    reaches scipy)."""
    assert pearson_r([1.0, 2.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert pearson_r([1.0, 2.0], [5.0, 3.0]) == pytest.approx(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(pearson_r([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))
        assert math.isnan(pearson_r([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))
        assert math.isnan(pearson_r([1.0], [1.0]))

# --- koemo.dataset.splits ---------------------------------------------------------------------
# test_splits.py checks these on a module-scoped 12,724-row table; mutmut ties a test to the
# functions it calls, and a cached fixture is built inside the first test only, so the later
# tests were never run against the split mutants. These call the functions directly.

def sessions_in_blocks(n_sessions: int = 10, rows: int = 6) -> np.ndarray:
    return np.repeat(np.arange(1, n_sessions + 1), rows)


def test_cv5_split_test_is_the_fold_and_valid_is_10_percent_of_the_rest():
    """cv5_split 15/21/22 (train renamed), 25 (valid drawn from the test rows), 30/33 (valid
    25 % instead of 10 %), 36/37/38 (valid renamed)."""
    sessions = sessions_in_blocks()
    folds = {s: (s - 1) % N_FOLDS for s in range(1, 11)}
    split = cv5_split(sessions, folds, fold=1, seed=1)
    is_test = np.isin(sessions, [2, 7])
    assert (split == "test").tolist() == is_test.tolist()
    rest = np.flatnonzero(~is_test)
    _, valid = train_test_split(rest, test_size=0.1, random_state=1)
    assert sorted(np.flatnonzero(split == "valid")) == sorted(valid) and len(valid) == 5
    assert set(split[~is_test]) == {"train", "valid"}
    assert (split == "train").sum() == len(rest) - 5


def test_cv5_split_with_two_rows_outside_the_fold_still_validates():
    """Two rows outside the fold: one valid, one train; one row: train only.
    cv5_split 26/27 (`>= 2` -> `> 2` / `>= 3`)."""
    assert sorted(cv5_split(np.array([1, 1, 2]), {1: 1, 2: 0}, fold=0)) == \
        ["test", "train", "valid"]
    assert cv5_split(np.array([1, 2]), {1: 1, 2: 0}, fold=0).tolist() == ["train", "test"]


def split_cfg(**data):
    return SimpleNamespace(data=SimpleNamespace(**{"split_seed": 1, "folds_file": None, **data}))


def test_add_splits_keeps_the_columns_renumbers_rows_and_copies_fold_0_to_session():
    """add_splits 14/15 (reset_index keeps the old index as a column), 48/49/50
    (split_session not fold 0's column)."""
    table = pd.DataFrame({"segment_id": [f"u{i}" for i in range(30)],
                          "session": np.repeat(np.arange(1, 6), 6)}, index=range(100, 130))
    out = add_splits(table, split_cfg())
    assert list(out.columns) == ["segment_id", "session", *SPLIT_COLUMNS]
    assert out.index.tolist() == list(range(30))
    assert out["split_session"].tolist() == out["split_cv5_0"].tolist()
    assert set(out.loc[out["split_session"] == "test", "session"]) == {1}
    assert table.columns.tolist() == ["segment_id", "session"]      # the input is not touched


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


def test_folds_file_with_spaces_and_integer_values(tmp_path):
    """read_folds_file 9/11 (skipinitialspace: "session, fold" is a valid header), 59/62
    (sessions or folds returned as floats)."""
    path = tmp_path / "folds.csv"
    path.write_text("# spaced\nsession, fold\n1, 0\n2, 4\n")
    folds = read_folds_file(path)
    assert folds == {1: 0, 2: 4}
    assert all(isinstance(v, (int, np.integer)) for pair in folds.items() for v in pair)


def test_an_empty_folds_file_is_an_input_error_naming_it(tmp_path):
    """read_folds_file 12 (the message, which names the file, replaced by None)."""
    path = tmp_path / "empty_folds.csv"
    path.write_text("")
    with pytest.raises(KoemoInputError, match="empty_folds.csv: not a valid session,fold CSV"):
        read_folds_file(path)


def test_split_problem_names_each_missing_part_and_a_fold_without_test_sessions():
    """splits.split_problem and is_fold_column (35 mutants with no test among the selected
    files in the 2026-12-03 run; the partial-corpus tests reach them only through a plan)."""
    import pandas as pd

    from koemo.dataset.splits import is_fold_column, split_problem

    full = ["train", "train", "valid", "test"]
    table = pd.DataFrame({"split_paper": full, "split_cv5_2": ["train", "valid", "valid", "unused"],
                          "split_kemdy19_cv5_1": ["train", "train", "valid", "unused"],
                          "split_session": ["train", "test", "test", "test"]})
    assert split_problem(table, "split_paper") is None
    assert split_problem(table, "split_cv5_2") == "no test session"
    assert split_problem(table, "split_kemdy19_cv5_1") == "no test session"
    assert split_problem(table, "split_session") == "no valid rows"
    assert split_problem(table.assign(split_paper=["train"] * 4), "split_paper") == \
        "no valid rows and no test rows"
    assert split_problem(table, "split_cv5_4") == "no test session"      # a missing fold column
    assert split_problem(table, "split_kemdy20_to_kemdy19") == \
        "no train rows and no valid rows and no test rows"
    assert [is_fold_column(c) for c in ("split_cv5_0", "split_kemdy20_cv5_4", "split_paper",
                                        "split_kemdy19_to_kemdy20", "cv5_0")] == \
        [True, True, False, False, False]
