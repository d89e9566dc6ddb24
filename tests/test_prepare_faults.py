"""Every drop reason and note of `koemo prepare`, each on a damaged copy of the synthetic
corpus, with the report's balance checked on every one; and the faults of real files (links,
permissions, a full disk, a read-only workdir, two prepares at once)."""
from __future__ import annotations

import ast
import errno
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import koemo.dataset.prepare as prepare_module
from koemo.cli import main
from koemo.dataset.prepare import REPORT_JSON, TABLE_FILE, prepare
from koemo.errors import KoemoInputError

SOURCES = ("dataset/kemdy20.py", "dataset/prepare.py", "dataset/corpus_files.py",
           "dataset/duplicates.py", "dataset/sessions.py")


# --- damaging a copy of the corpus ----------------------------------------------------------

def kept_row(corpus: Path, clean: pd.DataFrame, k: int = 0):
    """(segment id, wav, txt) of the k-th kept row of session 2 in the clean table."""
    sid = clean.loc[clean["session"] == 2, "segment_id"].iloc[k]
    wav = corpus / "wav" / "Session02" / f"{sid}.wav"
    return sid, wav, wav.with_suffix(".txt")


def edit_field(corpus: Path, sid: str, column: int, value: str) -> None:
    """Set one field of the annotation row of `sid` (Sess02_eval.csv)."""
    csv = corpus / "annotation" / "Sess02_eval.csv"
    lines = csv.read_text(encoding="utf-8").split("\n")
    for n, line in enumerate(lines):
        cells = line.split(",")
        if len(cells) > 3 and cells[3] == sid:
            cells[column] = value
            lines[n] = ",".join(cells)
    csv.write_text("\n".join(lines), encoding="utf-8")


def duplicate_row(corpus: Path, sid: str, column: int | None = None, value: str = "") -> None:
    """Append a copy of the row of `sid` to Sess02_eval.csv, `column` set to `value` if given."""
    csv = corpus / "annotation" / "Sess02_eval.csv"
    lines = csv.read_text(encoding="utf-8").rstrip("\n").split("\n")
    cells = next(line for line in lines if f",{sid}," in line).split(",")
    if column is not None:
        cells[column] = value
    lines.append(",".join(cells))
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_wave(path: Path, wave, subtype="PCM_16", rate=16000) -> None:
    sf.write(path, wave, rate, subtype=subtype, format="WAV")


def tone(n=16000):
    return 0.1 * np.sin(np.arange(n) / 7.0)


def plant(fault):
    def damage(corpus, clean):
        from koemo.synth.faults import plant_faults
        plant_faults(corpus, [fault])
    return damage


def on_wav(change):
    return lambda corpus, clean: change(kept_row(corpus, clean)[1])


def on_txt(change):
    return lambda corpus, clean: change(kept_row(corpus, clean)[2])


def on_field(column, value):
    return lambda corpus, clean: edit_field(corpus, kept_row(corpus, clean)[0], column, value)


def no_access(path_of):
    def damage(corpus, clean):
        path_of(corpus, clean).chmod(0)
    return damage


def break_header(corpus, clean):
    csv = corpus / "annotation" / "Sess02_eval.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace(",start,", ",begin,", 1),
                   encoding="utf-8")


def annotation_link_to_nowhere(corpus, clean):
    csv = corpus / "annotation" / "Sess02_eval.csv"
    csv.unlink()
    csv.symlink_to(corpus / "annotation" / "moved-away.csv")


def folder_as_annotation_file(corpus, clean):
    csv = corpus / "annotation" / "Sess02_eval.csv"
    csv.unlink()
    csv.mkdir()


def stray_file(suffix):
    def damage(corpus, clean):
        wav = kept_row(corpus, clean)[1]
        shutil.copy(wav.with_suffix(suffix), wav.with_name(f"Sess02_script06_User004F_999{suffix}"))
    return damage


def longer_than_annotated(corpus, clean):
    sid = kept_row(corpus, clean)[0]
    end = float(clean.set_index("segment_id").loc[sid, "end"])
    edit_field(corpus, sid, 2, f"{end + 1.0:.4f}")


