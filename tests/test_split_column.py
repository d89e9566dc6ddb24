"""split_column's fold rule, pinned where mutation testing found it loose (benchmarks/results/
*-mutation.json): fold 0 is a valid cv5 test fold, and a config without a fold means fold 0."""
from __future__ import annotations

import pytest

from koemo.dataset.splits import N_FOLDS, split_column
from koemo.errors import KoemoInputError


def cv5(**data) -> dict:
    return {"data": {"protocol": "cv5", **data}}


def test_every_fold_names_its_column_and_a_missing_fold_is_fold_0():
    assert [split_column(cv5(fold=k)) for k in range(N_FOLDS)] == \
        [f"split_cv5_{k}" for k in range(N_FOLDS)]
    assert split_column(cv5()) == "split_cv5_0"


@pytest.mark.parametrize("fold", [-1, N_FOLDS, "1", 1.0, None])
def test_a_fold_outside_0_to_4_is_an_input_error(fold):
    with pytest.raises(KoemoInputError, match=f"data.fold must be an integer 0..{N_FOLDS - 1}"):
        split_column(cv5(fold=fold))
