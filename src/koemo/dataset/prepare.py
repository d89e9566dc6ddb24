"""`koemo prepare`: KEMDy20 or KEMDy19 root -> W/utterances.parquet + W/prepare_report.{json,md}
+ features.

The corpus is recognised from its files (koemo.dataset.sources.open_corpus; KEMDy19's two
rating files per session become rows of KEMDy20's shape there, koemo.dataset.kemdy19), then
one pass over the annotation rows (Sess01..Sess40, CSV order). Each row's wav and transcript
are found by Segment ID (never by listing order, the original's pairing bug), checked (wav
header, then its samples, one file at a time so memory stays flat), cleaned and labelled with
`koemo.dataset.labels.resolve_label`. A row with bad input is dropped and reported with its file and
reason; `strict=True` raises KoemoInputError at the first one instead. Every annotation row
that can be parsed is read (one bad row costs that row, never its file), and the report
balances: rows_read = kept + dropped. A Segment ID on several rows follows one rule for both
corpora (koemo.dataset.duplicates). An annotation file or session folder that cannot be read
at all, or an annotation file whose name names no session, stops the run before the heavy
work, naming each, unless `skip_unreadable`. Every reason is listed in docs/kemdy20.md. Rows
the label policy drops are reported too but are not input errors. Every session folder is
accounted for (koemo.dataset.sessions): one without any annotation row is one finding with its
wav count; elsewhere, files nobody refers to (a wav without an annotation row) are reported.

Recordings without signal (digital silence, a constant value) are real KEMDy20 content. The
original kept them, so they stay in the table with their reason in `audio_problem` and get
their split like every other row; `data.silent_audio` (keep | drop) decides at training and
scoring time (`koemo.modeling.data.split_rows`), so both policies share one table and every
other row keeps its split. The report always lists them; `strict=True` stops on them.

Idempotent: the report stores a fingerprint of the inputs (every annotation/wav/txt path with
its size and mtime, the resolved corpus root, the `data` config section minus the protocol
choice, the folds file, and the wav rules: feature sample rate and minimum length). A later run with the same fingerprint reuses the table and says
so; the feature store has its own reuse rule (koemo.audio.feature_store.build_feature_store).
One prepare at a time per workdir (koemo.dataset.prepare_output: a lock, unique temporary
names, one-line errors for failed writes).
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from koemo.config.fingerprints import fingerprint
from koemo.config.schema import Config, TranscriptEncoding
from koemo.dataset.kemdy20 import (NO_SIGNAL_REASONS, RATER_COLUMNS, CorpusFileError, check_wav,
                                   check_wav_content, clean_transcript, label_problem,
                                   parse_segment_id, read_annotations,
                                   read_transcript_with_encoding)
from koemo.dataset.corpus_files import (WavFolders, annotation_files, corpus_file_stats,
                                        misnamed_annotation)
from koemo.dataset.duplicates import drop_repeated_ids
# NO_SIGNAL_POLICY_NOTE: re-exported for koemo.reporting.report.
from koemo.dataset.prepare_report import (NO_SIGNAL_POLICY_NOTE, input_problem_counts,  # noqa: F401
                                          report_markdown, summary_text)
from koemo.dataset.prepare_output import (unreadable_inputs_error, workdir_lock,
                                          write_outputs, writing)
from koemo.dataset.leakage import repeated_transcripts
from koemo.dataset.collector import Collector
from koemo.dataset.sessions import account_sessions
from koemo.dataset.sources import Corpus, open_corpus
from koemo.dataset.splits import SPLIT_COLUMNS, add_splits, resolve_folds_path
from koemo.config.workdir import REPORT_JSON, REPORT_MD, TABLE_FILE
from koemo.errors import KoemoInputError
from koemo.dataset.labels import classes_for, normalise_label, resolve_label

# Bump when the table's content rules change, so old workdirs are rebuilt, not reused.
PREPARE_VERSION = 2
TABLE_COLUMNS = (
    "segment_id", "session", "speaker", "gender", "script", "utt_index", "wav_path", "txt_path",
    "text_raw", "text", "emotion_total", "label", "label_id", "valence", "arousal", "start", "end",
    "duration", "audio_problem", "text_encoding", "corpus", "dialogue") + SPLIT_COLUMNS + tuple(RATER_COLUMNS)
# Bump when reading rules change the table of a corpus (not part of the input fingerprint,
# which tests/golden pins): a workdir prepared under other rules is prepared again.
# 3: a row whose start is after its end is dropped; conflicting rows under one Segment ID are
# all dropped (koemo.dataset.duplicates); sessions without rows are reported per session.
READ_RULES = 3
# The choice of protocol/fold only picks a split column, data.silent_audio only which rows a
# run uses, and data.corpus only forces what detection finds: the table is the same for all.
_DATA_KEYS_NOT_SHAPING_TABLE = ("protocol", "fold", "silent_audio", "corpus")
# Settings added after the golden fingerprints were pinned: hashed only when they differ from
# their default, so every shipped config keeps its prepared-table fingerprint.
_DATA_DEFAULTS_OUTSIDE_FINGERPRINT = {"kemdy19_labels": "own"}
# Each rater's own emotion/valence/arousal (rater01_emotion ...), for agreement statistics and
# soft labels. They come last and change no fingerprint: a table written before they existed
# is rebuilt from the same inputs (load_previous), and nothing trained on it is invalidated.
_BASE_COLUMNS = TABLE_COLUMNS[:TABLE_COLUMNS.index(SPLIT_COLUMNS[0])]
# A wav more than this far from the annotated end - start is worth a note (pairing check).
DURATION_TOLERANCE_S = 0.05


@dataclass
class PrepareResult:
    table: pd.DataFrame
    report: dict
    feature_store_path: Path | None  # None when run with features=False
    workdir: Path
    reused: bool = False  # True: the inputs were unchanged and the earlier table was reused


def wav_rules(cfg: Config) -> dict:
    """What a kept wav must satisfy: the feature sample rate, and enough samples for the
    delta features (koemo.audio.features.min_samples), so the feature step never meets a bad file."""
    from koemo.audio.features import min_samples

    return {"sample_rate": int(cfg.features.sample_rate), "min_samples": min_samples(cfg.features)}


def input_fingerprint(data_root: Path, cfg: Config) -> str:
    """Hash of everything the table depends on (see module docstring)."""
    data = {k: v for k, v in cfg.data.as_dict().items() if k not in _DATA_KEYS_NOT_SHAPING_TABLE
            and _DATA_DEFAULTS_OUTSIDE_FINGERPRINT.get(k, object()) != v}
    folds = data.get("folds_file")
    folds_text = resolve_folds_path(folds).read_text(encoding="utf-8") if folds else None
    return fingerprint({"version": PREPARE_VERSION, "root": str(data_root.resolve()),
                        "files": corpus_file_stats(data_root), "data": data,
                        "wav_rules": wav_rules(cfg), "folds": folds_text}, length=20)


def _label_reason(why: str) -> str:
    """Short code for koemo.dataset.labels.resolve_label's reason text."""
    if why.startswith("tie"):
        return "label_tie"
    if why.startswith("empty"):
        return "label_empty"
    return "label_not_in_classes"


