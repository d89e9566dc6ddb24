"""A workdir holding both corpora, and the protocols across them.

`koemo prepare --data KEMDy19 --data KEMDy20 --workdir W` prepares each corpus on its own into
`W/corpora/<corpus>/` (its table and full report there), then writes one table to W: both
corpora's rows (KEMDy19's first), the usual split columns over the pooled rows (`cv5` is then
pooled training with the session folds of both corpora: fold k tests on fold k's sessions of
each), and one column per cross-corpus protocol:

- `split_kemdy19_to_kemdy20`: every KEMDy19 row trains (10% of them, at random, valid for early
  stopping), every KEMDy20 row is test; `split_kemdy20_to_kemdy19` the other way round. The
  target corpus never gives a training or validation row.
- `split_kemdy19_cv5_k` (`split_kemdy20_cv5_k`): one corpus' own session folds, its rows split
  exactly as its own workdir splits them (`corpora/<corpus>/`), the other corpus' rows
  `unused`: in-corpus numbers trained in the same workdir as the cross-corpus ones.

Both corpora are prepared with the same config, so their classes are the same; W's report sums
their reports (every row still accounted for) and names where each corpus' own report is.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from koemo.config.fingerprints import fingerprint
from koemo.dataset.corpora import corpus_of
from koemo.dataset.leakage import repeated_transcripts
from koemo.config.schema import CORPORA, CROSS_PROTOCOLS, N_FOLDS, Config
from koemo.dataset.splits import SPLIT_COLUMNS, UNUSED, add_splits
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    from koemo.dataset.prepare import PrepareResult

CORPUS_ORDER = CORPORA
CROSS_COLUMNS = tuple(f"split_{name}" for name in CROSS_PROTOCOLS)
IN_CORPUS_COLUMNS = tuple(f"split_{corpus}_cv5_{k}" for corpus in CORPORA for k in range(N_FOLDS))
VALID_SHARE = 0.1
# Bump when the combined table's rules change (2: the in-corpus fold columns).
COMBINE_VERSION = 2


def cross_split(corpus: pd.Series, source: str, target: str, seed: int = 1) -> np.ndarray:
    """Source rows train (VALID_SHARE of them valid, at random with `seed`), target rows test."""
    corpus = np.asarray(corpus)
    split = np.where(corpus == target, "test", "train").astype(object)
    rest = np.flatnonzero(corpus == source)
    if len(rest) >= 2:
        _, valid = train_test_split(rest, test_size=VALID_SHARE, random_state=seed)
        split[valid] = "valid"
    return split


def combine_tables(tables: list[pd.DataFrame], cfg: Config) -> pd.DataFrame:
    """One table of several corpora's rows with every protocol's split column (module doc)."""
    rows = pd.concat([t.drop(columns=[c for c in SPLIT_COLUMNS if c in t]) for t in tables],
                     ignore_index=True)
    table = add_splits(rows, cfg)
    seed = int(cfg.data.split_seed)
    for name in CROSS_PROTOCOLS:
        source, target = name.split("_to_")
        table[f"split_{name}"] = cross_split(table["corpus"], source, target, seed)
    for column, values in in_corpus_columns(tables).items():
        table[column] = values
    return table


def in_corpus_columns(tables: list[pd.DataFrame]) -> dict[str, np.ndarray]:
    """`split_<corpus>_cv5_k` over the concatenated rows of `tables` (each table one corpus,
    with its own split columns): that corpus' own fold split, the other rows UNUSED."""
    columns: dict[str, list[np.ndarray]] = {column: [] for column in IN_CORPUS_COLUMNS}
    for part in tables:
        corpus = str(part["corpus"].iloc[0]) if len(part) else ""
        prefix = f"split_{corpus}_"
        for column in columns:       # split_kemdy19_cv5_2 <- kemdy19's own split_cv5_2
            values = (part.get(f"split_{column.removeprefix(prefix)}")
                      if column.startswith(prefix) else None)
            columns[column].append(np.full(len(part), UNUSED, dtype=object) if values is None
                                   else values.to_numpy(dtype=object))
    return {column: np.concatenate(parts) for column, parts in columns.items()}


def combined_fingerprint(parts: list[dict], cfg: Config) -> str:
    """The corpora's own input fingerprints plus what the combined split columns read."""
    return fingerprint({"combine": COMBINE_VERSION, "parts": [p["input_fingerprint"] for p in parts],
                        "split_seed": cfg.data.split_seed, "folds_file": cfg.data.folds_file},
                       length=20)