# reason -> (damage(corpus copy, clean table), prepare options). Options: skip = with
# --skip-unreadable; unprivileged = prepare runs without the power to ignore file modes.
DAMAGE = {
    # annotation rows
    "malformed_row": (plant("missing-column"), {}),
    "stray_field": (plant("stray-comma"), {}),
    "bad_segment_id": (on_field(3, "Sess2_script01_User003F_001"), {}),
    "duplicate_segment_id": (lambda c, t: duplicate_row(c, kept_row(c, t)[0]), {}),
    "conflicting_segment_id": (lambda c, t: duplicate_row(c, kept_row(c, t)[0], 5, "1.55"), {}),
    "start_after_end": (plant("start-after-end"), {}),
    "bad_value": (on_field(1, "soon"), {}),
    "label_out_of_range": (plant("out-of-range-labels"), {}),
    "label_empty": (on_field(4, ""), {}),
    "label_not_in_classes": (on_field(4, "bored"), {}),
    "label_tie": (on_field(4, "happy;neutral"), {}),
    "duration_mismatch": (longer_than_annotated, {}),
    # wavs
    "missing_wav": (on_wav(lambda p: p.unlink()), {}),
    "empty_wav": (on_wav(lambda p: p.write_bytes(b"")), {}),
    "corrupt_wav": (on_wav(lambda p: p.write_bytes(b"RIFF-but-not-really" * 20)), {}),
    "truncated_wav": (on_wav(lambda p: p.write_bytes(p.read_bytes()[:2000])), {}),
    "wrong_sample_rate": (on_wav(lambda p: write_wave(p, tone(), rate=22050)), {}),
    "not_mono": (on_wav(lambda p: write_wave(p, np.stack([tone()] * 2, axis=1))), {}),
    "unsupported_sample_format": (on_wav(lambda p: write_wave(p, tone(), "ULAW")), {}),
    "too_short_wav": (on_wav(lambda p: write_wave(p, tone(1000))), {}),
    "nonfinite_audio": (on_wav(lambda p: write_wave(p, np.where(np.arange(16000) == 5, np.nan,
                                                                  tone()), "FLOAT")), {}),
    "silent_audio": (on_wav(lambda p: write_wave(p, np.zeros(16000))), {}),
    "constant_audio": (on_wav(lambda p: write_wave(p, np.full(16000, 0.01))), {}),
    "broken_link": (plant("dangling-link"), {}),
    "unreadable_wav": (no_access(lambda c, t: kept_row(c, t)[1]), {"unprivileged": True}),
    # transcripts
    "missing_txt": (on_txt(lambda p: p.unlink()), {}),
    "undecodable_txt": (on_txt(lambda p: p.write_bytes(b"\xff\xfe\x80\x81\xff")), {}),
    "not_a_file": (on_txt(lambda p: (p.unlink(), p.mkdir())), {}),
    "unreadable_txt": (no_access(lambda c, t: kept_row(c, t)[2]), {"unprivileged": True}),
    "txt_encoding": (plant("utf8-transcripts"), {}),
    "empty_text": (on_txt(lambda p: p.write_bytes("n/ l/ b/\r\n".encode("cp949"))), {}),
    # files and folders
    "bad_file_name": (plant("duplicate-download-name"), {"skip": True}),
    "malformed_csv": (break_header, {"skip": True}),
    "missing_csv": (annotation_link_to_nowhere, {"skip": True}),
    "unreadable_csv": (folder_as_annotation_file, {"skip": True}),
    "unreadable_folder": (no_access(lambda c, t: c / "wav" / "Session02"),
                          {"skip": True, "unprivileged": True}),
    "session_without_rows": (plant("header-only-session"), {}),
    "wav_without_row": (stray_file(".wav"), {}),
    "txt_without_row": (stray_file(".txt"), {}),
}


# --- running prepare and checking its report ------------------------------------------------

def run_unprivileged(corpus: Path, workdir: Path, *flags: str) -> subprocess.CompletedProcess:
    """`koemo prepare` in a child that file modes bind: as root, without CAP_DAC_*."""
    command = [sys.executable, "-m", "koemo", "prepare", "--data", str(corpus), "--workdir",
               str(workdir), "--config", "tiny", "--no-progress", "--no-features", *flags]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
        command = [setpriv, "--inh-caps=-all",
                   "--bounding-set=-dac_override,-dac_read_search"] + command
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def prepare_report(corpus: Path, workdir: Path, cfg: dict, skip=False, unprivileged=False):
    if unprivileged:
        done = run_unprivileged(corpus, workdir, *(["--skip-unreadable"] if skip else []))
        assert done.returncode == 0, done.stderr
        return json.loads((workdir / REPORT_JSON).read_text(encoding="utf-8"))
    return prepare(corpus, workdir, cfg, progress=False, features=False,
                   skip_unreadable=skip).report


