"""KEMDy19: the synthetic corpus, `koemo prepare` on it (own and listener labels, every quirk,
counts that sum), class sets, committed folds, repeated transcripts and the EmoBox export."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from koemo.cli import main
from koemo.config.load import load_config, with_changes
from koemo.dataset import kemdy19
from koemo.dataset.labels import SEVEN_CLASSES, shared_classes
from koemo.dataset.prepare import REPORT_JSON, TABLE_FILE, input_fingerprint, prepare
from koemo.dataset.splits import read_folds_file
from koemo.errors import KoemoInputError

SESSIONS = 3          # conftest's kemdy19_corpus


@pytest.fixture(scope="module")
def corpus19(kemdy19_corpus):
    return kemdy19_corpus


def rating_rows(root) -> pd.DataFrame:
    """Both rating files of every session, read independently of koemo (43 columns)."""
    frames = []
    for path in sorted((root / "annotation").glob("Session*_res.csv")):
        frame = pd.read_csv(path, header=None, skiprows=2, dtype=str, keep_default_na=False)
        assert frame.shape[1] == 43, path
        frame["file"] = path.name[10]      # SessionNN_F_res.csv -> F
        frame["session"] = int(path.name[7:9])
        frames.append(frame.rename(columns={9: "segment_id", 10: "emotion"}))
    return pd.concat(frames, ignore_index=True)


def run_prepare(root, workdir, cfg, **data):
    cfg = with_changes(cfg, {"data": data})
    return prepare(root, workdir, cfg, progress=False, features=False)


@pytest.fixture(scope="module")
def own(corpus19, tiny_config, tmp_path_factory):
    return run_prepare(corpus19, tmp_path_factory.mktemp("own"), tiny_config)


@pytest.fixture(scope="module")
def listener(corpus19, tiny_config, tmp_path_factory):
    return run_prepare(corpus19, tmp_path_factory.mktemp("listener"), tiny_config,
                       kemdy19_labels="listener")


def test_synthetic_corpus_has_kemdy19s_layout(corpus19):
    rows = rating_rows(corpus19)
    assert sorted({(s, f) for s, f in zip(rows["session"], rows["file"])}) == \
        [(s, g) for s in range(1, SESSIONS + 1) for g in "FM"]
    assert rows["segment_id"].str.match(kemdy19.SEGMENT_ID_RE.pattern).all()
    folders = {p.parent.name for p in corpus19.glob("wav/Session01/*/*.wav")}
    assert folders == {f"Sess01_impro0{k}" for k in range(1, 5)} | \
        {f"Sess01_script0{k}" for k in range(1, 7)}
    texts = [p.read_bytes() for p in corpus19.glob("wav/*/*/*.txt")]
    assert all(t.decode("utf-8") for t in texts)
    assert 0.1 < sum(t.endswith(b"\r\n") for t in texts) / len(texts) < 0.45
    decoded = " ".join(t.decode("utf-8") for t in texts)
    assert re.search(r"\b[os]/", decoded) and re.search(r"\)/\(", decoded)
    assert "disqust" not in set(rows["emotion"])
    # The two files rate different people: their labels differ on many utterances.
    pivot = rows.drop_duplicates(["session", "segment_id", "file"]).pivot(
        index=["session", "segment_id"], columns="file", values="emotion").dropna()
    assert 0.2 < (pivot["F"] != pivot["M"]).mean() < 0.8


def test_own_labels_come_from_the_speakers_file(own, corpus19):
    rows = rating_rows(corpus19).drop_duplicates(["session", "segment_id", "file"])
    by_file = rows.set_index(["file", "segment_id"])["emotion"]
    table = own.table
    assert len(table) > 0 and (table["corpus"] == "kemdy19").all()
    for r in table.itertuples():
        gender = r.segment_id.split("_")[2][0]
        assert r.gender == gender and r.speaker == f"Sess{r.session:02d}{gender}"
        assert r.label == by_file[(gender, r.segment_id)]
        assert r.dialogue == r.segment_id.split("_")[1]


def test_listener_labels_come_from_the_other_file(listener, own, corpus19):
    rows = rating_rows(corpus19).drop_duplicates(["session", "segment_id", "file"])
    by_file = rows.set_index(["file", "segment_id"])["emotion"]
    other = {"F": "M", "M": "F"}
    for r in listener.table.itertuples():
        assert r.label == by_file[(other[r.gender], r.segment_id)]
    both = own.table.merge(listener.table, on="segment_id")
    assert (both["label_x"] != both["label_y"]).any()
    assert listener.report["kemdy19"]["label_source"] == "listener"


@pytest.mark.parametrize("which", ["own", "listener"])
def test_every_row_is_accounted_for(which, own, listener, corpus19):
    report = (own if which == "own" else listener).report
    rows = rating_rows(corpus19)
    utterances = rows.drop_duplicates(["session", "segment_id"])
    surplus = rows.duplicated(["session", "segment_id", "file"]).sum()
    assert report["rows_read"] == len(utterances) + surplus
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    assert report["rows_dropped"] == len(report["dropped_rows"])
    assert report["kemdy19"]["annotation_rows"] == len(rows)
    assert report["problem_files"] == []


def test_quirks_are_reported_with_their_reason(own, listener):
    reasons = own.report["counts_by_reason"]
    assert reasons["duplicate_segment_id"] == 1   # the F row written twice in M_res
    assert reasons["missing_rating_row"] == 1     # the M row missing there: his own label
    assert "missing_rating_row" not in listener.report["counts_by_reason"]
    notes = [n for n in own.report["notes"] if n["reason"] == "misnamed_txt"]
    assert len(notes) == 1 and notes[0]["segment_id"] == "Sess01_impro02_M002"
    row = own.table.set_index("segment_id").loc["Sess01_impro02_M002"]
    assert row["txt_path"].endswith("Sess01_impro02_M001.txt") and row["text"]
    assert "label_tie" in reasons


def test_differing_rows_under_one_id_are_none_of_them_used(corpus19, tiny_config, tmp_path):
    import shutil
    root = tmp_path / "KEMDy19"
    shutil.copytree(corpus19, root)
    path = root / "annotation" / "Session02_F_res.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    cells = lines[3].split(",")
    cells[10] = "fear" if cells[10] != "fear" else "sad"
    lines.insert(3, ",".join(cells))           # the id of line 4 now also on line 3, other label
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_prepare(root, tmp_path / "w", tiny_config, classes=list(SEVEN_CLASSES))
    sid = cells[9]
    dropped = [d for d in result.report["dropped_rows"] if d["segment_id"] == sid]
    assert sid not in set(result.table["segment_id"]) or not sid.split("_")[2].startswith("F")
    conflicts = [d for d in dropped if d["reason"] == "conflicting_segment_id"]
    assert len(conflicts) == 2          # the rule KEMDy20 follows too (koemo.dataset.duplicates)
    assert all("with different emotion_total" in d["message"] for d in conflicts)
    report = result.report
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]


def test_transcripts_cleaned_of_kemdy19_markers():
    assert kemdy19.clean_transcript("o/ (그래서)/(그래가지구) 좋았어 s/ N/ 진짜l/") == "그래서 좋았어 진짜"
    assert kemdy19.clean_transcript("b/ 아 친구들도? n/") == "아 친구들도?"


def test_table_text_has_no_markers(own):
    text = " ".join(own.table["text"])
    assert not re.search(r"[cnNulbos]/|\)/\(", text)


def test_corpus_recognised_from_its_files_or_forced(corpus19, tiny_corpus, tiny_config, tmp_path):
    from koemo.dataset.corpora import detect_corpus
    assert detect_corpus(corpus19) == "kemdy19" and detect_corpus(tiny_corpus) == "kemdy20"
    with pytest.raises(KoemoInputError, match="SessNN_eval.csv"):
        run_prepare(corpus19, tmp_path / "w", tiny_config, corpus="kemdy20")
    code = main(["prepare", "--data", str(corpus19), "--workdir", str(tmp_path / "cli"),
                 "--config", "tiny", "--corpus", "kemdy19", "--no-features", "--no-progress"])
    assert code == 0
    assert (pd.read_parquet(tmp_path / "cli" / TABLE_FILE)["corpus"] == "kemdy19").all()


def test_kemdy20_rows_are_marked_kemdy20(tiny_workdir):
    table = pd.read_parquet(tiny_workdir / TABLE_FILE)
    assert (table["corpus"] == "kemdy20").all()
    assert (table["dialogue"] == table["script"].map(lambda s: f"script{s:02d}")).all()
    report = json.loads((tiny_workdir / REPORT_JSON).read_text(encoding="utf-8"))
    assert report["corpus"] == "kemdy20" and "kemdy19" not in report


def test_label_source_enters_the_fingerprint_only_when_not_the_default(tiny_config, tmp_path):
    listener = with_changes(tiny_config, {"data": {"kemdy19_labels": "listener"}})
    default = with_changes(tiny_config, {"data": {"kemdy19_labels": "own"}})
    base = input_fingerprint(tmp_path, tiny_config)
    assert input_fingerprint(tmp_path, default) == base != input_fingerprint(tmp_path, listener)


def test_seven_classes_for_either_corpus(corpus19, tiny_corpus, tiny_config, tmp_path):
    seven = list(SEVEN_CLASSES)
    k19 = run_prepare(corpus19, tmp_path / "k19", tiny_config, classes=seven)
    assert {"fear", "disgust"} <= set(k19.table["label"])
    assert (k19.table["label_id"] == k19.table["label"].map(seven.index)).all()
    k20 = run_prepare(tiny_corpus, tmp_path / "k20", tiny_config, classes=seven)
    total = pd.concat(pd.read_csv(p, header=None, skiprows=2, dtype=str)
                      for p in sorted((tiny_corpus / "annotation").glob("*.csv")))[4]
    assert (k20.table["label"] == "disgust").sum() == (total == "disqust").sum() > 0


def test_unknown_class_names_are_refused():
    with pytest.raises(KoemoInputError, match="data.classes: .*angery.* is not allowed"):
        load_config("tiny", ["data.classes=[neutral, angery]"])
    with pytest.raises(KoemoInputError, match="data.classes: .* is not allowed: .*distinct"):
        load_config("tiny", ["data.classes=[neutral, sad, neutral]"])


def test_shared_classes_keep_the_first_sets_order():
    assert shared_classes(SEVEN_CLASSES, ("angry", "neutral", "disqust")) == \
        ("neutral", "angry", "disgust")


def test_committed_kemdy19_folds_hold_four_sessions_each():
    folds = read_folds_file("configs/folds/kemdy19_cv5.csv")
    assert sorted(folds) == list(range(1, 21))
    assert sorted(pd.Series(folds).value_counts().tolist()) == [4] * 5
    assert folds == {s: (s - 1) % 5 for s in range(1, 21)}


def test_cv5_folds_are_speaker_independent(tiny_config, corpus19, tmp_path):
    cfg = with_changes(tiny_config, {"data": {"folds_file": "configs/folds/kemdy19_cv5.csv"}})
    table = prepare(corpus19, tmp_path, cfg, progress=False, features=False).table
    for k in range(5):
        split = table[f"split_cv5_{k}"]
        test = set(table.loc[split == "test", "speaker"])
        assert test.isdisjoint(table.loc[split != "test", "speaker"])


def test_repeated_transcripts_reported_per_corpus(own):
    table = own.table
    sessions = table[table["text"] != ""].groupby("text")["session"].nunique()
    repeated = table["text"].isin(sessions[sessions > 1].index)
    found = own.report["repeated_transcripts"]["kemdy19"]
    assert found["repeated_utterances"] == repeated.sum() > 0
    assert found["repeated_texts"] == (sessions > 1).sum()
    assert found["share"] == round(repeated.mean(), 4)
    assert table.loc[repeated, "dialogue"].str.startswith("script").all()
    assert found["examples"] and found["examples"][0]["sessions"] >= 2
    md = (own.workdir / "prepare_report.md").read_text(encoding="utf-8")
    assert "Repeated transcripts" in md and found["examples"][0]["text"] in md


def test_folds_export_in_emobox_layout(own, tiny_workdir, tmp_path):
    out = tmp_path / "emobox"
    assert main(["folds", "--export", str(out), "--workdir", str(own.workdir),
                 "--workdir", str(tiny_workdir)]) == 0
    table = own.table
    for k in range(5):
        for split in ("train", "valid", "test"):
            path = out / "kemdy19" / f"fold_{k + 1}" / f"kemdy19_{split}_fold_{k + 1}.jsonl"
            entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            expected = table[table[f"split_cv5_{k}"] == split]
            assert [e["key"] for e in entries] == [f"kemdy19-{s}" for s in expected["segment_id"]]
            assert [e["emo"] for e in entries] == expected["label"].tolist()
    first = json.loads((out / "kemdy19" / "kemdy19.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"key", "dataset", "wav", "type", "sample_rate", "num_frame", "task",
                          "length", "emo", "channel"}
    assert first["wav"].startswith("KEMDy19/wav/Session01/Sess01_") and first["channel"] == 1
    assert first["num_frame"] == round(first["length"] * 16000)
    assert (out / "kemdy20" / "fold_5" / "kemdy20_test_fold_5.jsonl").is_file()
    labels = json.loads((out / "kemdy19" / "label_map.json").read_text(encoding="utf-8"))
    assert sorted(labels) == sorted(own.report["classes"])


def test_folds_export_refuses_a_corpus_given_twice(own, tmp_path, capsys):
    code = main(["folds", "--export", str(tmp_path), "--workdir", str(own.workdir),
                 "--workdir", str(own.workdir)])
    assert code == 1 and "already exported" in capsys.readouterr().err


def test_synth_cli_writes_kemdy19(tmp_path):
    assert main(["synth", "--corpus", "kemdy19", "--out", str(tmp_path / "c"), "--sessions", "1",
                 "--utterances-per-session", "20"]) == 0
    assert sorted(p.name for p in (tmp_path / "c" / "annotation").iterdir()) == \
        ["Session01_F_res.csv", "Session01_M_res.csv"]
    assert main(["synth", "--corpus", "kemdy19", "--out", str(tmp_path / "d"),
                 "--silent-recordings", "1"]) == 1


def test_a_missing_rating_file_drops_only_the_labels_it_holds(corpus19, tiny_config, tmp_path):
    import shutil
    root = tmp_path / "KEMDy19"
    shutil.copytree(corpus19, root)
    (root / "annotation" / "Session03_M_res.csv").unlink()
    result = run_prepare(root, tmp_path / "w", tiny_config)
    report, table = result.report, result.table
    assert [(f["reason"], f["file"].endswith("Session03_M_res.csv"))
            for f in report["problem_files"]] == [("missing_csv", True)]
    missing = [d["segment_id"] for d in report["dropped_rows"]
               if d["reason"] == "missing_rating_row" and d["session"] == 3]
    session3 = rating_rows(root).query("session == 3")["segment_id"]
    assert sorted(missing) == sorted(s for s in session3 if s.split("_")[2].startswith("M"))
    assert set(table.loc[table["session"] == 3, "gender"]) == {"F"}
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
