"""`koemo prepare`: KEMDy20 root -> W/utterances.parquet + W/prepare_report.{json,md} + features.

One pass over the annotation files (Sess01..Sess40, CSV order). Each row's wav and transcript
are found by Segment ID (never by listing order, the original's pairing bug), checked (wav
header, then its samples, one file at a time so memory stays flat), cleaned and labelled with
`koemo.dataset.labels.resolve_label`. A row with bad input is dropped and reported with its file and
reason; `strict=True` raises KoemoInputError at the first one instead. Rows the label policy
drops are reported too but are not input errors. Files nobody refers to (a wav without an
annotation row) are reported.

Recordings without signal (digital silence, a constant value) are real KEMDy20 content. The
original kept them, so they stay in the table with their reason in `audio_problem` and get
their split like every other row; `data.silent_audio` (keep | drop) decides at training and
scoring time (`koemo.modeling.data.split_rows`), so both policies share one table and every
other row keeps its split. The report always lists them; `strict=True` stops on them.

Idempotent: the report stores a fingerprint of the inputs (every annotation/wav/txt path with
its size and mtime, the resolved corpus root, the `data` config section minus the protocol
choice, the folds file, and the wav rules: feature sample rate and minimum length). A later run with the same fingerprint reuses the table and says
so; the feature store has its own reuse rule (koemo.audio.feature_store.build_feature_store).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from koemo.config.fingerprints import fingerprint
from koemo.dataset.kemdy20 import (NO_SIGNAL_REASONS, RATER_COLUMNS, CorpusFileError, check_wav,
                                   check_wav_content, clean_transcript, parse_segment_id,
                                   read_annotations, read_transcript_with_encoding,
                                   session_of_annotation_file)
from koemo.dataset.splits import SPLIT_COLUMNS, add_splits, resolve_folds_path
from koemo.config.workdir import REPORT_JSON, REPORT_MD, TABLE_FILE
from koemo.errors import KoemoInputError
from koemo.dataset.labels import classes_for, normalise_label, resolve_label

# Bump when the table's content rules change, so old workdirs are rebuilt, not reused.
PREPARE_VERSION = 2
TABLE_COLUMNS = (
    "segment_id", "session", "speaker", "gender", "script", "utt_index", "wav_path", "txt_path",
    "text_raw", "text", "emotion_total", "label", "label_id", "valence", "arousal", "start", "end",
    "duration", "audio_problem") + SPLIT_COLUMNS + tuple(RATER_COLUMNS)
# Each rater's own emotion/valence/arousal (rater01_emotion ...), for agreement statistics and
# soft labels. They come last and change no fingerprint: a table written before they existed
# is rebuilt from the same inputs (load_previous), and nothing trained on it is invalidated.
_BASE_COLUMNS = TABLE_COLUMNS[:TABLE_COLUMNS.index(SPLIT_COLUMNS[0])]
# The choice of protocol/fold only picks a split column, and data.silent_audio only which rows
# a run uses: the table is the same for all of them.
_DATA_KEYS_NOT_SHAPING_TABLE = ("protocol", "fold", "silent_audio")
NO_SIGNAL_POLICY_NOTE = (
    "These rows keep their place in every split. `data.silent_audio: keep` (configs/paper.yaml) "
    "trains and scores on them as the original did (digital silence gets what librosa gives for "
    "zeros: 0 dB in every bin); `drop` (configs/corrected.yaml) leaves them out of training and "
    "scoring.")
# A wav more than this far from the annotated end - start is worth a note (pairing check).
DURATION_TOLERANCE_S = 0.05


@dataclass
class PrepareResult:
    table: pd.DataFrame
    report: dict
    feature_store_path: Path | None  # None when run with features=False
    workdir: Path
    reused: bool = False  # True: the inputs were unchanged and the earlier table was reused


def annotation_files(data_root: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(session, path) of every `annotation/SessNN_eval.csv` in session order, and the other
    CSV files there (misnamed: the session must come from the file name)."""
    folder = data_root / "annotation"
    if not folder.is_dir():
        raise KoemoInputError(f"{folder}: no annotation folder; --data must be the KEMDy20 root "
                              "holding annotation/ and wav/")
    files, misnamed = [], []
    for path in sorted(folder.glob("*.csv")):
        try:
            files.append((session_of_annotation_file(path), path))
        except KoemoInputError:
            misnamed.append(path)
    if not files:
        raise KoemoInputError(f"{folder}: no SessNN_eval.csv annotation files")
    return sorted(files), misnamed


