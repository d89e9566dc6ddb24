"""Reading KEMDy20's wrist bio-signal files (EDA, TEMP, IBI) and cutting them per utterance.

- `read_signal_file(path, signal)` parses one file; `read_labels(root)` the emotion labels.
- `require_signal_folders(root, signals)` raises BiosignalsNotAvailable when the corpus was
  downloaded without them (audio + text only).
- `load_biosignals(root)` cuts every file into per-utterance series by the segment id that the
  corpus writes on the samples inside annotated segments, and returns a coverage table saying
  which files are missing, empty or broken, which rows were skipped and which annotated segments
  have no samples (nothing is dropped silently).

File format (docs/kemdy20.md): EDA/TEMP start with `<unix start>,<timestamp>` and
`<rate>,hz`; data rows are `value,timestamp[,segment_id]`. IBI starts with `<unix>,IBI,<ts>`;
data rows are `offset_s,ibi_s,timestamp[,segment_id]`. Rows have a varying number of fields.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, cast

import numpy as np
import pandas as pd

from koemo.config.schema import BIOSIGNALS as SIGNALS      # biosignals.signals' choices
from koemo.config.schema import Biosignal
from koemo.errors import BiosignalsNotAvailable, KoemoInputError

# Each data row: the value columns, then an optional segment id.
DATA_FIELDS = {"EDA": ("value", "timestamp"), "TEMP": ("value", "timestamp"),
               "IBI": ("offset", "value", "timestamp")}
SIGNAL_FILE_RE = re.compile(r"^Sess(\d{2})_script(0[1-6])_(User\d{3}[MF])\.csv$")
SEGMENT_ID_RE = re.compile(r"^Sess\d{2}_script0[1-6]_User\d{3}[MF]_\d{3}$")
FILE_STATUSES = ("ok", "missing", "empty", "broken")
COVERAGE_COLUMNS = ["signal", "level", "session", "script", "speaker", "path", "segment_id",
                    "line", "status", "n_samples", "n_segments", "problem"]
SERIES_COLUMNS = ["segment_id", "session", "script", "speaker", "n_samples", "values",
                  "timestamps"]


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------

@dataclass
class SignalFile:
    """One parsed bio-signal file: its samples in file order and the rows that were skipped."""
    path: Path
    signal: str
    start_unix: float
    rate_hz: float | None            # EDA/TEMP: the declared sampling rate; IBI: None
    samples: pd.DataFrame            # line, value, timestamp, segment_id (+ offset for IBI)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)   # (line number, reason)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_preamble(path: Path, signal: str, rows: list[list[str]]) -> tuple[float, float | None, int]:
    """Check the header lines; return (unix start, rate in Hz or None, number of header lines)."""
    def broken(problem: str) -> KoemoInputError:
        return KoemoInputError(f"{path}: broken {signal} preamble: {problem}")

    if not rows:
        raise broken("no header line")
    first = [cell.strip() for cell in rows[0]]
    start = _number(first[0]) if first else None
    if signal == "IBI":
        if len(first) < 2 or start is None or first[1] != "IBI":
            raise broken(f"line 1 is {','.join(first)!r}, expected '<unix start>,IBI,<timestamp>'")
        return start, None, 1
    if len(first) != 2 or start is None:
        raise broken(f"line 1 is {','.join(first)!r}, expected '<unix start>,<timestamp>'")
    if len(rows) < 2:
        raise broken("line 2 missing, expected '<rate>,hz'")
    second = [cell.strip() for cell in rows[1]]
    rate = _number(second[0]) if second else None
    if len(second) != 2 or rate is None or rate <= 0 or second[1].lower() != "hz":
        raise broken(f"line 2 is {','.join(second)!r}, expected '<rate>,hz' (e.g. 4.000000,hz)")
    return start, rate, 2


def _timestamps_as_seconds(texts: pd.Series) -> np.ndarray:
    """Numeric timestamps stay numbers; date-time text (KEMDy20: Korean wall-clock time,
    `YYYY-MM-DD HH:MM:SS.fff`, no zone) becomes seconds since 1970-01-01 00:00 of that clock,
    so differences are exact but the values are 9 h off the unix preamble.

    Unparseable timestamps become NaN: the sample value is still usable, so the row is kept.
    """
    numbers = pd.to_numeric(texts, errors="coerce")
    if texts.empty or numbers.notna().any():
        return numbers.to_numpy(dtype=float)
    stamps = pd.to_datetime(texts, errors="coerce", format="ISO8601")
    if stamps.isna().all():          # not ISO: let pandas infer each one (slower)
        stamps = pd.to_datetime(texts, errors="coerce", format="mixed")
    seconds = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=float)


# Anything the row-by-row reader treats specially sends a file there: a byte that is not
# printable ASCII (non-UTF-8, BOM, NUL, tabs and other whitespace that str.strip removes), a
# quote, a lone CR, a blank line, or a space next to a comma or a line end (stripped there).
_PRINTABLE = bytes(range(0x20, 0x7f))
_NOT_PLAIN = (b'"', b"\n\n", b" ,", b", ", b" \n", b"\n ")


def _is_plain(raw: bytes) -> bool:
    return (not raw.translate(None, _PRINTABLE + b"\n") and not raw.startswith((b"\n", b" "))
            and not raw.endswith(b" ") and not any(part in raw for part in _NOT_PLAIN))


def _read_plain_file(path: Path, signal: str) -> SignalFile | None:
    """The common case of `read_signal_file` in a few vectorised passes (1.5x faster: most of
    a file's time is pandas' number and date parsing, shared by both readers), or None
    for a file with any irregularity (see _NOT_PLAIN, and: a bad preamble, a row with the wrong
    number of fields, a malformed segment id, a value that is not a number); the row-by-row
    reader then parses that file and reports its problems. Equal results: the same strings go
    through the same pd.to_numeric and _timestamps_as_seconds (tests compare both readers)."""
    raw = path.read_bytes().replace(b"\r\n", b"\n")      # csv's row ends: \r\n or \n
    if not _is_plain(raw):
        return None
    n_header = 1 if signal == "IBI" else 2
    parts = raw.split(b"\n", n_header)
    if len(parts) <= n_header or not parts[n_header]:
        return None
    try:
        start, rate, _ = _parse_preamble(
            path, signal, [line.decode("ascii").split(",") for line in parts[:n_header]])
    except KoemoInputError:
        return None
    body = parts[n_header]
    names = DATA_FIELDS[signal]
    # Fields per row from the commas (read_csv would pad short rows and index long ones).
    chars = np.frombuffer(body, np.uint8)
    newline = chars == ord("\n")
    n_rows = int(newline.sum()) + (not body.endswith(b"\n"))
    line_of = np.cumsum(newline) - newline
    commas = np.bincount(line_of[chars == ord(",")], minlength=n_rows)
    if not np.isin(commas, (len(names) - 1, len(names))).all():
        return None
    frame = pd.read_csv(io.BytesIO(body), header=None, names=[*names, "segment_id"], dtype=str,
                        na_filter=False, quoting=csv.QUOTE_NONE, skip_blank_lines=False,
                        engine="c")
    segments = frame["segment_id"]
    if len(frame) != n_rows or ((segments != "") &
                                ~segments.str.match(SEGMENT_ID_RE.pattern)).any():
        return None
    for col in ["value"] + (["offset"] if signal == "IBI" else []):
        parsed = pd.to_numeric(frame[col], errors="coerce")
        if parsed.isna().any():
            return None
        frame[col] = parsed
    frame.insert(0, "line", np.arange(n_header + 1, n_header + 1 + n_rows, dtype=int))
    frame["timestamp"] = _timestamps_as_seconds(frame["timestamp"])
    return SignalFile(path, signal, start, rate, frame, [])


def read_signal_file(path: str | Path, signal: str) -> SignalFile:
    """Parse one EDA/TEMP/IBI file. A broken header (or a non-text file) raises KoemoInputError
    naming the file; a bad data row is skipped and listed in `bad_rows` with its line number."""
    path = Path(path)
    if signal not in DATA_FIELDS:
        raise KoemoInputError(f"unknown bio-signal {signal!r}; choose from {SIGNALS}")
    try:
        plain = _read_plain_file(path, signal)
    except OSError:
        plain = None                 # the reader below raises or reports it as before
    if plain is not None:
        return plain
    return _read_row_by_row(path, signal)


def _read_row_by_row(path: Path, signal: str) -> SignalFile:
    """read_signal_file for any file: csv.reader, then every row checked on its own."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as err:
        raise KoemoInputError(f"{path}: not a text CSV file ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise KoemoInputError(f"{path}: not valid CSV: {err}") from err
    start, rate, n_header = _parse_preamble(path, signal, rows)

    names = DATA_FIELDS[signal]
    kept: list[list[str]] = []
    bad_rows: list[tuple[int, str]] = []
    for line, row in enumerate(rows[n_header:], start=n_header + 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue                 # blank line: nothing to lose
        if len(cells) not in (len(names), len(names) + 1):
            bad_rows.append((line, f"{len(cells)} fields, expected {len(names)} or "
                                   f"{len(names) + 1} ({','.join(names)}[,segment_id])"))
            continue
        segment = cells[len(names)] if len(cells) > len(names) else ""
        if segment and not SEGMENT_ID_RE.match(segment):
            bad_rows.append((line, f"segment id {segment!r} is not SessNN_scriptMM_UserNNNX_KKK"))
            continue
        kept.append([str(line), *cells[:len(names)], segment])

    frame = pd.DataFrame(kept, columns=["line", *names, "segment_id"], dtype=str)
    frame["line"] = frame["line"].astype(int)
    numeric = ["value"] + (["offset"] if signal == "IBI" else [])
    for col in numeric:
        parsed = pd.to_numeric(frame[col], errors="coerce")
        for line, text in zip(frame.loc[parsed.isna(), "line"], frame.loc[parsed.isna(), col]):
            bad_rows.append((int(line), f"{col} {text!r} is not a number"))
        frame[col] = parsed
    frame = frame.dropna(subset=numeric).reset_index(drop=True)
    frame["timestamp"] = _timestamps_as_seconds(frame["timestamp"])
    return SignalFile(path, signal, start, rate, frame, sorted(bad_rows))


# ---------------------------------------------------------------------------------------------
# Labels (annotation files)
# ---------------------------------------------------------------------------------------------

class _RepeatedIdRows:
    """The collector koemo.dataset.duplicates reports to, as coverage rows (status bad_row)."""

    def __init__(self, problems: list[dict]):
        self.problems = problems

    def drop_row(self, segment_id: str, session: int, file: str | Path, reason: str, message: str,
                 input_problem: bool = True) -> None:
        self.problems.append(_coverage_row("annotation", "row", path=file, session=session,
                                           segment_id=segment_id, status="bad_row",
                                           problem=f"{message} ({reason})"))


def read_labels(data_root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All `annotation/SessNN_eval.csv` -> (segment_id, session, script, speaker, emotion_total)
    in file order, and a coverage-style table of annotation files that could not be read.

    The session comes from the file name (Sess17_eval.csv holds `Sess42...` ids); script and
    speaker come from the id. Rows whose id is malformed are reported, not kept; a Segment ID
    on several rows follows prepare's rule (koemo.dataset.duplicates: copies keep the first
    row, conflicting rows none), each row left out reported.
    """
    from koemo.dataset.duplicates import drop_repeated_ids
    from koemo.dataset.kemdy20 import (SEGMENT_ID_RE as FULL_ID_RE, read_annotations,
                                       session_of_annotation_file)

    tables, frames, problems = [], [], []
    for csv_path in sorted(Path(data_root, "annotation").glob("Sess*_eval.csv")):
        try:
            session = session_of_annotation_file(csv_path)
            table = read_annotations(csv_path)
        except KoemoInputError as err:       # CorpusFileError included
            problems.append(_coverage_row("annotation", "file", path=csv_path, status="broken",
                                          problem=str(err)))
            continue
        for bad in table.attrs["bad_rows"]:     # rows read_annotations could not parse
            problems.append(_coverage_row("annotation", "row", path=csv_path, session=session,
                                          segment_id=bad["segment_id"], status="bad_row",
                                          problem=f"{csv_path} {bad['problem']}"))
        tables.append((session, csv_path, table))
    for session, csv_path, table in drop_repeated_ids(tables, _RepeatedIdRows(problems)):
        ids = table["segment_id"].astype(str).str.strip()
        parts = ids.str.extract(FULL_ID_RE)
        for line, segment in zip(table["line"][parts[0].isna()], ids[parts[0].isna()]):
            problems.append(_coverage_row("annotation", "row", path=csv_path, session=session,
                                          segment_id=segment, status="bad_row",
                                          problem=f"{csv_path}: data row {line - 2}: segment id "
                                                  f"{segment!r} is malformed"))
        ok = parts[0].notna()
        frames.append(pd.DataFrame({
            "segment_id": ids[ok].to_numpy(), "session": session,
            "script": parts.loc[ok, 1].astype(int).to_numpy(),
            "speaker": ("User" + parts.loc[ok, 2] + parts.loc[ok, 3]).to_numpy(),
            "emotion_total": table.loc[ok, "emotion_total"].to_numpy()}))
    labels = (pd.concat(frames, ignore_index=True) if frames else
              pd.DataFrame(columns=["segment_id", "session", "script", "speaker", "emotion_total"]))
    return labels, _coverage_frame(problems)


# ---------------------------------------------------------------------------------------------
# Loading a corpus: per-utterance series + coverage
# ---------------------------------------------------------------------------------------------

def _coverage_row(signal: str, level: str, *, path: Path | str | None = None,
                  session: int | None = None, script: int | None = None,
                  speaker: str | None = None, segment_id: str | None = None,
                  line: int | None = None, status: str, n_samples: int = 0,
                  n_segments: int = 0, problem: str = "") -> dict:
    return {"signal": signal, "level": level, "session": session, "script": script,
            "speaker": speaker, "path": None if path is None else str(path),
            "segment_id": segment_id, "line": line, "status": status, "n_samples": n_samples,
            "n_segments": n_segments, "problem": problem}


def _coverage_frame(rows: list[dict]) -> pd.DataFrame:
    # Nullable integers: file-level rows have no line, annotation-level rows no script.
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS).astype(
        {"session": "Int64", "script": "Int64", "line": "Int64", "n_samples": "int64",
         "n_segments": "int64"})


def _signal_files(data_root: Path, signal: str) -> dict[tuple[int, int, str], Path]:
    """Files named SessNN_scriptMM_UserNNNX.csv under ROOT/<signal>/SessionNN/, by key."""
    return {(int(m.group(1)), int(m.group(2)), m.group(3)): path
            for path in sorted(Path(data_root, signal).glob("Session*/*.csv"))
            if (m := SIGNAL_FILE_RE.match(path.name))}


def _cut_segments(parsed: SignalFile, key: tuple[int, int, str]) -> pd.DataFrame:
    """One row per segment id in the file (in order of first appearance): its sample values
    and timestamps in file order. One stable sort instead of a groupby loop per segment."""
    session, script, speaker = key
    inside = parsed.samples[parsed.samples["segment_id"] != ""]
    codes, ids = pd.factorize(inside["segment_id"], sort=False)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(ids))
    bounds = np.cumsum(counts)[:-1]

    def per_segment(column: str) -> list[np.ndarray]:
        return np.split(inside[column].to_numpy(dtype=float)[order], bounds) if len(ids) else []

    columns = SERIES_COLUMNS + (["offsets"] if parsed.signal == "IBI" else [])
    table = {"segment_id": ids, "session": session, "script": script,
             "speaker": speaker, "n_samples": counts, "values": per_segment("value"),
             "timestamps": per_segment("timestamp")}
    if parsed.signal == "IBI":
        table["offsets"] = per_segment("offset")
    return pd.DataFrame(table, columns=columns) if len(ids) else pd.DataFrame(columns=columns)


def _read_expected_file(path: Path, signal: str, key: tuple[int, int, str], exists: bool
                        ) -> tuple[str, str, pd.DataFrame | None, list[tuple[int, str]]]:
    """(status, problem, per-segment series or None, skipped rows) of one file of the corpus."""
    if not exists:
        return "missing", f"{path}: file not found", None, []
    if path.stat().st_size == 0:
        return "empty", f"{path}: file is empty (0 bytes)", None, []
    try:
        parsed = read_signal_file(path, signal)
    except KoemoInputError as err:
        return "broken", str(err), None, []
    problem = f"{len(parsed.bad_rows)} row(s) skipped" if parsed.bad_rows else ""
    return "ok", problem, _cut_segments(parsed, key), parsed.bad_rows


def _load_signal(data_root: Path, signal: str, labels: pd.DataFrame
                 ) -> tuple[pd.DataFrame, list[dict]]:
    """Read every file of one signal; expected files are those with annotated segments."""
    found = _signal_files(data_root, signal)
    expected = set(zip(labels["session"], labels["script"], labels["speaker"]))
    coverage, pieces = [], []
    for path in sorted(Path(data_root, signal).glob("Session*/*.csv")):
        if not SIGNAL_FILE_RE.match(path.name):
            coverage.append(_coverage_row(signal, "file", path=path, status="broken",
                                          problem=f"{path}: name is not SessNN_scriptMM_UserNNNX.csv"))
    file_status: dict[tuple[int, int, str], str] = {}
    for key in sorted(found.keys() | expected):
        session, script, speaker = key
        where: dict[str, Any] = dict(session=session, script=script, speaker=speaker)
        path = found.get(key) or Path(data_root, signal, f"Session{session:02d}",
                                      f"Sess{session:02d}_script{script:02d}_{speaker}.csv")
        status, problem, segments, bad_rows = _read_expected_file(path, signal, key, key in found)
        for line, reason in bad_rows:
            coverage.append(_coverage_row(signal, "row", path=path, line=line, status="bad_row",
                                          problem=f"{path}:{line}: {reason}", **where))
        if segments is not None:
            pieces.append(segments)
        file_status[key] = status
        coverage.append(_coverage_row(
            signal, "file", path=path, status=status, problem=problem,
            n_samples=0 if segments is None else int(segments["n_samples"].sum()),
            n_segments=0 if segments is None else len(segments), **where))

    columns = SERIES_COLUMNS + (["offsets"] if signal == "IBI" else [])
    series = (pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=columns))
    duplicated = series["segment_id"].duplicated()
    for _, row in series[duplicated].iterrows():
        coverage.append(_coverage_row(signal, "segment", segment_id=row["segment_id"],
                                      session=row["session"], script=row["script"],
                                      speaker=row["speaker"], status="duplicate",
                                      n_samples=int(row["n_samples"]),
                                      problem="segment id also in an earlier file; first kept"))
    series = series[~duplicated].reset_index(drop=True)

    have = set(series["segment_id"])
    for row in labels[~labels["segment_id"].isin(have)].itertuples(index=False):
        status = file_status.get((row.session, row.script, row.speaker), "missing")
        reason = ("no sample carries this segment id" if status == "ok"
                  else f"its file is {status}")
        coverage.append(_coverage_row(signal, "segment", segment_id=row.segment_id,
                                      session=row.session, script=row.script,
                                      speaker=row.speaker, status="no_samples", problem=reason))
    return series, coverage


def load_biosignals(data_root: str | Path, signals: Iterable[str] = SIGNALS
                    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Per-utterance bio-signal series and a coverage report.

    Returns `series[signal]`: a DataFrame with one row per segment id found in that signal's files
    (segment_id, session, script, speaker, n_samples, values, timestamps [+ offsets for IBI];
    `values`/`timestamps` are float arrays in file order, timestamps in seconds), and `coverage`
    with COVERAGE_COLUMNS, one row per
      level "file":    every file found or expected (from the annotations): status ok | missing |
                       empty | broken, with the problem naming the file;
      level "row":     every data row skipped (status bad_row, file:line and the reason);
      level "segment": every annotated segment without samples (status no_samples, with why) and
                       every duplicated segment id (status duplicate).
    Annotation files that cannot be read appear with signal "annotation". A missing signal folder
    only makes its files "missing"; a missing data root raises KoemoInputError.
    """
    series, coverage, _ = _load_with_labels(data_root, signals)
    return series, coverage


def check_request(data_root: str | Path, signals: Iterable[str]
                  ) -> tuple[Path, tuple[Biosignal, ...]]:
    """The data root must be a folder and every signal one of SIGNALS; returns both normalised."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise KoemoInputError(f"{data_root}: data root is not a directory")
    signals = tuple(signals)
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        raise KoemoInputError(f"unknown bio-signal(s) {unknown}; choose from {SIGNALS}")
    return data_root, cast("tuple[Biosignal, ...]", signals)      # each one checked above


def require_signal_folders(data_root: str | Path, signals: Iterable[str]) -> list[Path]:
    """The folders ROOT/<signal>/, or BiosignalsNotAvailable naming every absent one.

    load_biosignals reports an absent folder as missing files (coverage), but an analysis of a
    signal without any file has nothing to compute: callers say so instead of reporting NaNs.
    """
    folders = [Path(data_root, signal) for signal in signals]
    missing = [folder for folder in folders if not folder.is_dir()]
    if missing:
        raise BiosignalsNotAvailable(data_root, missing,
                                     [folder for folder in folders if folder.is_dir()])
    return folders


def _load_with_labels(data_root: str | Path, signals: Iterable[str]
                      ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    data_root, signals = check_request(data_root, signals)
    labels, coverage_rows = read_labels(data_root)
    coverage_rows = coverage_rows.to_dict("records")
    series: dict[str, pd.DataFrame] = {}
    for signal in signals:
        series[signal], rows = _load_signal(data_root, signal, labels)
        coverage_rows.extend(rows)
    return series, _coverage_frame(coverage_rows), labels


def coverage_summary(coverage: pd.DataFrame) -> pd.DataFrame:
    """Per signal and session: files by status, and annotated segments lacking samples."""
    files = coverage[coverage["level"] == "file"]
    table = pd.crosstab([files["signal"], files["session"]], files["status"]).reindex(
        columns=FILE_STATUSES, fill_value=0)
    lacking = coverage[(coverage["level"] == "segment") & (coverage["status"] == "no_samples")]
    table["segments_without_samples"] = (
        lacking.groupby(["signal", "session"]).size().reindex(table.index, fill_value=0))
    table["segments_with_samples"] = (
        files.groupby(["signal", "session"])["n_segments"].sum().reindex(table.index, fill_value=0))
    return table.reset_index()