def _check_row(row: Any, csv_path: Path, session: int, out: Collector,
               parse: Callable = parse_segment_id) -> Any:
    """Validate the annotation fields of one row; returns its SegmentId or None if dropped.
    (Repeated Segment IDs are left out before: koemo.dataset.duplicates.)"""
    sid = row.segment_id
    where = f"{csv_path} line {row.line}"
    try:
        parsed = parse(sid)
    except KoemoInputError as err:
        out.drop_row(sid, session, csv_path, "bad_segment_id", f"{where}: {err}")
        return None
    missing = [c for c in ("start", "end", "valence", "arousal")
               if not math.isfinite(getattr(row, c))]        # NaN: empty or not a number
    if missing:
        out.drop_row(sid, session, csv_path, "bad_value",
                     f"{where}: {', '.join(missing)} missing, not a number or infinite")
        return None
    if row.start > row.end:
        out.drop_row(sid, session, csv_path, "start_after_end",
                     f"{where}: start {row.start:g} s is after end {row.end:g} s")
        return None
    out_of_range = label_problem(row.valence, row.arousal)
    if out_of_range:
        out.drop_row(sid, session, csv_path, "label_out_of_range", f"{where}: {out_of_range}")
        return None
    return parsed


def _read_files(row: Any, folders: WavFolders, session: int, rules: dict, encoding: TranscriptEncoding,
                out: Collector, clean: Callable = clean_transcript) -> tuple | None:
    """Check the wav and read the transcript of one row; None when either is unusable."""
    sid = row.segment_id
    wav = folders.locate(session, sid, ".wav")
    txt = folders.locate(session, sid, ".txt")
    unlisted = folders.folder_problem(session)
    if unlisted is not None:
        out.drop_row(sid, session, unlisted.path, unlisted.reason, f"{sid}: {unlisted}")
        return None
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
        out.note(sid, txt, "txt_encoding",
                 f"{txt}: read as {used}, not {encoding} (data.transcript_encoding): that "
                 "decoding gives Korean text")
    if not clean(text_raw):
        out.note(sid, txt, "empty_text", f"{txt}: no words once markers are removed")
    if abs(duration - (row.end - row.start)) > DURATION_TOLERANCE_S:
        out.note(sid, wav, "duration_mismatch",
                 f"{wav}: {duration:.3f} s long, annotation says end - start = "
                 f"{row.end - row.start:.3f} s")
    return wav, txt, text_raw, duration, content, used