def _corpus_file_stats(data_root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every file under annotation/ and wav/."""
    stats, pending = [], [("annotation", data_root / "annotation"), ("wav", data_root / "wav")]
    while pending:
        rel, folder = pending.pop()
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.is_dir():
                pending.append((f"{rel}/{entry.name}", Path(entry.path)))
            else:
                st = entry.stat()
                stats.append((f"{rel}/{entry.name}", st.st_size, st.st_mtime_ns))
    return sorted(stats)


def wav_rules(cfg: dict) -> dict:
    """What a kept wav must satisfy: the feature sample rate, and enough samples for the
    delta features (koemo.audio.features.min_samples), so the feature step never meets a bad file."""
    from koemo.audio.features import min_samples

    return {"sample_rate": int(cfg["features"]["sample_rate"]), "min_samples": min_samples(cfg)}


def input_fingerprint(data_root: Path, cfg: dict) -> str:
    """Hash of everything the table depends on (see module docstring)."""
    data = {k: v for k, v in cfg["data"].items() if k not in _DATA_KEYS_NOT_SHAPING_TABLE}
    folds = data.get("folds_file")
    folds_text = resolve_folds_path(folds).read_text(encoding="utf-8") if folds else None
    return fingerprint({"version": PREPARE_VERSION, "root": str(data_root.resolve()),
                        "files": _corpus_file_stats(data_root), "data": data,
                        "wav_rules": wav_rules(cfg), "folds": folds_text}, length=20)


def candidate_names(segment_id: str, file_session: int) -> list[str]:
    """File stems to look for: the id itself, then the id with the file's session prefix.

    Sess17_eval.csv holds ids such as `Sess42_script01_...`; the files under wav/Session17 may
    be named either way, so both are tried (the id as written first).
    """
    names = [segment_id]
    own = f"Sess{file_session:02d}{segment_id[6:]}"
    if segment_id.startswith("Sess") and own != segment_id:
        names.append(own)
    return names


class WavFolders:
    """The names in each wav/SessionNN folder, listed once: finding a row's files costs no
    file-system call, and whatever no row claimed is known at the end."""

    def __init__(self, data_root: Path):
        self.root = data_root / "wav"
        if not self.root.is_dir():
            raise KoemoInputError(f"{self.root}: no wav folder; --data must be the KEMDy20 root")
        self.names = {entry.name: {f.name for f in os.scandir(entry.path) if f.is_file()}
                      for entry in os.scandir(self.root)
                      if entry.is_dir() and entry.name.startswith("Session")}
        self.claimed: set[tuple[str, str]] = set()

    def locate(self, session: int, segment_id: str, suffix: str) -> Path:
        folder = f"Session{session:02d}"
        present = self.names.get(folder, set())
        names = [f"{name}{suffix}" for name in candidate_names(segment_id, session)]
        name = next((n for n in names if n in present), names[0])
        self.claimed.add((folder, name))
        return self.root / folder / name

    def unclaimed(self) -> list[Path]:
        return [self.root / folder / name for folder in sorted(self.names)
                for name in sorted(self.names[folder])
                if name.endswith((".wav", ".txt")) and (folder, name) not in self.claimed]


class _Collector:
    """Dropped rows, problem files and notes; raises at the first input problem when strict."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.dropped: list[dict] = []
        self.files: list[dict] = []
        self.notes: list[dict] = []
        self.no_signal: list[dict] = []

    def drop_row(self, segment_id, session, file, reason, message, input_problem=True):
        if input_problem and self.strict:
            raise KoemoInputError(f"{message} (--strict: stopping at the first input problem)")
        self.dropped.append({"segment_id": segment_id, "session": session, "file": str(file),
                             "reason": reason, "message": message, "input_problem": input_problem})

    def problem_file(self, file, reason, message):
        if self.strict:
            raise KoemoInputError(f"{message} (--strict: stopping at the first input problem)")
        self.files.append({"file": str(file), "reason": reason, "message": message})

    def no_signal_row(self, segment_id, session, label, err: CorpusFileError):
        """A kept row whose recording holds no signal (see module docstring)."""
        if self.strict:
            raise KoemoInputError(f"{err} (--strict: stopping at the first input problem)")
        self.no_signal.append({"segment_id": segment_id, "session": session, "label": label,
                               "file": str(err.path), "reason": err.reason, "message": str(err)})

    def note(self, segment_id, file, reason, message):
        self.notes.append({"segment_id": segment_id, "file": str(file), "reason": reason,
                           "message": message})


def _label_reason(why: str) -> str:
    """Short code for koemo.dataset.labels.resolve_label's reason text."""
    if why.startswith("tie"):
        return "label_tie"
    if why.startswith("empty"):
        return "label_empty"
    return "label_not_in_classes"


def _check_row(row, csv_path: Path, session: int, seen: set, out: _Collector):
    """Validate the annotation fields of one row; returns its SegmentId or None if dropped."""
    sid = row.segment_id
    where = f"{csv_path} line {row.line}"
    try:
        parsed = parse_segment_id(sid)
    except KoemoInputError as err:
        out.drop_row(sid, session, csv_path, "bad_segment_id", f"{where}: {err}")
        return None
    if sid in seen:
        out.drop_row(sid, session, csv_path, "duplicate_segment_id",
                     f"{where}: segment id {sid} appears more than once")
        return None
    seen.add(sid)
    missing = [c for c in ("start", "end", "valence", "arousal") if pd.isna(getattr(row, c))]
    if missing:
        out.drop_row(sid, session, csv_path, "bad_value",
                     f"{where}: {', '.join(missing)} missing or not a number")
        return None
    return parsed


def _read_files(row, folders: WavFolders, session: int, rules: dict, encoding: str,
                out: _Collector):
    """Check the wav and read the transcript of one row; None when either is unusable."""
    sid = row.segment_id
    wav = folders.locate(session, sid, ".wav")
    txt = folders.locate(session, sid, ".txt")
    problems = []
    content = None
    try:
        n_samples, duration = check_wav(wav, rules["sample_rate"])
        if n_samples < rules["min_samples"]:
            raise CorpusFileError(wav, "too_short_wav",
                                  f"wav has {n_samples} samples; the features need at least "
                                  f"{rules['min_samples']}")
        content = check_wav_content(wav)
        if content is not None and content.reason not in NO_SIGNAL_REASONS:
            raise content
    except CorpusFileError as err:
        problems.append(err)
    try:
        text_raw, used = read_transcript_with_encoding(txt, encoding)
    except CorpusFileError as err:
        problems.append(err)
    if problems:
        out.drop_row(sid, session, problems[0].path, problems[0].reason,
                     "; ".join(str(p) for p in problems))
        return None
    if used != encoding:
        out.note(sid, txt, "utf8_fallback_txt", f"{txt}: not {encoding}, read as {used}")
    if not clean_transcript(text_raw):
        out.note(sid, txt, "empty_text", f"{txt}: no words once markers are removed")
    if abs(duration - (row.end - row.start)) > DURATION_TOLERANCE_S:
        out.note(sid, wav, "duration_mismatch",
                 f"{wav}: {duration:.3f} s long, annotation says end - start = "
                 f"{row.end - row.start:.3f} s")
    return wav, txt, text_raw, duration, content


def _orphans(folders: WavFolders, out: _Collector) -> None:
    """wav/txt files under wav/SessionNN that no annotation row refers to."""
    for path in folders.unclaimed():
        kind = path.suffix[1:]
        out.problem_file(path, f"{kind}_without_row",
                         f"{path}: {kind} file without an annotation row")


def scan_corpus(data_root: Path, cfg: dict, strict: bool = False, progress: bool = True):
    """Read every annotation row and its files -> (records of kept rows, collector, counts)."""
    from tqdm.auto import tqdm

    data, rules = cfg["data"], wav_rules(cfg)
    policy = data["label_policy"]
    try:
        classes = classes_for(policy, data.get("classes"))
    except ValueError as err:
        raise KoemoInputError(f"data.label_policy: {err}") from err
    out = _Collector(strict)
    files, misnamed = annotation_files(data_root)
    for path in misnamed:
        out.problem_file(path, "bad_file_name", f"{path}: not named SessNN_eval.csv; skipped")
    frames = []
    for session, csv_path in files:
        try:
            frames.append((session, csv_path, read_annotations(csv_path)))
        except CorpusFileError as err:
            out.problem_file(csv_path, err.reason, str(err))
    folders = WavFolders(data_root)
    records, seen, labels_dropped = [], set(), Counter()
    total = sum(len(frame) for _, _, frame in frames)
    bar = tqdm(total=total, desc="prepare", unit="utt", disable=not progress)
    for session, csv_path, frame in frames:
        for row in frame.itertuples(index=False):
            bar.update(1)
            parsed = _check_row(row, csv_path, session, seen, out)
            if parsed is None:
                continue
            found = _read_files(row, folders, session, rules,
                                data.get("transcript_encoding", "cp949"), out)
            if found is None:
                continue
            label, why = resolve_label(row.emotion_total, policy, classes)
            if label is None:
                labels_dropped[row.emotion_total] += 1
                out.drop_row(row.segment_id, session, csv_path, _label_reason(why),
                             f"{csv_path} line {row.line}: {why}", input_problem=False)
                continue
            wav, txt, text_raw, duration, content = found
            if content is not None:
                out.no_signal_row(row.segment_id, session, label, content)
            records.append({
                "segment_id": row.segment_id, "session": session, "speaker": parsed.speaker,
                "gender": parsed.gender, "script": parsed.script, "utt_index": parsed.utt_index,
                "wav_path": str(wav), "txt_path": str(txt),
                "text_raw": text_raw, "text": clean_transcript(text_raw),
                "emotion_total": row.emotion_total, "label": label,
                "label_id": classes.index(label), "valence": float(row.valence),
                "arousal": float(row.arousal), "start": float(row.start),
                "end": float(row.end), "duration": float(duration),
                "audio_problem": content.reason if content is not None else "",
                **rater_values(row)})
    bar.close()
    _orphans(folders, out)
    return records, out, {"rows_read": total, "classes": list(classes),
                          "labels_dropped": dict(labels_dropped)}


def rater_values(row) -> dict:
    """The raters' columns of one annotation row; emotions spelled as the classes are."""
    values = {col: getattr(row, col) for col in RATER_COLUMNS}
    return {col: normalise_label(v or "") if col.endswith("_emotion") else float(v)
            for col, v in values.items()}


def build_table(records: list[dict], cfg: dict) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(_BASE_COLUMNS) + RATER_COLUMNS)
    for col in ("session", "script", "utt_index", "label_id"):
        frame[col] = frame[col].astype("int64")
    return add_splits(frame, cfg)[list(TABLE_COLUMNS)]


