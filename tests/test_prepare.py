"""`koemo prepare` (koemo.dataset.prepare) on the tiny synthetic corpus and corrupted copies."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from koemo.cli import main
from koemo.config.load import with_changes
from koemo.dataset.kemdy20 import clean_transcript
from koemo.dataset.prepare import REPORT_JSON, REPORT_MD, TABLE_COLUMNS, TABLE_FILE, prepare
from koemo.errors import KoemoInputError
from koemo.dataset.labels import PAPER_CLASSES



def csv_rows(corpus) -> pd.DataFrame:
    """Annotation rows parsed independently of koemo: skip the two header rows."""
    frames = []
    for path in sorted((corpus / "annotation").glob("Sess*_eval.csv")):
        frame = pd.read_csv(path, header=None, skiprows=2, dtype=str)
        frame["file_session"] = int(path.name[4:6])
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows.rename(columns={3: "segment_id", 4: "emotion", 5: "valence", 6: "arousal"})


@pytest.fixture(scope="module")
def prepared(tiny_corpus, tiny_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prepared")
    return prepare(tiny_corpus, workdir, tiny_config, progress=False)


def test_table_round_trip_against_annotation_csvs(prepared, tiny_corpus):
    rows = csv_rows(tiny_corpus)
    single = rows[rows["emotion"].isin(PAPER_CLASSES)]
    table = pd.read_parquet(prepared.workdir / TABLE_FILE)
    assert list(table.columns) == list(TABLE_COLUMNS)
    for col in ("session", "script", "utt_index", "label_id"):
        assert table[col].dtype == np.int64, col
    for col in ("valence", "arousal", "start", "end", "duration"):
        assert table[col].dtype == np.float64, col
    assert table["segment_id"].tolist() == single["segment_id"].tolist()  # annotation order
    assert table["label"].tolist() == single["emotion"].tolist()
    assert np.allclose(table["valence"], single["valence"].astype(float))
    assert np.allclose(table["arousal"], single["arousal"].astype(float))
    assert table["session"].tolist() == single["file_session"].tolist()
    assert (table["label_id"] == table["label"].map(PAPER_CLASSES.index)).all()
    report = prepared.report
    assert report["rows_read"] == len(rows)
    assert report["rows_kept"] == len(table) == len(single)
    assert report["rows_dropped"] == len(rows) - len(single) == len(report["dropped_rows"])
    assert report["labels_kept"] == table["label"].value_counts().to_dict()
    assert report["problem_files"] == [] and report["input_problems"] == 0


def test_audio_and_text_paired_by_segment_id(prepared):
    table = prepared.table
    for row in table.sample(n=min(20, len(table)), random_state=0).itertuples():
        assert os.path.basename(row.wav_path) == f"{row.segment_id}.wav"
        assert os.path.basename(row.txt_path) == f"{row.segment_id}.txt"
        raw = open(row.txt_path, "rb").read().decode("cp949").splitlines()[0].strip()
        assert row.text_raw == raw and row.text == clean_transcript(raw)
        info = sf.info(row.wav_path)
        assert row.duration == pytest.approx(info.frames / 16000)
        assert row.speaker == row.segment_id.split("_")[2] and row.gender == row.speaker[-1]
    assert not table["text"].str.contains(r"[cnNulb]/|[*+]").any()


def test_drop_report_lists_every_dropped_row(prepared, tiny_corpus):
    rows = csv_rows(tiny_corpus)
    dropped = rows[~rows["emotion"].isin(PAPER_CLASSES)]
    entries = prepared.report["dropped_rows"]
    assert [e["segment_id"] for e in entries] == dropped["segment_id"].tolist()
    ties = dropped["emotion"].str.contains(";").sum()
    assert prepared.report["counts_by_reason"].get("label_tie", 0) == ties
    assert all(not e["input_problem"] and e["file"].endswith("_eval.csv") for e in entries)
    on_disk = json.loads((prepared.workdir / REPORT_JSON).read_text(encoding="utf-8"))
    assert on_disk["dropped_rows"] == entries
    markdown = (prepared.workdir / REPORT_MD).read_text(encoding="utf-8")
    assert all(e["segment_id"] in markdown for e in entries)


def test_splits_speaker_independent_on_corpus(prepared):
    table = prepared.table
    for k in range(5):
        col = table[f"split_cv5_{k}"]
        assert set(table.loc[col == "test", "speaker"]).isdisjoint(table.loc[col != "test", "speaker"])
    assert sorted(s for k in range(5)
                  for s in set(table.loc[table[f"split_cv5_{k}"] == "test", "session"])) == \
        sorted(table["session"].unique())


def test_second_run_reuses_and_says_so(prepared, tiny_corpus, tiny_config, capsys):
    again = prepare(tiny_corpus, prepared.workdir, tiny_config, progress=False)
    assert again.reused and not prepared.reused
    assert "reusing prepared table" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again.table, prepared.table)
    assert again.feature_store_path == prepared.feature_store_path
    protocol_only = with_changes(tiny_config, {"data": {"protocol": "cv5", "fold": 2}})
    assert prepare(tiny_corpus, prepared.workdir, protocol_only, progress=False,
                   features=False).reused


def test_changed_inputs_are_not_reused(tiny_corpus, tiny_config, tmp_path):
    corpus = shutil.copytree(tiny_corpus, tmp_path / "corpus")
    first = prepare(corpus, tmp_path / "w", tiny_config, progress=False, features=False)
    ties = with_changes(tiny_config, {"data": {"label_policy": "keep_ties"}})
    second = prepare(corpus, tmp_path / "w", ties, progress=False, features=False)
    assert not second.reused
    parts = csv_rows(corpus)["emotion"].str.split(";")
    assert len(second.table) == parts.map(lambda p: any(c in PAPER_CLASSES for c in p)).sum()
    assert len(second.table) > len(first.table)
    txt = second.table["txt_path"].iloc[0]
    os.utime(txt, ns=(os.stat(txt).st_atime_ns, os.stat(txt).st_mtime_ns + 10**9))
    assert not prepare(corpus, tmp_path / "w", ties, progress=False, features=False).reused


def _first_kept(table, corpus):
    row = table.iloc[0]
    wav = corpus / "wav" / f"Session{row.session:02d}" / f"{row.segment_id}.wav"
    return row.segment_id, wav, wav.with_suffix(".txt")


def _write_wav(path, sr=16000, channels=1, n=8000):
    wave = 0.1 * np.sin(np.arange(n) / 7.0)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr,
             subtype="PCM_16")


CORRUPTIONS = {
    "truncated_wav": lambda wav, txt: wav.write_bytes(wav.read_bytes()[:2000]),
    "corrupt_wav": lambda wav, txt: wav.write_bytes(b"RIFF-but-not-really" * 20),
    "empty_wav": lambda wav, txt: wav.write_bytes(b""),
    "wrong_sample_rate": lambda wav, txt: _write_wav(wav, sr=22050),
    "not_mono": lambda wav, txt: _write_wav(wav, channels=2),
    "too_short_wav": lambda wav, txt: _write_wav(wav, n=1000),  # < delta width * hop
    "missing_wav": lambda wav, txt: wav.unlink(),
    "missing_txt": lambda wav, txt: txt.unlink(),
    "undecodable_txt": lambda wav, txt: txt.write_bytes(b"\xff\xfe\x80\x81\xff"),
}


@pytest.fixture
def corpus_copy(tiny_corpus, tmp_path):
    return shutil.copytree(tiny_corpus, tmp_path / "corpus")


@pytest.mark.parametrize("reason", sorted(CORRUPTIONS))
def test_bad_file_of_a_row_is_reported_or_raised(reason, prepared, corpus_copy, tiny_config,
                                                 tmp_path):
    sid, wav, txt = _first_kept(prepared.table, corpus_copy)
    CORRUPTIONS[reason](wav, txt)
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert len(result.table) == len(prepared.table) - 1
    assert sid not in set(result.table["segment_id"])
    entry = [e for e in result.report["dropped_rows"] if e["input_problem"]]
    assert len(entry) == 1 and entry[0]["segment_id"] == sid and entry[0]["reason"] == reason
    # Collector.drop_row: a mutant renaming the entry's `session` key.
    assert entry[0]["session"] == prepared.table.set_index("segment_id").loc[sid, "session"]
    bad_file = txt if reason.endswith("txt") else wav
    assert entry[0]["file"] == str(bad_file) and str(bad_file) in entry[0]["message"]
    assert result.report["counts_by_reason"][reason] == 1
    with pytest.raises(KoemoInputError, match="--strict") as err:
        prepare(corpus_copy, tmp_path / "strict", tiny_config, strict=True, progress=False,
                features=False)
    assert str(bad_file) in str(err.value)


def test_row_without_wav_and_txt_names_both(prepared, corpus_copy, tiny_config, tmp_path):
    sid, wav, txt = _first_kept(prepared.table, corpus_copy)
    wav.unlink()
    txt.unlink()
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    entry = next(e for e in result.report["dropped_rows"] if e["segment_id"] == sid)
    assert entry["reason"] == "missing_wav"
    assert str(wav) in entry["message"] and str(txt) in entry["message"]


def test_wav_without_row_is_reported(prepared, corpus_copy, tiny_config, tmp_path):
    sid, wav, txt = _first_kept(prepared.table, corpus_copy)
    stray = wav.with_name("Sess01_script06_User001F_999.wav")
    shutil.copy(wav, stray)
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert len(result.table) == len(prepared.table)
    assert result.report["problem_files"] == [{
        "file": str(stray), "reason": "wav_without_row",
        "message": f"{stray}: wav file without an annotation row"}]
    # Strict on the same workdir: the reused report's problems still stop the run.
    with pytest.raises(KoemoInputError, match="without an annotation row"):
        prepare(corpus_copy, tmp_path / "w", tiny_config, strict=True, progress=False,
                features=False)


def test_misnamed_annotation_file_stops_unless_skipped(prepared, corpus_copy, tiny_config,
                                                      tmp_path):
    """A CSV whose name names no session would lose its rows unseen: it stops prepare like an
    unreadable file, naming the name it should have, unless --skip-unreadable."""
    extra = corpus_copy / "annotation" / "Sess2_eval.csv"
    shutil.copy(corpus_copy / "annotation" / "Sess02_eval.csv", extra)
    with pytest.raises(KoemoInputError, match="--skip-unreadable") as err:
        prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    problem = (f"{extra}: annotation file name not recognised, so its session is unknown "
               "(expected SessNN_eval.csv; Sess02_eval.csv is there too, so this looks like a "
               "second copy of it (a browser's duplicate download): remove one)")
    assert str(err.value).startswith(problem)
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False,
                     skip_unreadable=True)
    assert len(result.table) == len(prepared.table)
    assert result.report["problem_files"] == [{
        "file": str(extra), "reason": "bad_file_name",
        "message": f"{problem} (skipped: --skip-unreadable)"}]
    assert result.report["skipped_unreadable"] == [str(extra)]
    # --strict stops on it, saying which file and why (Collector.problem_file: a mutant
    # dropping the message).
    with pytest.raises(KoemoInputError, match=r"Sess2_eval.csv: annotation file name not "
                                              r"recognised.*\(--strict: stopping at the first"):
        prepare(corpus_copy, tmp_path / "strict", tiny_config, strict=True, progress=False,
                features=False, skip_unreadable=True)


def _edit_line(csv, line_no, edit):
    lines = csv.read_text(encoding="utf-8").splitlines()
    sid = lines[line_no - 1].split(",")[3]
    lines[line_no - 1] = edit(lines[line_no - 1])
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sid


def test_one_bad_row_costs_that_row_only(prepared, corpus_copy, tiny_config, tmp_path):
    """A stray comma, a missing and an extra column in three rows of Sess02_eval.csv: the
    first row is kept, the other two are dropped with file and line, the rest of the
    session stays, and rows_read still counts every row."""
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    kept2 = set(prepared.table.loc[prepared.table["session"] == 2, "segment_id"])
    lines_kept = [n for n, line in enumerate(csv.read_text().splitlines(), start=1)
                  if line.split(",")[3] in kept2][:3]
    stray = _edit_line(csv, lines_kept[0], lambda line: line + ",")
    missing = _edit_line(csv, lines_kept[1], lambda line: ",".join(
        c for k, c in enumerate(line.split(",")) if k != 20))
    extra = _edit_line(csv, lines_kept[2], lambda line: line + ",4")
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    report = result.report
    assert report["rows_read"] == prepared.report["rows_read"] == len(csv_rows(corpus_copy))
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    assert set(result.table["segment_id"]) == set(prepared.table["segment_id"]) - {missing, extra}
    malformed = [d for d in report["dropped_rows"] if d["reason"] == "malformed_row"]
    assert [(d["segment_id"], d["file"]) for d in malformed] == [(missing, str(csv)),
                                                                   (extra, str(csv))]
    assert f"{csv} line {lines_kept[1]} has 36 columns" in malformed[0]["message"]
    assert f"{csv} line {lines_kept[2]} has 38 columns" in malformed[1]["message"]
    assert [(n["segment_id"], n["reason"]) for n in report["notes"]] == [(stray, "stray_field")]
    assert report["problem_files"] == []        # their wavs are not "without a row"


def _break_header(csv):
    lines = csv.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("start", "begin")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_unreadable_annotation_file_stops_unless_skipped(prepared, corpus_copy, tiny_config,
                                                         tmp_path, capsys):
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    _break_header(csv)
    with pytest.raises(KoemoInputError, match="--skip-unreadable") as err:
        prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert f"{csv}: header row 2 column 1" in str(err.value)
    assert not (tmp_path / "w" / REPORT_JSON).exists()
    args = ["prepare", "--data", str(corpus_copy), "--workdir", str(tmp_path / "cli"),
            "--config", "tiny", "--no-progress", "--no-features"]
    assert main(args) == 1
    assert str(csv) in capsys.readouterr().err
    assert main(args + ["--skip-unreadable"]) == 0
    report = json.loads((tmp_path / "cli" / REPORT_JSON).read_text(encoding="utf-8"))
    assert report["skipped_unreadable"] == [str(csv)]
    assert report["problem_files"][0]["file"] == str(csv)
    assert report["problem_files"][0]["reason"] == "malformed_csv"
    assert report["rows_read"] == len(csv_rows(corpus_copy)) - len(pd.read_csv(csv, header=None, skiprows=2))
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    # Its wavs now have no row: the session is named once with their number, none lost silently.
    wavs = len(list((corpus_copy / "wav" / "Session02").glob("*.wav")))
    [lost] = report["sessions_without_rows"]
    assert (lost["folder"], lost["wavs"]) == (str(corpus_copy / "wav" / "Session02"), wavs)
    assert "(Sess02_eval.csv skipped as unreadable (--skip-unreadable))" in lost["message"]
    assert report["sessions"]["Session02"] == {"rows_read": 0, "rows_kept": 0, "rows_dropped": 0,
                                               "wavs": wavs, "wavs_with_row": 0,
                                               "wavs_without_row": wavs}
    # A table made by skipping is not reused by a run that would stop.
    assert main(args) == 1


def test_utf8_transcript_is_kept_with_a_note(prepared, corpus_copy, tiny_config, tmp_path):
    sid, wav, txt = _first_kept(prepared.table, corpus_copy)
    text = txt.read_bytes().decode("cp949")
    txt.write_text(text, encoding="utf-8")
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert result.report["input_problems"] == 0
    assert len(result.table) == len(prepared.table)
    assert result.table.set_index("segment_id").loc[sid, "text_raw"] == \
        prepared.table.set_index("segment_id").loc[sid, "text_raw"]
    assert result.report["notes_by_reason"] == {"txt_encoding": 1}
    assert result.table.set_index("segment_id").loc[sid, "text_encoding"] == "utf-8"
    assert (result.table["text_encoding"].drop(result.table.index[result.table["segment_id"] == sid]) == "cp949").all()
    assert result.report["notes"][0]["segment_id"] == sid
    # The note names its file (Collector.note: mutants renaming a key or losing the path).
    assert result.report["notes"][0]["file"] == str(txt)


def test_marker_only_transcript_is_kept_with_a_note(prepared, corpus_copy, tiny_config, tmp_path):
    sid, _, txt = _first_kept(prepared.table, corpus_copy)
    txt.write_bytes("n/ l/ b/\r\n".encode("cp949"))
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert result.table.set_index("segment_id").loc[sid, "text"] == ""
    assert [(n["segment_id"], n["reason"]) for n in result.report["notes"]] == [(sid, "empty_text")]


def test_foreign_session_prefix_belongs_to_the_files_session(prepared, corpus_copy, tiny_config,
                                                             tmp_path):
    # Sess17 quirk, replayed on session 3: ids carry `Sess42`, the files either prefix.
    csv = corpus_copy / "annotation" / "Sess03_eval.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace(",Sess03_", ",Sess42_"),
                   encoding="utf-8")
    kept3 = prepared.table[prepared.table["session"] == 3]
    renamed = kept3["segment_id"].iloc[0]
    folder = corpus_copy / "wav" / "Session03"
    for suffix in (".wav", ".txt"):
        (folder / f"{renamed}{suffix}").rename(folder / f"Sess42{renamed[6:]}{suffix}")
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    assert result.report["input_problems"] == 0
    quirky = result.table[result.table["segment_id"].str.startswith("Sess42_")]
    assert len(quirky) == len(kept3) and (quirky["session"] == 3).all()
    assert quirky["wav_path"].map(os.path.exists).all()
    assert pd.Series(quirky["split_cv5_2"] == "test").all()


def test_seven_label_policy(prepared, tiny_corpus, tiny_config, tmp_path):
    seven = with_changes(tiny_config, {"data": {"label_policy": "seven"}})
    result = prepare(tiny_corpus, tmp_path / "w", seven, progress=False, features=False)
    rows = csv_rows(tiny_corpus)
    single = rows[~rows["emotion"].str.contains(";")]
    assert result.table["label"].tolist() == \
        single["emotion"].replace({"disqust": "disgust"}).tolist()
    assert result.report["classes"][-2:] == ["disgust", "fear"]


def test_nothing_usable_raises(tmp_path, tiny_config):
    with pytest.raises(KoemoInputError, match="corpus folder not found"):
        prepare(tmp_path / "nowhere", tmp_path / "w", tiny_config, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KoemoInputError, match="no annotation folder"):
        prepare(tmp_path / "empty", tmp_path / "w", tiny_config, progress=False)


def test_cli_prepare_and_strict_error(prepared, corpus_copy, tmp_path, capsys):
    args = ["prepare", "--data", str(corpus_copy), "--workdir", str(tmp_path / "w"),
            "--config", "tiny", "--no-progress", "--no-features"]
    assert main(args) == 0
    assert "rows read" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "w" / TABLE_FILE)) == len(prepared.table)
    _, wav, _ = _first_kept(prepared.table, corpus_copy)
    wav.write_bytes(b"")
    assert main(args + ["--strict"]) == 1
    err = capsys.readouterr().err
    assert "koemo prepare: error:" in err and str(wav) in err and "empty" in err
    assert main(args + ["--set", "data.label_policy=nope"]) == 1


def test_recordings_without_signal_are_listed_by_session_and_stop_strict(prepared, tiny_corpus,
                                                                         tiny_config, tmp_path):
    """Collector.no_signal_row: mutants renaming the `session` key or dropping --strict's
    message; the tiny corpus' planted silent recordings are its only input problems."""
    table = prepared.table.set_index("segment_id")
    rows = prepared.report["no_signal_rows"]
    assert rows and prepared.report["input_problems"] == 0
    assert all(r["session"] == table.loc[r["segment_id"], "session"] for r in rows)
    # no_signal_row 9/10/11/16: the file key renamed or the path / message lost.
    assert all(r["file"] == table.loc[r["segment_id"], "wav_path"] for r in rows)
    assert all(r["file"] in r["message"] for r in rows)
    with pytest.raises(KoemoInputError, match=r"--strict: stopping at the first input problem") as err:
        prepare(tiny_corpus, tmp_path / "strict", tiny_config, strict=True, progress=False,
                features=False)
    assert rows[0]["file"] in str(err.value)


def test_each_label_drop_gets_its_own_reason_code():
    """_label_reason 2 (`startswith("tie")` never true: ties counted as label_not_in_classes):
    counts_by_reason keeps ties, empty labels and labels outside the classes apart."""
    from koemo.dataset.labels import resolve_label
    from koemo.dataset.prepare import _label_reason

    whys = {raw: resolve_label(raw, "paper5", PAPER_CLASSES)[1]
            for raw in ("Angry;Sad", "", "disqust")}
    assert {raw: _label_reason(why) for raw, why in whys.items()} == {
        "Angry;Sad": "label_tie", "": "label_empty", "disqust": "label_not_in_classes"}