def _read_annotation_files(files: list[tuple[int, Path]], folders: WavFolders, out: Collector
                           ) -> tuple[list, list[CorpusFileError]]:
    """(session, path, frame) of every readable annotation file, and the unreadable ones. The
    rows a readable file could not parse are dropped here, with their line numbers (their
    files are claimed, like those of every row: not reported again as files without a row)."""
    frames, unreadable = [], []
    for session, csv_path in files:
        try:
            frame = read_annotations(csv_path)
        except CorpusFileError as err:
            unreadable.append(err)
            continue
        for bad in frame.attrs["bad_rows"]:
            if bad["segment_id"]:
                folders.claim(session, bad["segment_id"])
            out.drop_row(bad["segment_id"], session, csv_path, "malformed_row",
                         f"{csv_path} {bad['problem']}")
        for fixed in frame.attrs["repaired_rows"]:
            out.note(fixed["segment_id"], csv_path, "stray_field", f"{csv_path} {fixed['problem']}")
        frames.append((session, csv_path, frame))
    return frames, unreadable


def _skip_or_stop(unreadable: list[CorpusFileError], skip: bool, out: Collector) -> None:
    """A corpus file or folder that cannot be read stops prepare, before any heavy work and
    naming all of them, unless the user chose to go on without them (--skip-unreadable)."""
    if unreadable and not skip:
        raise unreadable_inputs_error(unreadable)
    for err in unreadable:
        out.problem_file(err.path, err.reason, f"{err} (skipped: --skip-unreadable)")


def _annotation_rows(data_root: Path, corpus: Corpus,
                     out: Collector) -> tuple[list, Any, list[CorpusFileError], int]:
    """(frames, wav folders, unusable annotation files and folders, rows read) of the corpus."""
    if corpus.frames is not None:
        # Rows the corpus reader already left out (KEMDy19's repeated ids) were read too.
        total = sum(len(frame) for _, _, frame in corpus.frames) + len(out.dropped)
        return corpus.frames, corpus.folders, list(corpus.unreadable), total
    # KEMDy20: every row its file can give, unreadable files apart
    files, misnamed = annotation_files(data_root)
    folders = WavFolders(data_root)
    frames, unreadable = _read_annotation_files(files, folders, out)
    unreadable = ([misnamed_annotation(path, corpus.name_pattern, corpus.expected_name(path.name))
                   for path in misnamed] + unreadable + list(folders.unreadable.values()))
    return frames, folders, unreadable, sum(frame.attrs["data_rows"] for _, _, frame in frames)


def _record(row: Any, session: int, parsed: Any, found: tuple, label: str, classes: Sequence[str],
            corpus: Corpus) -> dict:
    """The table row of one kept annotation row."""
    wav, txt, text_raw, duration, content, text_encoding = found
    return {
        "segment_id": row.segment_id, "session": session, "speaker": parsed.speaker,
        "gender": parsed.gender, "script": parsed.script, "utt_index": parsed.utt_index,
        "wav_path": str(wav), "txt_path": str(txt),
        "text_raw": text_raw, "text": corpus.clean(text_raw),
        "emotion_total": row.emotion_total, "label": label,
        "label_id": classes.index(label), "valence": float(row.valence),
        "arousal": float(row.arousal), "start": float(row.start),
        "end": float(row.end), "duration": float(duration),
        "audio_problem": content.reason if content is not None else "",
        "text_encoding": text_encoding, "corpus": corpus.name, "dialogue": parsed.dialogue,
        **rater_values(row)}