def make_report(data_root: Path, workdir: Path, cfg: dict, fp: str, table: pd.DataFrame,
                out: _Collector, counts: dict) -> dict:
    reasons = Counter(d["reason"] for d in out.dropped) + Counter(f["reason"] for f in out.files)
    return {
        "prepare_version": PREPARE_VERSION, "data_root": str(data_root.resolve()),
        "workdir": str(workdir.resolve()), "input_fingerprint": fp, "data_config": cfg["data"],
        "label_policy": cfg["data"]["label_policy"], "classes": counts["classes"],
        "rows_read": counts["rows_read"], "rows_kept": len(table),
        "rows_dropped": len(out.dropped),
        "input_problems": sum(d["input_problem"] for d in out.dropped) + len(out.files),
        "counts_by_reason": dict(sorted(reasons.items())),
        "labels_kept": {k: int(v) for k, v in table["label"].value_counts().items()}
        if len(table) else {},
        "labels_dropped": dict(sorted(counts["labels_dropped"].items())),
        "splits": {col: {k: int(v) for k, v in table[col].value_counts().items()}
                   for col in SPLIT_COLUMNS if col in table},
        "dropped_rows": out.dropped, "problem_files": out.files,
        "notes_by_reason": dict(Counter(n["reason"] for n in out.notes)), "notes": out.notes,
        "no_signal_by_reason": dict(sorted(Counter(r["reason"] for r in out.no_signal).items())),
        "no_signal_rows": out.no_signal,
    }


