"""Rows prepare drops are reported, one by one, and the report balances (rows read = kept +
dropped, problem files apart) on a damaged corpus, not only on the clean one."""
from __future__ import annotations

import shutil

import pytest

from koemo.dataset.prepare import prepare


@pytest.fixture(scope="module")
def damaged(tiny_corpus, tiny_config, tmp_path_factory):
    """The tiny corpus with a duplicated Segment ID row, a row without a valence, a row whose
    Segment ID is not one, and a wav file no row names (a problem file, not a row)."""
    corpus = shutil.copytree(tiny_corpus, tmp_path_factory.mktemp("damaged") / "corpus")
    csv = corpus / "annotation" / "Sess01_eval.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    header, rows = lines[:2], lines[2:]
    fields = rows[1].split(",")
    fields[5] = ""                                             # Total Evaluation valence
    rows[1] = ",".join(fields)
    bad_id = rows[2].split(",")
    bad_id[3] = "Sess01_not_an_id"
    rows[2] = ",".join(bad_id)
    csv.write_text("\n".join(header + rows + [rows[0]]) + "\n", encoding="utf-8")
    wav_dir = corpus / "wav" / "Session01"
    shutil.copy(next(wav_dir.glob("*.wav")), wav_dir / "Sess01_script01_User999M_001.wav")
    result = prepare(corpus, tmp_path_factory.mktemp("work"), tiny_config, progress=False,
                     features=False)
    return result, rows[0].split(",")[3], fields[3], len(rows) + 1


def test_duplicate_and_bad_value_rows_are_each_reported(damaged):
    result, duplicate, no_valence, _ = damaged
    dropped = {(d["segment_id"], d["reason"]) for d in result.report["dropped_rows"]}
    assert (duplicate, "duplicate_segment_id") in dropped
    assert (no_valence, "bad_value") in dropped
    reasons = result.report["counts_by_reason"]
    assert reasons["duplicate_segment_id"] == 1 and reasons["bad_value"] == 1


def test_report_balances_on_the_damaged_corpus(damaged, tiny_corpus):
    result, _, _, sess01_rows = damaged
    report = result.report
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    assert report["rows_dropped"] == len(report["dropped_rows"])
    # files, not rows: the orphan wav (and the files of the row dropped for its value)
    assert any(f["file"].endswith("User999M_001.wav") for f in report["problem_files"])
    others = sum(len(p.read_text(encoding="utf-8").splitlines()) - 2
                 for p in (tiny_corpus / "annotation").glob("Sess*_eval.csv")
                 if p.name != "Sess01_eval.csv")
    assert report["rows_read"] == sess01_rows + others


def test_each_dropped_row_names_its_id_session_file_and_line(damaged):
    """_check_row 2 (`where` lost: messages without file and line), 5/6 (a bad Segment ID's
    entry without its id or session): Sess01_eval.csv's line 4 has no valence, line 5 a bad
    id, and the duplicate is its last line."""
    result, duplicate, no_valence, sess01_rows = damaged
    csv = str(next(d["file"] for d in result.report["dropped_rows"]
                   if d["segment_id"] == duplicate))
    assert csv.endswith("Sess01_eval.csv")
    entries = {d["reason"]: d for d in result.report["dropped_rows"] if d["file"] == csv}
    expected = {"bad_value": (no_valence, 4), "bad_segment_id": ("Sess01_not_an_id", 5),
                "duplicate_segment_id": (duplicate, 2 + sess01_rows)}
    for reason, (sid, line) in expected.items():
        entry = entries[reason]
        assert (entry["segment_id"], entry["session"]) == (sid, 1), reason
        assert entry["message"].startswith(f"{csv} line {line}: "), entry["message"]