def data_lines(corpus: Path, skipped) -> dict[str, int]:
    """Session folder -> non-blank data lines of its SessNN_eval.csv when that was read,
    counted without koemo."""
    lines = {}
    for csv in (corpus / "annotation").glob("Sess[0-9][0-9]_eval.csv"):
        if str(csv) not in skipped:
            lines[f"Session{csv.name[4:6]}"] = sum(
                1 for line in csv.read_bytes().split(b"\n")[2:] if line.strip())
    return lines


def wav_files(corpus: Path, skipped) -> dict[str, int]:
    """Session folder -> the wav files (links too) it holds, counted without koemo; none in a
    folder prepare could not list."""
    return {folder.name: 0 if str(folder) in skipped else
            sum(1 for p in folder.iterdir() if p.name.endswith(".wav") and not p.is_dir())
            for folder in (corpus / "wav").iterdir() if folder.name.startswith("Session")}


def all_reasons(report: dict) -> set[str]:
    return (set(report["counts_by_reason"]) | set(report["notes_by_reason"])
            | set(report["no_signal_by_reason"]))


def assert_balanced(report: dict, corpus: Path) -> None:
    """Rows read = kept + dropped, wavs = with a row + without one, in all and per session,
    against counts taken without koemo; input problems = rows + files + sessions."""
    skipped = report["skipped_unreadable"]
    assert report["rows_read"] == report["rows_kept"] + report["rows_dropped"]
    assert report["rows_read"] == sum(data_lines(corpus, skipped).values())
    assert report["rows_dropped"] == len(report["dropped_rows"])
    assert report["rows_kept"] == sum(report["labels_kept"].values())
    sessions = report["sessions"]
    for folder, counts in sessions.items():
        assert counts["rows_read"] == counts["rows_kept"] + counts["rows_dropped"], folder
        assert counts["wavs"] == counts["wavs_with_row"] + counts["wavs_without_row"], folder
    assert {f: c["rows_read"] for f, c in sessions.items() if c["rows_read"]} == \
        {f: n for f, n in data_lines(corpus, skipped).items() if n}
    assert {f: c["wavs"] for f, c in sessions.items() if c["wavs"]} == \
        {f: n for f, n in wav_files(corpus, skipped).items() if n}
    assert sum(c["rows_kept"] for c in sessions.values()) == report["rows_kept"]
    assert sum(c["wavs_without_row"] for c in sessions.values()) == \
        sum(s["wavs"] for s in report["sessions_without_rows"]) + \
        sum(p["reason"] == "wav_without_row" for p in report["problem_files"])
    assert report["input_problems"] == sum(d["input_problem"] for d in report["dropped_rows"]) + \
        len(report["problem_files"]) + len(report["sessions_without_rows"])


@pytest.fixture(scope="module")
def clean(tiny_corpus, tiny_config, tmp_path_factory):
    return prepare(tiny_corpus, tmp_path_factory.mktemp("clean"), tiny_config, progress=False,
                   features=False)


@pytest.fixture
def corpus_copy(tiny_corpus, tmp_path):
    return shutil.copytree(tiny_corpus, tmp_path / "corpus", symlinks=True)


@pytest.mark.parametrize("reason", sorted(DAMAGE))
def test_every_reason_on_a_damaged_corpus(reason, clean, corpus_copy, tiny_config, tmp_path):
    damage, options = DAMAGE[reason]
    damage(corpus_copy, clean.table)
    report = prepare_report(corpus_copy, tmp_path / "w", tiny_config, **options)
    assert reason in all_reasons(report), all_reasons(report)
    assert_balanced(report, corpus_copy)


def test_clean_corpus_balances(clean, tiny_corpus):
    assert_balanced(clean.report, tiny_corpus)


