"""Evaluation protocols (koemo.dataset.splits) on dummy utterance tables."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from koemo.config.load import CONFIG_DIR, with_changes
from koemo.dataset.splits import (SPLIT_COLUMNS, add_splits, read_folds_file, session_folds,
                                  split_column)
from koemo.errors import KoemoInputError

PAPER_ROWS = 12_724  # KEMDy20 rows with one of the five paper classes


def dummy_table(n_rows: int, n_sessions: int = 40) -> pd.DataFrame:
    """Rows in annotation order: sessions in blocks, two speakers per session."""
    session = np.sort(np.arange(n_rows) % n_sessions) + 1
    user = 2 * session - 1 + (np.arange(n_rows) % 2)
    return pd.DataFrame({"segment_id": [f"u{i}" for i in range(n_rows)], "session": session,
                         "speaker": [f"User{u:03d}M" for u in user]})


@pytest.fixture(scope="module")
def paper_table(paper_cfg):
    return add_splits(dummy_table(PAPER_ROWS), paper_cfg)


@pytest.fixture(scope="module")
def paper_cfg():
    from koemo.config.load import load_config
    return load_config("paper")


def with_data(cfg: dict, **data) -> dict:
    return with_changes(cfg, {"data": data})


def test_paper_split_sizes_as_the_original(paper_table):
    counts = paper_table["split_paper"].value_counts().to_dict()
    assert counts == {"train": 9161, "valid": 1018, "test": 2545}


def test_paper_split_matches_sklearn_on_a_dataframe(paper_table):
    # The original split the DataFrame itself; only the row count and the seed matter.
    frame = dummy_table(PAPER_ROWS)
    rest, test = train_test_split(frame, test_size=0.2, random_state=1)
    _, valid = train_test_split(rest, test_size=0.1, random_state=1)
    assert set(paper_table.index[paper_table["split_paper"] == "test"]) == set(test.index)
    assert set(paper_table.index[paper_table["split_paper"] == "valid"]) == set(valid.index)


def test_all_split_columns_present_and_valued(paper_table):
    assert list(paper_table.columns[-len(SPLIT_COLUMNS):]) == list(SPLIT_COLUMNS)
    for col in SPLIT_COLUMNS:
        assert set(paper_table[col]) == {"train", "valid", "test"}, col


def test_cv5_speaker_independent_and_every_session_tested_once(paper_table):
    tested = []
    for k in range(5):
        col = paper_table[f"split_cv5_{k}"]
        test_sessions = set(paper_table.loc[col == "test", "session"])
        tested += sorted(test_sessions)
        assert test_sessions == {s for s in range(1, 41) if (s - 1) % 5 == k}
        train_speakers = set(paper_table.loc[col != "test", "speaker"])
        assert train_speakers.isdisjoint(paper_table.loc[col == "test", "speaker"])
        rest = (col != "test").sum()
        assert (col == "valid").sum() == int(np.ceil(0.1 * rest))
    assert sorted(tested) == list(range(1, 41))


def test_session_protocol_is_cv5_fold0(paper_table):
    assert paper_table["split_session"].equals(paper_table["split_cv5_0"])


def test_splits_deterministic_and_seeded(paper_cfg):
    table = dummy_table(500, 10)
    first = add_splits(table, paper_cfg)
    assert first.equals(add_splits(table, paper_cfg))
    other = add_splits(table, with_data(paper_cfg, split_seed=2))
    assert not other["split_paper"].equals(first["split_paper"])
    assert not other["split_cv5_1"].equals(first["split_cv5_1"])


def test_committed_folds_file_equals_builtin_rule(paper_cfg):
    table = dummy_table(800)
    builtin = add_splits(table, paper_cfg)
    from_file = add_splits(table, with_data(paper_cfg,
                                            folds_file="configs/folds/kemdy20_cv5.csv"))
    assert builtin.equals(from_file)
    assert read_folds_file(CONFIG_DIR / "folds" / "kemdy20_cv5.csv") == \
        {s: (s - 1) % 5 for s in range(1, 41)}


def test_custom_folds_file(tmp_path, paper_cfg):
    path = tmp_path / "folds.csv"
    path.write_text("# blocks of two sessions\nsession,fold\n" +
                    "".join(f"{s},{(s - 1) // 2}\n" for s in range(1, 11)))
    table = add_splits(dummy_table(400, 10), with_data(paper_cfg, folds_file=str(path)))
    assert set(table.loc[table["split_cv5_0"] == "test", "session"]) == {1, 2}
    assert set(table.loc[table["split_cv5_4"] == "test", "session"]) == {9, 10}


@pytest.mark.parametrize("text, problem", [
    ("session,fold\n1,0\n", r"no fold for sessions \[2, 3\]"),
    ("session,fold\n1,0\n2,5\n3,1\n", "folds must be 0..4"),
    ("session,fold\n1,0\n1,1\n2,0\n3,0\n", "listed twice"),
    ("sess,f\n1,0\n", "columns must be session,fold"),
    ("session,fold\n1,a\n", "must hold integers"),
])
def test_bad_folds_file_names_the_file(tmp_path, text, problem):
    path = tmp_path / "folds.csv"
    path.write_text(text)
    with pytest.raises(KoemoInputError, match=problem) as err:
        session_folds([1, 2, 3], path)
    assert "folds.csv" in str(err.value)
    with pytest.raises(KoemoInputError, match="not found"):
        session_folds([1], tmp_path / "missing.csv")


def test_split_column(paper_cfg):
    assert split_column(paper_cfg) == "split_paper"
    assert split_column(with_data(paper_cfg, protocol="session")) == "split_session"
    assert split_column(with_data(paper_cfg, protocol="cv5", fold=3)) == "split_cv5_3"
    with pytest.raises(KoemoInputError, match="data.fold"):
        split_column(with_data(paper_cfg, protocol="cv5", fold=5))
    with pytest.raises(KoemoInputError, match="data.protocol"):
        split_column(with_data(paper_cfg, protocol="random"))
