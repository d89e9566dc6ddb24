"""Evaluation protocols as split columns of the utterance table (docs/architecture.md "Protocols").

- `split_paper`: the original's random utterance split (speakers leak between train and test).
- `split_cv5_k`: session-wise 5-fold; test = the sessions of fold k, valid = 10 % of the other
  utterances at random (early stopping only), train = the rest. Speakers never cross train/test
  because every speaker belongs to one session.
- `split_session`: cv5 fold 0, the single speaker-independent hold-out.
- `split_kemdy19_to_kemdy20`, `split_kemdy20_to_kemdy19`: only in a workdir holding both
  corpora (koemo.dataset.combine): train on one corpus, test on the other.
- `split_kemdy19_cv5_k`, `split_kemdy20_cv5_k`: also only there: one corpus' own session folds
  (its rows split as in its own workdir), the other corpus' rows `unused`.
Every column holds `train`, `valid` or `test` for every row (or `unused` for the rows a
protocol leaves out), so one prepared workdir serves all protocols and `split_column(cfg)` picks the one a run uses. A partial corpus (a few sessions)
leaves some cv5 folds without a test session: `split_problem` says so, and the experiment plans
skip those folds instead of failing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Literal, get_args

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from koemo.config.load import CONFIG_DIR
from koemo.config.schema import CROSS_PROTOCOLS, FOLDED_PROTOCOLS, IN_CORPUS_PROTOCOLS, N_FOLDS, Config
from koemo.errors import KoemoInputError

Split = Literal["train", "valid", "test"]     # the values of a split column a run reads
SPLITS = get_args(Split)
UNUSED = "unused"       # a row the protocol neither trains, validates nor scores on
SPLIT_COLUMNS = ("split_paper", "split_session") + tuple(f"split_cv5_{k}" for k in range(N_FOLDS))


def split_column(cfg: Config) -> str:
    """The split column a run uses: cfg.data.protocol (+ cfg.data.fold for the session folds;
    the schema allows only its protocols and folds 0 to N_FOLDS - 1)."""
    protocol = cfg.data.protocol
    if protocol in FOLDED_PROTOCOLS:
        return f"split_{protocol}_{cfg.data.fold}"
    return f"split_{protocol}"


def paper_split(n_rows: int, seed: int = 1) -> np.ndarray:
    """The original's split of rows 0..n-1: 80/20 train/test, then 90/10 train/valid, both
    with random_state=seed and no stratification (12,724 rows -> 9,161 / 1,018 / 2,545)."""
    rows = np.arange(n_rows)
    rest, test = train_test_split(rows, test_size=0.2, random_state=seed)
    _, valid = train_test_split(rest, test_size=0.1, random_state=seed)
    split = np.full(n_rows, "train", dtype=object)
    split[test] = "test"
    split[valid] = "valid"
    return split


def resolve_folds_path(folds_file: str | Path) -> Path:
    """A relative folds file is looked up from the working directory, then the repository."""
    path = Path(folds_file)
    for candidate in (path, CONFIG_DIR.parent / path, CONFIG_DIR / path):
        if candidate.is_file():
            return candidate
    raise KoemoInputError(f"{folds_file}: folds file not found (data.folds_file)")


def read_folds_file(folds_file: str | Path) -> dict[int, int]:
    """`session,fold` CSV (lines starting with # are comments) -> {session: fold}."""
    path = resolve_folds_path(folds_file)
    try:
        frame = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as err:
        raise KoemoInputError(f"{path}: not a valid session,fold CSV ({err})") from err
    if list(frame.columns) != ["session", "fold"]:
        raise KoemoInputError(f"{path}: columns must be session,fold, found {list(frame.columns)}")
    for col in ("session", "fold"):
        if not pd.api.types.is_integer_dtype(frame[col]):
            raise KoemoInputError(f"{path}: column {col} must hold integers")
    duplicated = frame["session"][frame["session"].duplicated()].tolist()
    if duplicated:
        raise KoemoInputError(f"{path}: sessions listed twice: {duplicated}")
    bad = frame[(frame["fold"] < 0) | (frame["fold"] >= N_FOLDS)]
    if len(bad):
        raise KoemoInputError(f"{path}: folds must be 0..{N_FOLDS - 1}; session "
                              f"{int(bad['session'].iloc[0])} has fold {int(bad['fold'].iloc[0])}")
    return dict(zip(frame["session"].astype(int), frame["fold"].astype(int)))


def session_folds(sessions: Iterable[int], folds_file: str | Path | None = None) -> dict[int, int]:
    """Fold of every session: (s - 1) % 5, or the assignment in `folds_file`."""
    sessions = sorted({int(s) for s in sessions})
    if folds_file is None:
        return {s: (s - 1) % N_FOLDS for s in sessions}
    assigned = read_folds_file(folds_file)
    missing = [s for s in sessions if s not in assigned]
    if missing:
        raise KoemoInputError(f"{folds_file}: no fold for sessions {missing}")
    return {s: assigned[s] for s in sessions}


def cv5_split(sessions: np.ndarray, folds: dict[int, int], fold: int, seed: int = 1) -> np.ndarray:
    """Fold `fold` as test; 10 % of the other rows (random, seed) as valid, the rest train."""
    sessions = np.asarray(sessions)
    is_test = np.array([folds[int(s)] == fold for s in sessions], dtype=bool)
    split = np.where(is_test, "test", "train").astype(object)
    rest = np.flatnonzero(~is_test)
    if len(rest) >= 2:
        _, valid = train_test_split(rest, test_size=0.1, random_state=seed)
        split[valid] = "valid"
    return split


def add_splits(table: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """Return a copy of `table` (rows in annotation order, a `session` column) with every
    protocol's split column added."""
    data = cfg.data
    seed = int(data.split_seed)
    table = table.reset_index(drop=True).copy()
    if len(table) < 3:      # the paper split needs a test, a valid and a train row
        raise KoemoInputError(f"cannot split {len(table)} utterance(s): need at least 3")
    folds = session_folds(table["session"], data.folds_file)
    cv5 = {f"split_cv5_{k}": cv5_split(table["session"].to_numpy(), folds, k, seed)
           for k in range(N_FOLDS)}
    table["split_paper"] = paper_split(len(table), seed)
    table["split_session"] = cv5["split_cv5_0"]
    for column, values in cv5.items():
        table[column] = values
    return table


def split_problem(table: pd.DataFrame, column: str) -> str | None:
    """Why the rows of split `column` cannot train and score a run, or None when they can:
    every run needs train, valid and test rows."""
    counts = table[column].value_counts() if column in table.columns else pd.Series(dtype=int)
    empty = [part for part in SPLITS if counts.get(part, 0) == 0]
    if not empty:
        return None
    if is_fold_column(column) and "test" in empty:
        return "no test session"      # no session of this corpus falls in the fold
    return "no " + " and no ".join(f"{part} rows" for part in empty)


def is_fold_column(column: str) -> bool:
    """A session-fold column: `split_cv5_k` or `split_<corpus>_cv5_k`."""
    return any(column.startswith(f"split_{protocol}_") for protocol in FOLDED_PROTOCOLS)