def _md_table(header: list[str], rows) -> list[str]:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def report_markdown(report: dict) -> str:
    lines = ["# koemo prepare report", "",
             f"- corpus: `{report['data_root']}`", f"- workdir: `{report['workdir']}`",
             f"- label policy: {report['label_policy']} (classes {', '.join(report['classes'])})",
             f"- rows read: {report['rows_read']}, kept: {report['rows_kept']}, "
             f"dropped: {report['rows_dropped']}; files with problems: "
             f"{len(report['problem_files'])}", f"- input fingerprint: `{report['input_fingerprint']}`",
             "", "## Kept rows per label", ""]
    lines += _md_table(["label", "rows"], report["labels_kept"].items())
    lines += ["", "## Dropped rows and problem files per reason", ""]
    lines += _md_table(["reason", "count"], report["counts_by_reason"].items())
    lines += ["", "## Splits", ""]
    lines += _md_table(["column", "train", "valid", "test"],
                       [(c, s.get("train", 0), s.get("valid", 0), s.get("test", 0))
                        for c, s in report["splits"].items()])
    lines += ["", "## Problem files", ""]
    lines += _md_table(["file", "reason", "message"],
                       [(f["file"], f["reason"], f["message"]) for f in report["problem_files"]])
    lines += ["", "## Dropped rows", ""]
    lines += _md_table(["segment id", "file", "reason", "message"],
                       [(d["segment_id"], d["file"], d["reason"], d["message"])
                        for d in report["dropped_rows"]])
    lines += ["", "## Recordings without signal (kept in the table)", "",
              NO_SIGNAL_POLICY_NOTE, ""]
    lines += _md_table(["segment id", "label", "reason", "message"],
                       [(r["segment_id"], r["label"], r["reason"], r["message"])
                        for r in report["no_signal_rows"]])
    lines += ["", "## Notes (rows kept)", ""]
    lines += _md_table(["segment id", "reason", "message"],
                       [(n["segment_id"], n["reason"], n["message"]) for n in report["notes"]])
    return "\n".join(lines) + "\n"