def _reasons_in_source() -> tuple[set[str], set[str]]:
    """Reason codes the source passes to CorpusFileError, drop_row, problem_file and note, or
    returns from _label_reason: literal codes, and f-string patterns (`missing_*`)."""
    positions = {"CorpusFileError": 1, "drop_row": 3, "problem_file": 1, "note": 2,
                 "session_problem": 1}
    literal, patterns = set(), set()
    root = Path(prepare_module.__file__).parents[1]
    for source in SOURCES:
        tree = ast.parse((root / source).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                k = positions.get(name)
                arg = node.args[k] if k is not None and len(node.args) > k else None
            elif isinstance(node, ast.FunctionDef) and node.name == "_label_reason":
                literal |= {n.value.value for n in ast.walk(node)
                            if isinstance(n, ast.Return) and isinstance(n.value, ast.Constant)}
                continue
            else:
                continue
            if isinstance(arg, ast.Constant):
                literal.add(arg.value)
            elif isinstance(arg, ast.JoinedStr):
                patterns.add("".join(v.value if isinstance(v, ast.Constant) else "*"
                                     for v in arg.values))
    return literal, patterns


def test_damage_table_covers_every_reason_in_the_code():
    literal, patterns = _reasons_in_source()
    assert len(literal) > 20 and patterns          # the scan itself found them
    assert literal - set(DAMAGE) == set(), "reasons without a damaged corpus in DAMAGE"
    for pattern in patterns:
        assert fnmatch.filter(DAMAGE, pattern), f"no DAMAGE entry for reasons {pattern}"
    stale = {r for r in DAMAGE if r not in literal
             and not any(fnmatch.fnmatch(r, p) for p in patterns)}
    assert stale == set(), "DAMAGE entries the code no longer reports"


# --- faults of real files -------------------------------------------------------------------

def test_all_synth_faults_together(tiny_config, tmp_path, capsys):
    """`koemo synth --faults all`: every fault reported as docs/kemdy20.md says, counts balanced."""
    from koemo.synth.faults import MOJIBAKE_PRONE_TEXT
    corpus = tmp_path / "corpus"
    assert main(["synth", "--out", str(corpus), "--sessions", "5", "--utterances-per-session",
                 "24", "--faults", "all"]) == 0
    result = prepare(corpus, tmp_path / "w", tiny_config, progress=False, features=False)
    report = result.report
    assert_balanced(report, corpus)
    reasons = report["counts_by_reason"]
    assert reasons["malformed_row"] == 2
    assert reasons["label_out_of_range"] == 2
    assert reasons["broken_link"] == 1
    assert report["notes_by_reason"]["stray_field"] == 1
    assert reasons["start_after_end"] == 1
    assert reasons["duplicate_segment_id"] == 1       # the copy; the row itself is read
    assert reasons["conflicting_segment_id"] == 2     # both rows of the conflicting id
    assert report["problem_files"] == []
    # the recorded but unannotated session: one line with its wav count, all of it accounted
    [lost] = report["sessions_without_rows"]
    assert lost["folder"] == str(corpus / "wav" / "Session06") and lost["wavs"] == 3
    assert lost["message"].endswith("3 wav file(s), none with an annotation row "
                                    "(no Sess06_eval.csv)")
    assert report["sessions"]["Session06"]["wavs_without_row"] == 3
    printed = capsys.readouterr().out
    assert printed.count(lost["message"]) == 1 and "problem files" not in printed
    session1 = result.table[result.table["session"] == 1]
    assert (session1["text_encoding"] == "utf-8").all()
    assert MOJIBAKE_PRONE_TEXT in set(session1["text_raw"])     # read as UTF-8, not mojibake
    pcm8 = [p for p in session1["wav_path"] if sf.info(p).subtype == "PCM_U8"]
    assert pcm8, "the 8-bit wavs are read and kept"


def test_all_plants_every_fault_but_those_named_only_and_unknown_names_are_refused():
    from koemo.config.synthetic import FAULTS_ONLY_BY_NAME, SYNTHETIC_FAULTS
    from koemo.synth.faults import FAULTS, parse_faults
    assert set(FAULTS) == set(SYNTHETIC_FAULTS)          # every legal name has its planter
    assert parse_faults("all") == [n for n in SYNTHETIC_FAULTS if n not in FAULTS_ONLY_BY_NAME]
    assert parse_faults("header-only-session,all") == [
        n for n in SYNTHETIC_FAULTS if n != "duplicate-download-name"]
    with pytest.raises(KoemoInputError, match="unknown fault"):
        parse_faults("stray-comma,no-such-fault")


def test_link_loops_under_wav_are_row_problems(clean, corpus_copy, tiny_config, tmp_path):
    sid, wav, _ = kept_row(corpus_copy, clean.table)
    wav.unlink()
    wav.symlink_to(wav)                                           # a file link loop
    (wav.parent / "again").symlink_to(wav.parent, target_is_directory=True)  # a folder loop
    report = prepare_report(corpus_copy, tmp_path / "w", tiny_config)
    entry = next(d for d in report["dropped_rows"] if d["segment_id"] == sid)
    assert entry["reason"] == "broken_link" and f"{wav}: symbolic link loop" in entry["message"]
    assert_balanced(report, corpus_copy)


def test_permission_denied_is_named(clean, corpus_copy, tmp_path):
    """wav, txt, csv and session folder without read permission: rows dropped or the run
    stopped, each naming its path, never a traceback."""
    _, wav, _ = kept_row(corpus_copy, clean.table, 0)
    _, _, txt = kept_row(corpus_copy, clean.table, 1)
    csv = corpus_copy / "annotation" / "Sess03_eval.csv"
    folder = corpus_copy / "wav" / "Session04"
    for path in (wav, txt, csv, folder):
        path.chmod(0)
    stopped = run_unprivileged(corpus_copy, tmp_path / "w")
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert f"{csv}: cannot read the annotation file: Permission denied" in stopped.stderr
    assert f"{folder}: cannot list the session folder: Permission denied" in stopped.stderr
    done = run_unprivileged(corpus_copy, tmp_path / "w", "--skip-unreadable")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "w" / REPORT_JSON).read_text(encoding="utf-8"))
    dropped = {d["file"]: d for d in report["dropped_rows"]}
    assert dropped[str(wav)]["reason"] == "unreadable_wav"
    assert "Permission denied" in dropped[str(wav)]["message"]
    assert dropped[str(txt)]["reason"] == "unreadable_txt"
    unreadable = {p["file"]: p["reason"] for p in report["problem_files"]
                  if not p["reason"].endswith("_without_row")}   # Session03's files: no rows
    assert unreadable == {str(csv): "unreadable_csv", str(folder): "unreadable_folder"}
    assert sorted(report["skipped_unreadable"]) == sorted([str(csv), str(folder)])
    assert_balanced(report, corpus_copy)


