"""Session folds in the layouts of the EmoBox benchmark (docs/kemdy19.md, "EmoBox").

For each corpus of a prepared table, under DIR/<corpus>/ (n = 1..5, koemo's cv5 fold n-1):
    <corpus>.jsonl, <corpus>.json                           every utterance
    fold_<n>/<corpus>_{train,valid,test}_fold_<n>.jsonl      one JSON object per line
    fold_<n>/<corpus>_{train,valid,test}_fold_<n>.json       one object keyed by utterance
    label_map.json                                           emo code -> class name
EmoBox ships both forms: its `EmoDataset` reads the JSONL, its SpeechBrain recipe
(examples/sb: train.py, dataset_prepare.py) and speech_feature_extraction.py read the JSON.
A JSONL line has EmoBox's fields: key, dataset, wav (relative to the folder that holds the
corpus root), type "raw", sample_rate, num_frame, task "category", length (seconds), emo,
channel 1. A JSON entry is keyed by that key and holds wav, length, emo, dataset and channel, as
EmoBox's own data/<dataset>/*.json do. EmoBox reads an official valid file when one exists;
koemo writes the valid part of its folds (early stopping only) so both tools stop on the same
utterances. A corpus with fewer than five sessions leaves some folds without a test session:
their test files are written empty and named (`empty_test_folds`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from koemo.dataset.splits import N_FOLDS
from koemo.errors import KoemoInputError

SPLITS = ("train", "valid", "test")
JSON_FIELDS = ("wav", "length", "emo", "dataset", "channel")   # as EmoBox's own .json entries


def _entries(rows: pd.DataFrame, corpus: str, corpus_root: Path, sample_rate: int) -> list[dict]:
    base = corpus_root.parent
    return [{"key": f"{corpus}-{r.segment_id}", "dataset": corpus,
             "wav": Path(os.path.relpath(r.wav_path, base)).as_posix(), "type": "raw",
             "sample_rate": sample_rate, "num_frame": int(round(r.duration * sample_rate)),
             "task": "category", "length": float(r.duration), "emo": r.label, "channel": 1}
            for r in rows.itertuples(index=False)]


def _write_text(path: Path, text: str) -> None:
    """Whole or not at all: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_both(stem: Path, entries: list[dict]) -> list[Path]:
    """`stem`.jsonl (one entry a line) and `stem`.json (entries keyed by utterance)."""
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
    keyed = {e["key"]: {field: e[field] for field in JSON_FIELDS} for e in entries}
    paths = [stem.with_name(stem.name + ".jsonl"), stem.with_name(stem.name + ".json")]
    _write_text(paths[0], lines)
    _write_text(paths[1], json.dumps(keyed, indent=1, ensure_ascii=False) + "\n")
    return paths


def check_table(table: pd.DataFrame, source: str) -> None:
    """Every column the export reads, and every fold column, or one error naming the table."""
    needed = ["segment_id", "wav_path", "duration", "label"] + \
             [f"split_cv5_{k}" for k in range(N_FOLDS)]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KoemoInputError(f"{source}: the utterance table lacks {missing}; re-run "
                              "`koemo prepare`")


@dataclass(frozen=True)
class CorpusExport:
    """What `export_corpus` wrote for one corpus."""
    utterances: int
    empty_test_folds: tuple[int, ...]     # EmoBox fold numbers (1..5) whose test part is empty
    paths: tuple[Path, ...]


def export_corpus(rows: pd.DataFrame, corpus: str, corpus_root: Path, out: Path,
                  classes: list[str], sample_rate: int = 16000) -> CorpusExport:
    """Write one corpus' files (module docstring)."""
    folder = out / corpus
    written = _write_both(folder / corpus, _entries(rows, corpus, corpus_root, sample_rate))
    empty = []
    for k in range(N_FOLDS):
        for split in SPLITS:
            part = rows[rows[f"split_cv5_{k}"] == split]
            stem = folder / f"fold_{k + 1}" / f"{corpus}_{split}_fold_{k + 1}"
            written += _write_both(stem, _entries(part, corpus, corpus_root, sample_rate))
            if split == "test" and part.empty:
                empty.append(k + 1)
    label_map = folder / "label_map.json"
    _write_text(label_map, json.dumps({c: c.capitalize() for c in classes}, indent=1) + "\n")
    return CorpusExport(len(rows), tuple(empty), tuple(written + [label_map]))


def export_workdir(table: pd.DataFrame, report: dict, out: Path,
                   source: str) -> dict[str, CorpusExport]:
    """Every corpus of one prepared table -> {corpus: what was written}."""
    check_table(table, source)
    corpora = table["corpus"] if "corpus" in table else pd.Series("kemdy20", index=table.index)
    exports = {}
    for corpus, rows in table.groupby(corpora, sort=True):
        root = report.get("data_roots", {}).get(corpus, report["data_root"])
        exports[str(corpus)] = export_corpus(rows, str(corpus), Path(root), out, report["classes"])
    return exports
