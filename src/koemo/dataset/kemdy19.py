"""Readers for KEMDy19's on-disk format (docs/kemdy19.md), beside `kemdy20.py`.

KEMDy19 differs from KEMDy20 in four ways a loader must honour:
- TWO annotation files per session, `SessionNN_F_res.csv` and `SessionNN_M_res.csv`, both listing
  every utterance of both actors; F_res rates the FEMALE actor's emotion, M_res the MALE's. The
  label of `..._F001` is its speaker's own emotion from F_res (`data.kemdy19_labels: own`, the
  default); `listener` takes the other file's row (the listener's emotion at that moment).
- 43 columns (bio-signal values between the wav times and the Segment ID).
- wav/txt pairs in one sub-folder per dialogue (`wav/Session01/Sess01_impro01/`).
- UTF-8 transcripts with more markers (`o/`, `s/`) and `(spelling)/(pronunciation)` pairs.

`session_frames` turns a session's two files into frames in KEMDy20's annotation-row shape
(`line` + kemdy20.ANNOTATION_COLUMNS), one per run of rows taken from the same file, so
`koemo.dataset.prepare` checks, pairs and labels them exactly as it does KEMDy20's rows. Rows
it cannot use (a repeated Segment ID, by the rule KEMDy20's rows follow too:
koemo.dataset.duplicates; an utterance the label file lacks) are reported to the collector with
a reason, so every utterance is accounted for.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from koemo.config.schema import Kemdy19Labels, TranscriptEncoding
from koemo.dataset.corpus_files import misnamed_annotation
from koemo.dataset.duplicates import drop_repeated_ids
from koemo.dataset.kemdy20 import ANNOTATION_COLUMNS, NUMERIC_COLUMNS, RATER_COLUMNS, CorpusFileError
from koemo.errors import KoemoInputError

if TYPE_CHECKING:
    from koemo.dataset.collector import Collector

N_COLUMNS = 43
SEGMENT_ID_RE = re.compile(r"^Sess(\d{2})_(impro0[1-4]|script0[1-6])_([FM])(\d{3})$")
ANNOTATION_FILE_RE = re.compile(r"^Session(\d{2})_([FM])_res\.csv$")
ANNOTATION_FILE_PATTERN = "SessionNN_F_res.csv or SessionNN_M_res.csv"
# A name that is nearly a rating file's (`Session02_F_res (1).csv`, `session2_f_res.csv`).
_NEAR_ANNOTATION_NAME = re.compile(r"^session[ _-]?0*(\d{1,2})(?!\d)[ _-]*([FM])[ _-]*res",
                                   re.IGNORECASE)
# KEMDy20's markers plus KEMDy19's `o/` and `s/`, removed wherever they occur (also glued).
MARKER_RE = re.compile(r"[cnNulbos]/|[*+]")
# `(spelling)/(pronunciation)`: the written form is kept, as a text model reads written Korean.
ALTERNATIVE_RE = re.compile(r"\(([^()]*)\)/\(([^()]*)\)")
TRANSCRIPT_ENCODING: TranscriptEncoding = "utf-8"
# Where the KEMDy20-shaped columns sit in a 43-column row (3-8 are bio-signal values).
_POSITIONS = [0, 1, 2, 9, 10, 11, 12] + list(range(13, N_COLUMNS))
_HEADER1 = {0: "Numb", 1: "Wav", 9: "Segment ID", 10: "Total Evaluation"}
_HEADER2 = {1: "start", 2: "end", 10: "Emotion", 11: "Valence", 12: "Arousal"}


class SegmentId(NamedTuple):
    session: int
    kind: str           # impro | script
    script: int         # the dialogue's number within its kind
    gender: str
    utt_index: int

    @property
    def speaker(self) -> str:
        """One actor per gender and session: `Sess01F`."""
        return f"Sess{self.session:02d}{self.gender}"

    @property
    def dialogue(self) -> str:
        return f"{self.kind}{self.script:02d}"


def parse_segment_id(segment_id: str) -> SegmentId:
    """`Sess01_script02_M003` -> SegmentId(1, 'script', 2, 'M', 3)."""
    match = SEGMENT_ID_RE.match(str(segment_id).strip())
    if not match:
        raise KoemoInputError(f"segment id {segment_id!r} does not look like "
                              "SessNN_improMM_[F|M]KKK or SessNN_scriptMM_[F|M]KKK")
    session, dialogue, gender, utt = match.groups()
    return SegmentId(int(session), dialogue[:-2], int(dialogue[-2:]), gender, int(utt))


def clean_transcript(text: str) -> str:
    """Keep the spelling of `(a)/(b)` pairs, remove the markers, collapse spaces."""
    text = ALTERNATIVE_RE.sub(lambda m: f" {m.group(1)} ", text)
    return " ".join(MARKER_RE.sub(" ", text).split())


def annotation_names(session: int) -> list[str]:
    """The two rating files of a session: `Session02_F_res.csv`, `Session02_M_res.csv`."""
    return [f"Session{session:02d}_{gender}_res.csv" for gender in ("F", "M")]


def expected_annotation_name(name: str) -> str | None:
    """The rating file a CSV named almost like one stands for (`Session02_F_res (1).csv` ->
    `Session02_F_res.csv`), or None."""
    match = _NEAR_ANNOTATION_NAME.match(name)
    return (f"Session{int(match.group(1)):02d}_{match.group(2).upper()}_res.csv"
            if match else None)


def annotation_files(data_root: Path) -> tuple[dict[int, dict[str, Path]], list[Path]]:
    """{session: {"F": path, "M": path}} of `annotation/SessionNN_[F|M]_res.csv`, and the other
    CSV files there (misnamed)."""
    folder = data_root / "annotation"
    if not folder.is_dir():
        raise KoemoInputError(f"{folder}: no annotation folder; --data must be the KEMDy19 root "
                              "holding annotation/ and wav/")
    sessions: dict[int, dict[str, Path]] = {}
    misnamed = []
    for path in sorted(folder.glob("*.csv")):
        match = ANNOTATION_FILE_RE.match(path.name)
        if match:
            sessions.setdefault(int(match.group(1)), {})[match.group(2)] = path
        else:
            misnamed.append(path)
    if not sessions:
        raise KoemoInputError(f"{folder}: no SessionNN_F_res.csv / SessionNN_M_res.csv files")
    return dict(sorted(sessions.items())), misnamed


def _check_header(csv_path: Path, rows: list[list[str]]) -> None:
    if len(rows) < 2:
        raise CorpusFileError(csv_path, "malformed_csv", "expected two header rows")
    for line_no, (row, expected) in enumerate(zip(rows[:2], (_HEADER1, _HEADER2)), start=1):
        if len(row) != N_COLUMNS:
            raise CorpusFileError(csv_path, "malformed_csv", f"header row {line_no} has "
                                  f"{len(row)} columns, expected {N_COLUMNS} (KEMDy19)")
        wrong = [(col, name) for col, name in expected.items() if row[col].strip() != name]
        if wrong:
            col, name = wrong[0]
            raise CorpusFileError(csv_path, "malformed_csv", f"header row {line_no} column "
                                  f"{col} is {row[col]!r}, expected {name!r}")


def read_annotations(csv_path: str | Path) -> pd.DataFrame:
    """One `SessionNN_[F|M]_res.csv` -> `line` + kemdy20.ANNOTATION_COLUMNS, in file order (the
    bio-signal value columns are left out; unparsable numbers become NaN, as for KEMDy20)."""
    csv_path = Path(csv_path)
    try:
        rows = list(csv.reader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    except FileNotFoundError as err:
        raise CorpusFileError(csv_path, "missing_csv", "annotation file not found") from err
    except UnicodeDecodeError as err:
        raise CorpusFileError(csv_path, "malformed_csv",
                              f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    _check_header(csv_path, rows)
    data, lines = [], []
    for line_no, row in enumerate(rows[2:], start=3):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != N_COLUMNS:
            raise CorpusFileError(csv_path, "malformed_csv",
                                  f"line {line_no} has {len(row)} columns, expected {N_COLUMNS}")
        data.append([row[i].strip() for i in _POSITIONS])
        lines.append(line_no)
    frame = pd.DataFrame(data, columns=ANNOTATION_COLUMNS, dtype=str)
    frame.insert(0, "line", pd.Series(lines, dtype="int64"))
    for col in NUMERIC_COLUMNS + tuple(c for c in RATER_COLUMNS if not c.endswith("_emotion")):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def _usable_rows(frame: pd.DataFrame, path: Path, session: int, out: Collector
                 ) -> dict[str, pd.Series]:
    """Segment ID -> its row, after the one rule for repeated ids (koemo.dataset.duplicates:
    copies keep one row, conflicting rows none), each row left out reported."""
    [(_, _, usable)] = drop_repeated_ids([(session, path, frame)], out)
    return {row["segment_id"]: row for _, row in usable.iterrows()}


def _label_file(sid: str, label_source: Kemdy19Labels) -> str | None:
    """Which file ("F"/"M") holds the rating the label source asks for; None for a bad id."""
    match = SEGMENT_ID_RE.match(sid)
    if not match:
        return None
    speaker = match.group(3)
    return speaker if label_source == "own" else {"F": "M", "M": "F"}[speaker]


def session_frames(session: int, files: dict[str, Path], label_source: Kemdy19Labels,
                   out: Collector,
                   stats: dict, unreadable: list) -> list[tuple[int, Path, pd.DataFrame]]:
    """The label row of every utterance of one session (see module docstring), as
    (session, source file, frame) runs in the order the F file lists them. A file that cannot
    be read is added to `unreadable` (prepare stops on it unless --skip-unreadable)."""
    read: dict[str, dict[str, pd.Series]] = {}
    for gender in ("F", "M"):
        path = files.get(gender)
        if path is None:
            continue
        try:
            frame = read_annotations(path)
        except CorpusFileError as err:
            unreadable.append(err)
            continue
        stats["annotation_rows"] += len(frame)
        read[gender] = _usable_rows(frame, path, session, out)
    order = list(dict.fromkeys([sid for g in ("F", "M") for sid in read.get(g, {})]))
    stats["utterances"] += len(order)
    stats["ids"].update(order)
    both = [sid for sid in order if all(sid in read.get(g, {}) for g in ("F", "M"))]
    stats["both_files"] += len(both)
    stats["labels_agree"] += sum(read["F"][s]["emotion_total"] == read["M"][s]["emotion_total"]
                                 for s in both)
    chosen: list[tuple[str, pd.Series]] = []
    for sid in order:
        gender = _label_file(sid, label_source) or next(g for g in read if sid in read[g])
        row = read.get(gender, {}).get(sid)
        if row is None:
            expected = files.get(gender) or f"annotation/Session{session:02d}_{gender}_res.csv"
            out.drop_row(sid, session, expected, "missing_rating_row",
                         f"{expected}: no usable row for {sid}, whose {label_source} label "
                         "this file holds (the other file lists it)")
            continue
        chosen.append((gender, row))
    return _runs(session, files, chosen)


def _runs(session: int, files: dict[str, Path], chosen: list[tuple[str, pd.Series]]
          ) -> list[tuple[int, Path, pd.DataFrame]]:
    """Consecutive rows from the same file as one frame each, so messages name the right file."""
    runs: list[tuple[int, Path, pd.DataFrame]] = []
    start = 0
    for k in range(1, len(chosen) + 1):
        if k == len(chosen) or chosen[k][0] != chosen[start][0]:
            frame = pd.DataFrame([row for _, row in chosen[start:k]]).reset_index(drop=True)
            frame["line"] = frame["line"].astype("int64")
            runs.append((session, files[chosen[start][0]], frame))
            start = k
    return runs


def annotation_frames(data_root: Path, label_source: Kemdy19Labels, out: Collector
                      ) -> tuple[list, dict, set[str], list[CorpusFileError]]:
    """Every session's label rows (session_frames), counts for the prepare report, every
    Segment ID the annotation files list, and the annotation files that cannot be used (not
    readable, or a name that names no session): prepare stops on them unless --skip-unreadable."""
    sessions, misnamed = annotation_files(data_root)
    unreadable = [misnamed_annotation(path, ANNOTATION_FILE_PATTERN,
                                      expected_annotation_name(path.name)) for path in misnamed]
    stats: dict[str, Any] = {"label_source": label_source, "annotation_rows": 0, "utterances": 0,
             "both_files": 0, "labels_agree": 0, "ids": set()}
    frames = []
    for session, files in sessions.items():
        for gender in ("F", "M"):
            if gender not in files:
                missing = data_root / "annotation" / f"Session{session:02d}_{gender}_res.csv"
                out.problem_file(missing, "missing_csv",
                                 f"{missing}: annotation file not found (the {gender} actor's ratings)")
        frames += session_frames(session, files, label_source, out, stats, unreadable)
    return frames, stats, stats.pop("ids"), unreadable


def report_lines(counts: dict | None) -> list[str]:
    """The prepare report's lines on where KEMDy19 labels came from (none for KEMDy20)."""
    if not counts:
        return []
    source = ("own: each utterance's speaker's file" if counts["label_source"] == "own"
              else "listener: the other actor's file")
    agree = (f"{100 * counts['labels_agree'] / counts['both_files']:.1f}%"
             if counts["both_files"] else "n/a")
    return [f"- KEMDy19 labels: {source} (data.kemdy19_labels); {counts['utterances']} "
            f"utterances in {counts['annotation_rows']} annotation rows of both files; the two "
            f"files' total emotions agree on {agree} of the {counts['both_files']} utterances "
            "both list"]