def test_read_only_workdir_is_named(tiny_corpus, tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    workdir.chmod(0o555)
    done = run_unprivileged(tiny_corpus, workdir)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{workdir}: cannot write here (Permission denied)" in done.stderr


def test_full_disk_while_writing_the_report(tiny_corpus, tiny_config, tmp_path, monkeypatch,
                                            capsys):
    real_write_text = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if REPORT_JSON in self.name:
            real_write_text(self, text[:10], *args, **kwargs)     # part of it, then no room
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_text(self, text, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", write_text)
    workdir = tmp_path / "w"
    assert main(["prepare", "--data", str(tiny_corpus), "--workdir", str(workdir), "--config",
                 "tiny", "--no-progress", "--no-features"]) == 1
    err = capsys.readouterr().err
    assert f"{workdir / REPORT_JSON}: cannot write" in err and "No space left on device" in err
    assert sorted(p.name for p in workdir.iterdir() if p.name.endswith(".tmp")) == []
    assert not (workdir / REPORT_JSON).exists()       # never taken for a finished run


def test_full_disk_while_writing_features(tiny_corpus, tiny_config, tmp_path, monkeypatch):
    import koemo.audio.feature_store as feature_store

    def pwrite(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(feature_store.os, "pwrite", pwrite)
    store = feature_store.store_dir(tmp_path / "w", tiny_config)
    with pytest.raises(KoemoInputError, match="No space left on device") as err:
        prepare(tiny_corpus, tmp_path / "w", tiny_config, progress=False)
    assert str(store) in str(err.value) and "feature store" in str(err.value)
    assert list(store.glob("*.partial")) == []
    assert (tmp_path / "w" / TABLE_FILE).is_file()      # the table is done and stays


def test_two_prepares_on_one_workdir(tiny_corpus, tiny_config, tmp_path, monkeypatch):
    """Both runs reach the table write together (without the lock): each must succeed and the
    second reuse the first's table."""
    meet = threading.Barrier(2)
    real_to_parquet = pd.DataFrame.to_parquet

    def to_parquet(self, path, *args, **kwargs):
        real_to_parquet(self, path, *args, **kwargs)
        try:
            meet.wait(timeout=5)     # the other run is blocked on the lock: go on alone
        except threading.BrokenBarrierError:
            pass
    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    results, errors = [], []

    def run():
        try:
            results.append(prepare(tiny_corpus, tmp_path / "w", tiny_config, progress=False,
                                   features=False))
        except Exception as err:     # noqa: BLE001 - reported by the assert below
            errors.append(err)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.reused for r in results) == [False, True]
    pd.testing.assert_frame_equal(results[0].table, results[1].table)
    assert [p.name for p in (tmp_path / "w").iterdir() if p.name.endswith(".tmp")] == []