def _summed(parts: list[dict], key: str) -> dict:
    total: dict = {}
    for part in parts:
        for name, value in part[key].items():
            total[name] = total.get(name, 0) + value
    return dict(sorted(total.items()))


def combined_report(parts: list[dict], table: pd.DataFrame, workdir: Path, fp: str,
                    part_dirs: dict[str, Path]) -> dict:
    """The keys of a one-corpus report, summed or listed over the corpora."""
    first = parts[0]
    listed = ("dropped_rows", "problem_files", "sessions_without_rows", "notes", "no_signal_rows")
    return {
        "prepare_version": first["prepare_version"], "read_rules": first.get("read_rules"),
        "skipped_unreadable": [path for p in parts for path in p.get("skipped_unreadable") or []],
        "corpus": "+".join(p["corpus"] for p in parts),
        "data_root": ", ".join(p["data_root"] for p in parts),
        "data_roots": {p["corpus"]: p["data_root"] for p in parts},
        "corpus_reports": {name: str(path) for name, path in part_dirs.items()},
        "workdir": str(workdir.resolve()), "input_fingerprint": fp,
        "data_config": first["data_config"], "label_policy": first["label_policy"],
        "classes": first["classes"],
        **{k: sum(p[k] for p in parts) for k in ("rows_read", "rows_dropped", "input_problems")},
        "rows_kept": len(table),
        **{k: _summed(parts, k) for k in ("counts_by_reason", "labels_dropped", "notes_by_reason",
                                          "no_signal_by_reason")},
        "labels_kept": {k: int(v) for k, v in table["label"].value_counts().items()},
        "splits": {col: {k: int(v) for k, v in table[col].value_counts().items()}
                   for col in SPLIT_COLUMNS + CROSS_COLUMNS + IN_CORPUS_COLUMNS},
        **{k: [entry for p in parts for entry in p[k]] for k in listed},
        "sessions": {f"{p['corpus']}/{folder}": counts for p in parts
                     for folder, counts in p["sessions"].items()},
        **{k: p[k] for p in parts for k in ("kemdy19",) if k in p},
        "repeated_transcripts": repeated_transcripts(table),
    }


def check_corpora(names: list[str], roots: Sequence[str | Path]) -> None:
    """Each corpus once, and only corpora the cross-corpus protocols know."""
    if len(set(names)) != len(names):
        raise KoemoInputError(f"--data {', '.join(map(str, roots))}: the same corpus "
                              f"({', '.join(names)}) given twice; a combined workdir holds one "
                              "copy of each corpus")


def prepare_corpora(roots: Sequence[str | Path], workdir: str | Path, cfg: Config,
                    strict: bool = False, progress: bool = True, features: bool = True,
                    skip_unreadable: bool = False) -> PrepareResult:
    """Prepare several corpora into one workdir (module docstring) -> PrepareResult."""
    from koemo.dataset import prepare as prep

    workdir = Path(workdir)
    if (cfg.data.corpus or "auto") != "auto":
        raise KoemoInputError("data.corpus / --corpus: with several --data roots each corpus "
                              "is recognised from its own files; leave it at auto")
    parts = []
    for root in roots:
        name = corpus_of(Path(root), cfg.data)
        parts.append(prep.prepare(root, workdir / "corpora" / name, cfg, strict=strict,
                                  progress=progress, features=False,
                                  skip_unreadable=skip_unreadable))
    names = [p.report["corpus"] for p in parts]
    check_corpora(names, roots)
    parts.sort(key=lambda p: CORPUS_ORDER.index(p.report["corpus"]))
    reports = [p.report for p in parts]
    fp = combined_fingerprint(reports, cfg)
    previous = prep.load_previous(workdir, fp)
    if previous is not None:
        table, report = previous
    else:
        table = combine_tables([p.table for p in parts], cfg)
        report = combined_report(reports, table, workdir, fp,
                                 {p.report["corpus"]: p.workdir for p in parts})
        prep.write_outputs(workdir, table, report)
    print(f"prepare: combined {' + '.join(names)} into {workdir}: {len(table)} rows "
          f"({', '.join(f'{n} {int((table.corpus == n).sum())}' for n in sorted(names))})")
    store = build_features(table, workdir, cfg, progress) if features else None
    return prep.PrepareResult(table, report, store, workdir, previous is not None)


def build_features(table: pd.DataFrame, workdir: Path, cfg: Config, progress: bool) -> Path:
    from koemo.audio.feature_store import build_feature_store

    return Path(build_feature_store(table, workdir, cfg, progress=progress).directory)