def scan_corpus(data_root: Path, cfg: Config, strict: bool = False, progress: bool = True,
                skip_unreadable: bool = False) -> tuple[list[dict], Collector, dict]:
    """Read every annotation row and its files -> (records of kept rows, collector, counts)."""
    from tqdm.auto import tqdm

    data, rules = cfg.data, wav_rules(cfg)
    policy = data.label_policy
    try:
        classes = classes_for(policy, data.classes)
    except ValueError as err:
        raise KoemoInputError(f"data.label_policy: {err}") from err
    out = Collector(strict)
    corpus = open_corpus(data_root, data, out)
    frames, folders, unreadable, total = _annotation_rows(data_root, corpus, out)
    _skip_or_stop(unreadable, skip_unreadable, out)
    for session, _, frame in frames:     # every row's files are referred to, dropped or not
        for sid in frame["segment_id"]:
            folders.claim(session, sid)
    frames = drop_repeated_ids(frames, out)
    records: list[dict] = []
    labels_dropped: Counter[str] = Counter()
    bar = tqdm(total=total, desc="prepare", unit="utt", disable=not progress)
    for session, csv_path, frame in frames:
        for row in frame.itertuples(index=False):
            bar.update(1)
            parsed = _check_row(row, csv_path, session, out, corpus.parse)
            if parsed is None:
                continue
            found = _read_files(row, folders, session, rules, corpus.encoding, out, corpus.clean)
            if found is None:
                continue
            label, why = resolve_label(row.emotion_total, policy, classes)
            if label is None:
                labels_dropped[row.emotion_total] += 1
                out.drop_row(row.segment_id, session, csv_path, _label_reason(why),
                             f"{csv_path} line {row.line}: {why}", input_problem=False)
                continue
            no_signal = found[4]
            if no_signal is not None:
                out.no_signal_row(row.segment_id, session, label, no_signal)
            records.append(_record(row, session, parsed, found, label, classes, corpus))
    bar.close()
    skipped = [err.path for err in unreadable]
    sessions = account_sessions(folders, out, records, corpus, data_root / "annotation", skipped)
    return records, out, {"rows_read": total, "classes": list(classes), "corpus": corpus.name,
                          "labels_dropped": dict(labels_dropped), "sessions": sessions,
                          "skipped_unreadable": skipped, **corpus.counts}


def rater_values(row: Any) -> dict:
    """The raters' columns of one annotation row; emotions spelled as the classes are."""
    values = {col: getattr(row, col) for col in RATER_COLUMNS}
    return {col: normalise_label(v or "") if col.endswith("_emotion") else float(v)
            for col, v in values.items()}


def build_table(records: list[dict], cfg: Config) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(_BASE_COLUMNS) + RATER_COLUMNS)
    for col in ("session", "script", "utt_index", "label_id"):
        frame[col] = frame[col].astype("int64")
    return add_splits(frame, cfg)[list(TABLE_COLUMNS)]


def make_report(data_root: Path, workdir: Path, cfg: Config, fp: str, table: pd.DataFrame,
                out: Collector, counts: dict) -> dict:
    reasons = (Counter(d["reason"] for d in out.dropped) + Counter(f["reason"] for f in out.files)
               + Counter(s["reason"] for s in out.sessions))
    return {
        "prepare_version": PREPARE_VERSION, "data_root": str(data_root.resolve()),
        "workdir": str(workdir.resolve()), "input_fingerprint": fp, "data_config": cfg.data.as_dict(),
        "read_rules": READ_RULES, "skipped_unreadable": counts["skipped_unreadable"],
        "label_policy": cfg.data.label_policy, "classes": counts["classes"],
        "rows_read": counts["rows_read"], "rows_kept": len(table),
        "rows_dropped": len(out.dropped),
        "input_problems": sum(input_problem_counts(out.dropped, out.files, out.sessions).values()),
        "counts_by_reason": dict(sorted(reasons.items())),
        "labels_kept": {k: int(v) for k, v in table["label"].value_counts().items()}
        if len(table) else {},
        "labels_dropped": dict(sorted(counts["labels_dropped"].items())),
        "splits": {col: {k: int(v) for k, v in table[col].value_counts().items()}
                   for col in SPLIT_COLUMNS if col in table},
        "dropped_rows": out.dropped, "problem_files": out.files,
        "sessions_without_rows": out.sessions, "sessions": counts["sessions"],
        "notes_by_reason": dict(Counter(n["reason"] for n in out.notes)), "notes": out.notes,
        "no_signal_by_reason": dict(sorted(Counter(r["reason"] for r in out.no_signal).items())),
        "no_signal_rows": out.no_signal, "corpus": counts["corpus"],
        **{k: counts[k] for k in ("kemdy19",) if k in counts},
        "repeated_transcripts": repeated_transcripts(table),
    }


