"""`koemo folds --export`: the EmoBox files read back as EmoBox's own scripts read them.

The layout is EmoBox's (github.com/emo-box/EmoBox), from its files, not from koemo's writer:
- data/<dataset>/<dataset>.json and data/<dataset>/fold_<n>/<dataset>_{train,test}_fold_<n>.json
  (plus `_valid_` where a corpus has one): one JSON object keyed by utterance, each entry holding
  exactly wav, length, emo, dataset and channel (e.g. data/cafe/fold_1/cafe_test_fold_1.json);
- the .jsonl twins: one object a line with key, dataset, wav, type, sample_rate, num_frame,
  task, length, emo, channel (README "Metadata");
- label_map.json: emo code -> label; the README's recipe counts the classes as the distinct
  values;
- examples/sb/speech_feature_extraction.py loads `--data data/<dataset>/<dataset>.json` and,
  per key, reads `wav` (a path from the folder it runs in), `channel` and `float(length)`;
  examples/sb/dataset_prepare.py loads the fold's train/valid/test .json and maps each entry's
  `emo` through label_map.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from koemo.cli import main
from koemo.config.workdir import REPORT_JSON, TABLE_FILE

CLASSES = ["neutral", "sad", "happy", "surprise", "angry"]
JSON_ENTRY = {"wav", "length", "emo", "dataset", "channel"}
JSONL_ENTRY = {"key", "dataset", "wav", "type", "sample_rate", "num_frame", "task", "length",
               "emo", "channel"}


def fake_workdir(tmp_path: Path, sessions: int) -> tuple[Path, Path, pd.DataFrame]:
    """A prepared workdir of a KEMDy19-like corpus with `sessions` sessions, 4 utterances each,
    cv5 folds as koemo assigns them (session s tests in fold (s - 1) % 5)."""
    root = tmp_path / "corpora" / "KEMDy19"
    rows = []
    for s in range(1, sessions + 1):
        for u in range(4):
            wav = root / "wav" / f"Session{s:02d}" / f"Sess{s:02d}_script01_F{u:03d}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"RIFF")
            rows.append({"segment_id": wav.stem, "session": s, "wav_path": str(wav),
                         "duration": 1.5 + u / 4, "label": CLASSES[(s + u) % 5],
                         "corpus": "kemdy19"})
    table = pd.DataFrame(rows)
    for k in range(5):
        test = (table["session"] - 1) % 5 == k
        valid = ~test & (table.index % 4 == 0)
        table[f"split_cv5_{k}"] = ["test" if t else "valid" if v else "train"
                                   for t, v in zip(test, valid)]
    workdir = tmp_path / "work"
    workdir.mkdir()
    table.to_parquet(workdir / TABLE_FILE, index=False)
    (workdir / REPORT_JSON).write_text(json.dumps({"data_root": str(root), "classes": CLASSES}),
                                       encoding="utf-8")
    return workdir, root.parent, table


def load_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def extraction_reads(data_dir: Path, dataset: str, runs_in: Path) -> list[tuple[str, Path, int, float]]:
    """What the feature-extraction script takes from <dataset>.json: per key, the wav (from the
    folder it runs in), the channel and the length."""
    data = load_json(data_dir / dataset / f"{dataset}.json")
    return [(key, runs_in / sample["wav"], sample["channel"], float(sample["length"]))
            for key, sample in data.items()]


def recipe_reads(data_dir: Path, dataset: str, fold: int) -> dict[str, dict[str, str]]:
    """What the recipe's data preparation takes from a fold: split -> {key: mapped emo}."""
    label_map = load_json(data_dir / dataset / "label_map.json")
    folder = data_dir / dataset / f"fold_{fold}"
    return {split: {key: label_map[values["emo"]] for key, values in
                    load_json(folder / f"{dataset}_{split}_fold_{fold}.json").items()}
            for split in ("train", "valid", "test")}


def test_json_files_read_back_as_emobox_reads_them(tmp_path, capsys):
    workdir, corpora, table = fake_workdir(tmp_path, sessions=5)
    out = tmp_path / "emobox"
    assert main(["folds", "--export", str(out), "--workdir", str(workdir)]) == 0
    assert "no test utterance" not in capsys.readouterr().out

    reads = extraction_reads(out, "kemdy19", runs_in=corpora)
    assert [key for key, *_ in reads] == [f"kemdy19-{s}" for s in table["segment_id"]]
    assert all(wav.is_file() and channel == 1 for _, wav, channel, _ in reads)
    assert [length for *_, length in reads] == table["duration"].tolist()
    for entry in load_json(out / "kemdy19" / "kemdy19.json").values():
        assert set(entry) == JSON_ENTRY and entry["dataset"] == "kemdy19"

    label_map = load_json(out / "kemdy19" / "label_map.json")
    assert len(set(label_map.values())) == len(CLASSES)
    for k in range(5):
        fold = recipe_reads(out, "kemdy19", k + 1)
        for split, entries in fold.items():
            expected = table[table[f"split_cv5_{k}"] == split]
            assert list(entries) == [f"kemdy19-{s}" for s in expected["segment_id"]]
            assert list(entries.values()) == [label_map[e] for e in expected["label"]]
        assert set(fold["test"]).isdisjoint(set(fold["train"]) | set(fold["valid"]))


def test_json_and_jsonl_hold_the_same_utterances(tmp_path):
    workdir, _, _ = fake_workdir(tmp_path, sessions=5)
    out = tmp_path / "emobox"
    assert main(["folds", "--export", str(out), "--workdir", str(workdir)]) == 0
    folder = out / "kemdy19" / "fold_2"
    for split in ("train", "valid", "test"):
        stem = folder / f"kemdy19_{split}_fold_2"
        lines = [json.loads(line) for line in
                 stem.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
        keyed = load_json(stem.with_suffix(".json"))
        assert all(set(line) == JSONL_ENTRY for line in lines)
        assert [line["key"] for line in lines] == list(keyed)
        assert [{f: line[f] for f in JSON_ENTRY} for line in lines] == list(keyed.values())


@pytest.mark.parametrize("sessions, empty", [(3, "fold_4, fold_5"), (4, "fold_5")])
def test_a_partial_corpus_names_its_folds_without_a_test_session(tmp_path, capsys, sessions,
                                                                  empty):
    workdir, _, _ = fake_workdir(tmp_path, sessions=sessions)
    out = tmp_path / "emobox"
    assert main(["folds", "--export", str(out), "--workdir", str(workdir)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == [f"koemo folds: kemdy19: no test utterance in {empty} (no session of "
                           "the corpus falls there): those test files are empty"]
    for n in range(sessions + 1, 6):
        assert load_json(out / "kemdy19" / f"fold_{n}" / f"kemdy19_test_fold_{n}.json") == {}
    assert recipe_reads(out, "kemdy19", 1)["test"]
