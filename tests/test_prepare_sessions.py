"""Issue 29, "one session can still vanish with exit 0": a session whose recordings have no
annotation row is named (console, report JSON and Markdown) with its wav count; an annotation
file under a name koemo does not read stops prepare unless --skip-unreadable; repeated Segment
IDs follow one rule in both corpora; a row that ends before it starts is dropped; the console
and the report give one number of input problems."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from koemo.cli import main
from koemo.config.load import with_changes
from koemo.dataset.labels import SEVEN_CLASSES
from koemo.dataset.prepare import REPORT_JSON, REPORT_MD, prepare


@pytest.fixture
def corpus_copy(tiny_corpus, tmp_path):
    return shutil.copytree(tiny_corpus, tmp_path / "corpus")


def run_cli(corpus, workdir, *flags):
    return main(["prepare", "--data", str(corpus), "--workdir", str(workdir), "--config", "tiny",
                 "--no-progress", "--no-features", *flags])


def read_report(workdir) -> dict:
    return json.loads((workdir / REPORT_JSON).read_text(encoding="utf-8"))


def wav_count(corpus, session: int) -> int:
    return len(list((corpus / "wav" / f"Session{session:02d}").glob("*.wav")))


def test_a_header_only_annotation_file_names_its_session(corpus_copy, tmp_path, capsys):
    """Sess02_eval.csv with its header rows only: before, prepare exited 0 and Session02's
    recordings only showed up as wav_without_row rising, mixed with true orphans."""
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    csv.write_text("\n".join(csv.read_text(encoding="utf-8").split("\n")[:2]) + "\n",
                   encoding="utf-8")
    assert run_cli(corpus_copy, tmp_path / "w") == 0
    printed = capsys.readouterr().out
    folder, wavs = corpus_copy / "wav" / "Session02", wav_count(corpus_copy, 2)
    line = (f"{folder}: {wavs} wav file(s), none with an annotation row (Sess02_eval.csv has no "
            "data rows)")
    assert printed.count(line) == 1
    report = read_report(tmp_path / "w")
    assert [(s["folder"], s["wavs"], s["reason"], s["message"])
            for s in report["sessions_without_rows"]] == [(str(folder), wavs,
                                                          "session_without_rows", line)]
    assert report["problem_files"] == []        # its files are not listed one by one as well
    assert report["sessions"]["Session02"] == {
        "rows_read": 0, "rows_kept": 0, "rows_dropped": 0, "wavs": wavs, "wavs_with_row": 0,
        "wavs_without_row": wavs}
    assert report["sessions"]["Session01"]["wavs_with_row"] == wav_count(corpus_copy, 1)
    markdown = (tmp_path / "w" / REPORT_MD).read_text(encoding="utf-8")
    assert "## Session folders without annotation rows" in markdown and line in markdown
    assert f"| Session02 | 0 | 0 | 0 | {wavs} | 0 | {wavs} |" in markdown
    # --strict stops on it, also when the table is reused
    assert run_cli(corpus_copy, tmp_path / "w", "--strict") == 1
    assert line in capsys.readouterr().err


def test_a_duplicate_download_name_stops_prepare_unless_skipped(corpus_copy, tmp_path, capsys):
    """`Sess02_eval (1).csv` (a browser's second download) instead of Sess02_eval.csv: it stops
    prepare in one line naming the file and the name expected, like an unreadable file."""
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    copy = csv.rename(csv.with_name("Sess02_eval (1).csv"))
    assert run_cli(corpus_copy, tmp_path / "w") == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (f"{copy}: annotation file name not recognised, so its session is unknown (expected "
            "SessNN_eval.csv: rename it Sess02_eval.csv)") in err and "--skip-unreadable" in err
    assert not (tmp_path / "w" / REPORT_JSON).exists()
    assert run_cli(corpus_copy, tmp_path / "w", "--skip-unreadable") == 0
    report = read_report(tmp_path / "w")
    assert report["skipped_unreadable"] == [str(copy)]
    assert [(p["file"], p["reason"]) for p in report["problem_files"]] == [(str(copy),
                                                                            "bad_file_name")]
    [lost] = report["sessions_without_rows"]
    assert lost["message"].endswith(
        f"{wav_count(corpus_copy, 2)} wav file(s), none with an annotation row (no "
        "Sess02_eval.csv; Sess02_eval (1).csv skipped, its name not recognised "
        "(--skip-unreadable))")
    assert lost["message"] in capsys.readouterr().out


def test_kemdy19_rating_file_under_another_name_or_unreadable_stops_too(kemdy19_corpus, tmp_path,
                                                                        capsys):
    """KEMDy19 follows the same rule (before, both were a problem file and prepare went on)."""
    root = shutil.copytree(kemdy19_corpus, tmp_path / "KEMDy19")
    csv = root / "annotation" / "Session02_M_res.csv"
    copy = csv.rename(csv.with_name("Session02_M_res (1).csv"))
    assert run_cli(root, tmp_path / "w") == 1
    assert (f"{copy}: annotation file name not recognised, so its session is unknown (expected "
            "SessionNN_F_res.csv or SessionNN_M_res.csv: rename it Session02_M_res.csv)"
            ) in capsys.readouterr().err
    copy.rename(csv)
    broken = root / "annotation" / "Session03_F_res.csv"
    broken.write_text(broken.read_text(encoding="utf-8").replace(",start,", ",begin,", 1),
                      encoding="utf-8")
    assert run_cli(root, tmp_path / "w") == 1
    assert f"{broken}: header row 2 column 1" in capsys.readouterr().err
    assert run_cli(root, tmp_path / "w", "--skip-unreadable") == 0
    assert read_report(tmp_path / "w")["skipped_unreadable"] == [str(broken)]


def test_conflicting_rows_under_one_segment_id_are_both_dropped(corpus_copy, tiny_config,
                                                                tmp_path):
    """KEMDy20 kept the first of two rows with one id and other values, without a word; now
    both are dropped, each naming the fields that differ (KEMDy19's rule, one code for both).
    An identical copy still keeps one row."""
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    lines = csv.read_text(encoding="utf-8").rstrip("\n").split("\n")
    conflict, copy = lines[2].split(","), lines[3].split(",")
    conflict[4] = "fear" if conflict[4] != "fear" else "sad"
    csv.write_text("\n".join(lines + [",".join(conflict), ",".join(copy)]) + "\n",
                   encoding="utf-8")
    cfg = with_changes(tiny_config, {"data": {"classes": list(SEVEN_CLASSES)}})
    result = prepare(corpus_copy, tmp_path / "w", cfg, progress=False, features=False)
    sid, copied = conflict[3], copy[3]
    entries = [d for d in result.report["dropped_rows"] if d["segment_id"] in (sid, copied)]
    conflict_line, copy_line = len(lines) + 1, len(lines) + 2
    assert [(d["segment_id"], d["reason"]) for d in entries] == [
        (sid, "conflicting_segment_id"), (sid, "conflicting_segment_id"),
        (copied, "duplicate_segment_id")]
    assert entries[0]["message"] == (
        f"{csv} line 3: segment id {sid} is on Sess02_eval.csv line 3, Sess02_eval.csv line "
        f"{conflict_line}, with different emotion_total ({lines[2].split(',')[4]!r} / "
        f"{conflict[4]!r}); none of them is used")
    assert entries[2]["message"].startswith(f"{csv} line {copy_line}: segment id {copied} is on "
                                            f"Sess02_eval.csv line 4, Sess02_eval.csv line "
                                            f"{copy_line}; a copy of the first, which is used")
    assert sid not in set(result.table["segment_id"])
    report = result.report
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]


def test_a_row_that_ends_before_it_starts_is_dropped(corpus_copy, tiny_config, tmp_path):
    csv = corpus_copy / "annotation" / "Sess02_eval.csv"
    lines = csv.read_text(encoding="utf-8").split("\n")
    cells = lines[2].split(",")
    start, end = cells[1], cells[2]
    cells[1], cells[2] = end, start
    lines[2] = ",".join(cells)
    csv.write_text("\n".join(lines), encoding="utf-8")
    result = prepare(corpus_copy, tmp_path / "w", tiny_config, progress=False, features=False)
    [entry] = [d for d in result.report["dropped_rows"] if d["segment_id"] == cells[3]]
    assert entry["reason"] == "start_after_end" and entry["input_problem"]
    assert entry["message"] == (f"{csv} line 3: start {float(end):g} s is after end "
                                f"{float(start):g} s")
    assert not [n for n in result.report["notes"] if n["segment_id"] == cells[3]]


def test_console_and_report_give_one_number_of_input_problems(kemdy19_corpus, tmp_path, capsys):
    """KEMDy19's report said input_problems 1029 while the console said "1026 problem files"
    (the three dropped input rows were in one and not the other)."""
    root = shutil.copytree(kemdy19_corpus, tmp_path / "KEMDy19")
    folder = next((root / "wav" / "Session01").iterdir())
    wav = next(folder.glob("*.wav"))
    shutil.copy(wav, folder / f"{wav.stem[:-3]}999.wav")          # one file without a row
    assert run_cli(root, tmp_path / "w") == 0
    report = read_report(tmp_path / "w")
    rows = sum(d["input_problem"] for d in report["dropped_rows"])
    assert rows > 0 and len(report["problem_files"]) == 1
    assert report["input_problems"] == rows + 1
    first = capsys.readouterr().out.splitlines()[0]
    assert re.search(rf"; {rows + 1} input problems \({rows} rows?, 1 file\)$", first), first
    markdown = (tmp_path / "w" / REPORT_MD).read_text(encoding="utf-8")
    assert f"{rows + 1} input problems ({rows} row" in markdown