def load_previous(workdir: Path, fp: str, skip_unreadable: bool = False
                  ) -> tuple[pd.DataFrame, dict] | None:
    """The earlier run's table and report when they were made from the same inputs, under
    today's reading rules, and without skipping files this run would stop on."""
    report_path, table_path = workdir / REPORT_JSON, workdir / TABLE_FILE
    if not (report_path.is_file() and table_path.is_file()):
        return None
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if report.get("input_fingerprint") != fp or not report.get("rows_kept"):
        return None
    if report.get("read_rules") != READ_RULES:
        return None
    if report.get("skipped_unreadable") and not skip_unreadable:
        return None
    table = pd.read_parquet(table_path)
    if set(TABLE_COLUMNS) - set(table.columns):
        return None     # written before a column existed (e.g. the raters'): rebuild it
    return table, report


def _raise_if_strict_problems(report: dict) -> None:
    problems = ([d for d in report["dropped_rows"] if d["input_problem"]] + report["problem_files"]
                + report["sessions_without_rows"] + report["no_signal_rows"])
    if problems:
        raise KoemoInputError(f"{problems[0]['message']} (--strict: {len(problems)} input "
                              f"problem(s), see {Path(report['workdir']) / REPORT_MD})")


def _build_features(table: pd.DataFrame, workdir: Path, cfg: Config, progress: bool) -> Path:
    from koemo.audio.feature_store import build_feature_store, store_dir

    # The store removes its partial files itself; a write that fails ends in one line.
    with writing(store_dir(workdir, cfg), "the feature store"):
        return Path(build_feature_store(table, workdir, cfg, progress=progress).directory)


def _scan_and_write(data_root: Path, workdir: Path, cfg: Config, fp: str, strict: bool,
                    progress: bool, skip_unreadable: bool,
                    started: float) -> tuple[pd.DataFrame, dict]:
    records, out, counts = scan_corpus(data_root, cfg, strict, progress, skip_unreadable)
    table = build_table(records, cfg) if len(records) >= 3 else None
    report = make_report(data_root, workdir, cfg, fp,
                         table if table is not None else pd.DataFrame(columns=TABLE_COLUMNS),
                         out, counts)
    report["elapsed_s"] = round(time.perf_counter() - started, 3)
    write_outputs(workdir, table, report)
    if table is None:
        raise KoemoInputError(f"{data_root}: {len(records)} utterance(s) kept, need at "
                              f"least 3; see {workdir / REPORT_MD}")
    return table, report


def prepare(data_root: str | Path, workdir: str | Path, cfg: Config, strict: bool = False,
            progress: bool = True, features: bool = True,
            skip_unreadable: bool = False) -> PrepareResult:
    """Prepare a KEMDy20-format corpus into `workdir` (see module docstring).

    features=False stops after the table and reports (the feature store is built by the
    first command that needs it, or by a later `prepare`). An annotation file or session
    folder that cannot be read stops the run unless skip_unreadable (then the report lists
    it). One prepare at a time per workdir: a second waits for the first, then reuses its
    table.
    """
    # Resolved once: table paths are absolute without resolving each of 13,000 files.
    data_root, workdir = Path(data_root).resolve(), Path(workdir)
    if not data_root.is_dir():
        raise KoemoInputError(f"{data_root}: corpus folder not found")
    started = time.perf_counter()
    with workdir_lock(workdir):
        fp = input_fingerprint(data_root, cfg)
        previous = load_previous(workdir, fp, skip_unreadable)
        reused = previous is not None
        if previous is not None:
            table, report = previous
            if strict:
                _raise_if_strict_problems(report)
        else:
            table, report = _scan_and_write(data_root, workdir, cfg, fp, strict, progress,
                                            skip_unreadable, started)
    print(summary_text(report, reused))
    store_path = _build_features(table, workdir, cfg, progress) if features else None
    return PrepareResult(table, report, store_path, workdir, reused)