class DialogueFolders:
    """The names in every `wav/SessionNN/SessNN_<dialogue>/` folder, listed once (the
    counterpart of corpus_files.WavFolders). A transcript misnamed by one (`..._M015.txt` beside
    `..._M016.wav`) is read for its utterance, with a note, when no utterance of that other
    number exists."""

    def __init__(self, data_root: Path, listed_ids: set[str], out: Collector):
        self.root = data_root / "wav"
        if not self.root.is_dir():
            raise KoemoInputError(f"{self.root}: no wav folder; --data must be the KEMDy19 root")
        self.names: dict[str, set[str]] = {}
        for session in os.scandir(self.root):
            if session.is_dir() and session.name.startswith("Session"):
                self._list(Path(session.path), session.name)
        self.listed_ids, self.out = listed_ids, out
        self.claimed: set[tuple[str, str]] = set()

    def _list(self, folder: Path, rel: str) -> None:
        for entry in os.scandir(folder):
            if entry.is_dir():
                self._list(Path(entry.path), f"{rel}/{entry.name}")
            else:
                self.names.setdefault(rel, set()).add(entry.name)

    def folder_problem(self, session: int) -> None:
        """An unreadable session folder (KEMDy20's reader stops or skips those): none here, a
        missing dialogue folder shows as its rows' missing files."""
        return None

    def locate(self, session: int, segment_id: str, suffix: str) -> Path:
        folder = f"Session{session:02d}/{segment_id.rsplit('_', 1)[0]}"
        present = self.names.get(folder, set())
        name = f"{segment_id}{suffix}"
        if name not in present and suffix == ".txt":
            name = self._misnamed_transcript(folder, segment_id, present) or name
        self.claimed.add((folder, name))
        return self.root / folder / name

    def _misnamed_transcript(self, folder: str, segment_id: str, present: set[str]) -> str | None:
        stem, number = segment_id[:-3], int(segment_id[-3:])
        for other in (number - 1, number + 1):
            other_id = f"{stem}{other:03d}"
            if (f"{other_id}.txt" in present and f"{other_id}.wav" not in present
                    and other_id not in self.listed_ids and 0 < other < 1000):
                path = self.root / folder / f"{other_id}.txt"
                self.out.note(segment_id, path, "misnamed_txt",
                              f"{path}: read as the transcript of {segment_id} (no {segment_id}"
                              f".txt; no utterance {other_id} exists, so the name is off by one)")
                return f"{other_id}.txt"
        return None

    def claim(self, session: int, segment_id: str) -> None:
        """Nothing to record: unclaimed() already leaves out the files of every utterance the
        annotation lists, dropped rows included (and locating here would repeat the note of a
        misnamed transcript)."""

    def unclaimed(self) -> list[Path]:
        """Files no row claimed, less those of utterances the annotation lists (a row dropped
        for its rating file, e.g. missing_rating_row, still has its files)."""
        return [self.root / folder / name for folder in sorted(self.names)
                for name in sorted(self.names[folder])
                if name.endswith((".wav", ".txt")) and (folder, name) not in self.claimed
                and name[:-4] not in self.listed_ids]