def summary_text(report: dict, reused: bool = False) -> str:
    head = ("reusing prepared table (inputs unchanged, fingerprint "
            f"{report['input_fingerprint']})\n" if reused else "")
    reasons = ", ".join(f"{k} {v}" for k, v in report["counts_by_reason"].items()) or "none"
    labels = ", ".join(f"{k} {v}" for k, v in report["labels_kept"].items())
    no_signal = report["no_signal_by_reason"]
    silent = (f"  kept rows without signal: {sum(no_signal.values())} ("
              + ", ".join(f"{k} {v}" for k, v in no_signal.items())
              + "); data.silent_audio: keep trains and scores on them (as the original), "
              "drop leaves them out\n") if no_signal else ""
    return (f"{head}prepare: {report['rows_read']} rows read, {report['rows_kept']} kept, "
            f"{report['rows_dropped']} dropped, {len(report['problem_files'])} problem files\n"
            f"  kept per label: {labels}\n  dropped/problems per reason: {reasons}\n{silent}"
            f"  details: {Path(report['workdir']) / REPORT_MD}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(workdir: Path, table: pd.DataFrame | None, report: dict) -> None:
    """Table, then Markdown, then JSON: the JSON (holding the fingerprint) is the completion
    mark, so an interrupted run is never mistaken for a finished one."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / REPORT_JSON).unlink(missing_ok=True)
    if table is None:
        (workdir / TABLE_FILE).unlink(missing_ok=True)  # never leave a stale table behind
    else:
        tmp = workdir / (TABLE_FILE + ".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, workdir / TABLE_FILE)
    _write_atomic(workdir / REPORT_MD, report_markdown(report))
    _write_atomic(workdir / REPORT_JSON, json.dumps(report, indent=1, ensure_ascii=False,
                                                    default=str))


def load_previous(workdir: Path, fp: str) -> tuple[pd.DataFrame, dict] | None:
    """The earlier run's table and report when they were made from the same inputs."""
    report_path, table_path = workdir / REPORT_JSON, workdir / TABLE_FILE
    if not (report_path.is_file() and table_path.is_file()):
        return None
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if report.get("input_fingerprint") != fp or not report.get("rows_kept"):
        return None
    table = pd.read_parquet(table_path)
    if set(TABLE_COLUMNS) - set(table.columns):
        return None     # written before a column existed (e.g. the raters'): rebuild it
    return table, report


def _raise_if_strict_problems(report: dict) -> None:
    problems = ([d for d in report["dropped_rows"] if d["input_problem"]] + report["problem_files"]
                + report["no_signal_rows"])
    if problems:
        raise KoemoInputError(f"{problems[0]['message']} (--strict: {len(problems)} input "
                              f"problem(s), see {Path(report['workdir']) / REPORT_MD})")


def _build_features(table: pd.DataFrame, workdir: Path, cfg: dict, progress: bool) -> Path:
    from koemo.audio.feature_store import build_feature_store

    return Path(build_feature_store(table, workdir, cfg, progress=progress).directory)


def prepare(data_root, workdir, cfg: dict, strict: bool = False, progress: bool = True,
            features: bool = True) -> PrepareResult:
    """Prepare a KEMDy20-format corpus into `workdir` (see module docstring).

    features=False stops after the table and reports (the feature store is built by the
    first command that needs it, or by a later `prepare`).
    """
    # Resolved once: table paths are absolute without resolving each of 13,000 files.
    data_root, workdir = Path(data_root).resolve(), Path(workdir)
    if not data_root.is_dir():
        raise KoemoInputError(f"{data_root}: corpus folder not found")
    started = time.perf_counter()
    fp = input_fingerprint(data_root, cfg)
    previous = load_previous(workdir, fp)
    reused = previous is not None
    if reused:
        table, report = previous
        if strict:
            _raise_if_strict_problems(report)
    else:
        records, out, counts = scan_corpus(data_root, cfg, strict, progress)
        table = build_table(records, cfg) if len(records) >= 2 else None
        report = make_report(data_root, workdir, cfg, fp,
                             table if table is not None else pd.DataFrame(columns=TABLE_COLUMNS),
                             out, counts)
        report["elapsed_s"] = round(time.perf_counter() - started, 3)
        write_outputs(workdir, table, report)
        if table is None:
            raise KoemoInputError(f"{data_root}: {len(records)} utterance(s) kept, need at "
                                  f"least 2; see {workdir / REPORT_MD}")
    print(summary_text(report, reused))
    store_path = _build_features(table, workdir, cfg, progress) if features else None
    return PrepareResult(table, report, store_path, workdir, reused)
