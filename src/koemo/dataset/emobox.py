"""Session folds in the JSONL layout of the EmoBox benchmark (docs/kemdy19.md, "EmoBox").

For each corpus of a prepared table, under DIR/<corpus>/:
    <corpus>.jsonl                                   every utterance
    fold_<n>/<corpus>_{train,valid,test}_fold_<n>.jsonl   n = 1..5 (koemo's cv5 fold n-1)
    label_map.json                                   emo code -> class name
One JSON object per line with EmoBox's fields: key, dataset, wav (relative to the folder that
holds the corpus root), type "raw", sample_rate, num_frame, task "category", length (seconds),
emo, channel 1. EmoBox reads an official valid file when one exists; koemo writes the valid
part of its folds (early stopping only) so both tools stop on the same utterances.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from koemo.dataset.splits import N_FOLDS
from koemo.errors import KoemoInputError

SPLITS = ("train", "valid", "test")


def _entries(rows: pd.DataFrame, corpus: str, corpus_root: Path, sample_rate: int) -> list[dict]:
    base = corpus_root.parent
    return [{"key": f"{corpus}-{r.segment_id}", "dataset": corpus,
             "wav": Path(os.path.relpath(r.wav_path, base)).as_posix(), "type": "raw",
             "sample_rate": sample_rate, "num_frame": int(round(r.duration * sample_rate)),
             "task": "category", "length": float(r.duration), "emo": r.label, "channel": 1}
            for r in rows.itertuples(index=False)]


def _write_jsonl(path: Path, entries: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries),
                   encoding="utf-8")
    os.replace(tmp, path)


def check_table(table: pd.DataFrame, source: str) -> None:
    """Every column the export reads, and every fold column, or one error naming the table."""
    needed = ["segment_id", "wav_path", "duration", "label"] + \
             [f"split_cv5_{k}" for k in range(N_FOLDS)]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KoemoInputError(f"{source}: the utterance table lacks {missing}; re-run "
                              "`koemo prepare`")


def export_corpus(rows: pd.DataFrame, corpus: str, corpus_root: Path, out: Path,
                  classes: list[str], sample_rate: int = 16000) -> list[Path]:
    """Write one corpus' files (module docstring); returns the paths written."""
    folder = out / corpus
    written = [folder / f"{corpus}.jsonl"]
    _write_jsonl(written[0], _entries(rows, corpus, corpus_root, sample_rate))
    for k in range(N_FOLDS):
        for split in SPLITS:
            path = folder / f"fold_{k + 1}" / f"{corpus}_{split}_fold_{k + 1}.jsonl"
            part = rows[rows[f"split_cv5_{k}"] == split]
            _write_jsonl(path, _entries(part, corpus, corpus_root, sample_rate))
            written.append(path)
    label_map = folder / "label_map.json"
    label_map.write_text(json.dumps({c: c.capitalize() for c in classes}, indent=1) + "\n",
                         encoding="utf-8")
    return written + [label_map]


def export_workdir(table: pd.DataFrame, report: dict, out: Path, source: str) -> dict[str, int]:
    """Every corpus of one prepared table -> {corpus: utterances written}."""
    check_table(table, source)
    corpora = table["corpus"] if "corpus" in table else pd.Series("kemdy20", index=table.index)
    counts = {}
    for corpus, rows in table.groupby(corpora, sort=True):
        root = report.get("data_roots", {}).get(corpus, report["data_root"])
        export_corpus(rows, str(corpus), Path(root), out, report["classes"])
        counts[str(corpus)] = len(rows)
    return counts
