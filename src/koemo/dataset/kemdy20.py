"""Readers for KEMDy20's on-disk format (docs/kemdy20.md).

Each reader checks one kind of file and raises `CorpusFileError` (a KoemoInputError) whose
message names the file and the problem, plus a short `reason` code that `prepare` counts in
its report. `check_wav` reads the header only; `check_wav_content` reads one file's samples
at a time, so a scan of 13,000 files stays at constant memory.
"""
from __future__ import annotations

import csv
import errno
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from koemo.audio.io import SILENCE_PEAK
from koemo.config.schema import (SAMPLE_RATE, TRANSCRIPT_ENCODINGS,  # those tried; Korean-looking text wins
                                 TranscriptEncoding)
from koemo.errors import KoemoInputError

N_COLUMNS = 37
N_RATERS = 10
SEGMENT_ID_RE = re.compile(r"^Sess(\d{2})_script(0[1-6])_User(\d{3})([MF])_(\d{3})$")
ANNOTATION_FILE_RE = re.compile(r"^Sess(\d{2})_eval\.csv$")
ANNOTATION_FILE_PATTERN = "SessNN_eval.csv"
# A name that is nearly an annotation file's (`Sess02_eval (1).csv`, `sess2_eval.csv`).
_NEAR_ANNOTATION_NAME = re.compile(r"^sess(?:ion)?[ _-]?0*(\d{1,2})(?!\d)[ _-]*eval",
                                   re.IGNORECASE)
# Markers of the transcripts (breath, laugh, noise, unintelligible, unknown, ...). The original
# removed them wherever they occur, which also catches markers glued to a word (`더라구.l/`).
MARKER_RE = re.compile(r"[cnNulb]/|[*+]")
# libsndfile logs `data : <declared> (should be <present>)` when the data chunk is cut short.
TRUNCATED_DATA_RE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)

# Sample formats read as they are (libsndfile scales each to [-1, 1]); KEMDy20 itself is
# PCM_16. WAV's 8-bit PCM is unsigned (PCM_U8); PCM_S8 is AIFF's signed one. Compressed
# formats (u-law, A-law, ADPCM, GSM) are refused: they change the signal the features see.
WAV_SUBTYPES = ("PCM_U8", "PCM_S8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
# The range of every valence/arousal vote and of the totals (ten-rater means).
LABEL_RANGE = (1.0, 5.0)
# What `check_wav_content` may find; the first two are "no signal" (data.silent_audio decides).
NO_SIGNAL_REASONS = ("silent_audio", "constant_audio")

TOTAL_COLUMNS = ["numb", "start", "end", "segment_id", "emotion_total", "valence", "arousal"]
RATER_FIELDS = ("emotion", "valence", "arousal")
RATER_COLUMNS = [f"rater{i:02d}_{field}" for i in range(1, N_RATERS + 1) for field in RATER_FIELDS]
ANNOTATION_COLUMNS = TOTAL_COLUMNS + RATER_COLUMNS
NUMERIC_COLUMNS = ("start", "end", "valence", "arousal")

# What the two header rows must say at fixed positions (the rest names raters or is blank).
_HEADER1 = {0: "Numb", 1: "WAV", 3: "Segment ID", 4: "Total Evaluation"}
_HEADER2 = {1: "start", 2: "end", 4: "Emotion", 5: "Valence", 6: "Arousal"}


class CorpusFileError(KoemoInputError):
    """One corpus file is missing or unusable; `reason` is a short code for report counts."""

    def __init__(self, path: str | Path, reason: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.reason = reason
        self.problem = problem


class SegmentId(NamedTuple):
    session: int
    script: int
    user: int
    gender: str
    utt_index: int

    @property
    def speaker(self) -> str:
        return f"User{self.user:03d}{self.gender}"

    @property
    def dialogue(self) -> str:
        return f"script{self.script:02d}"


def parse_segment_id(segment_id: str) -> SegmentId:
    """`Sess01_script02_User002M_003` -> SegmentId(1, 2, 2, 'M', 3).

    The session in the id is not trusted for grouping (Sess17_eval.csv holds `Sess42...` ids);
    callers take the session from the annotation file name.
    """
    match = SEGMENT_ID_RE.match(str(segment_id).strip())
    if not match:
        raise KoemoInputError(
            f"segment id {segment_id!r} does not look like SessNN_scriptMM_UserNNN[F|M]_KKK")
    session, script, user, gender, utt = match.groups()
    return SegmentId(int(session), int(script), int(user), gender, int(utt))


def session_of_annotation_file(csv_path: str | Path) -> int:
    """`.../Sess17_eval.csv` -> 17."""
    match = ANNOTATION_FILE_RE.match(Path(csv_path).name)
    if not match:
        raise KoemoInputError(f"{csv_path}: annotation files must be named SessNN_eval.csv")
    return int(match.group(1))


def annotation_names(session: int) -> list[str]:
    """The annotation file of a session: `Sess02_eval.csv`."""
    return [f"Sess{session:02d}_eval.csv"]


def expected_annotation_name(name: str) -> str | None:
    """The annotation file a CSV named almost like one stands for (`Sess02_eval (1).csv`, a
    browser's second download, -> `Sess02_eval.csv`), or None."""
    match = _NEAR_ANNOTATION_NAME.match(name)
    return annotation_names(int(match.group(1)))[0] if match else None


def _check_header(csv_path: Path, rows: list[list[str]]) -> list[str]:
    if len(rows) < 2:
        raise CorpusFileError(csv_path, "malformed_csv",
                              "expected two header rows, file has fewer than two lines")
    for line_no, (row, expected) in enumerate(zip(rows[:2], (_HEADER1, _HEADER2)), start=1):
        if len(_without_stray_fields(row)) != N_COLUMNS:
            raise CorpusFileError(csv_path, "malformed_csv",
                                  f"header row {line_no} has {len(row)} columns, expected {N_COLUMNS}")
        for col, name in expected.items():
            if row[col].strip() != name:
                raise CorpusFileError(
                    csv_path, "malformed_csv",
                    f"header row {line_no} column {col} is {row[col]!r}, expected {name!r}")
    # Rater ids (Eval01F, ...) head every third column from 7 and differ between files.
    return [rows[0][7 + 3 * i].strip() for i in range(N_RATERS)]


def _without_stray_fields(cells: list[str]) -> list[str]:
    """The row without empty cells past column 37 (a trailing comma an editor left behind)."""
    if len(cells) > N_COLUMNS and not any(c.strip() for c in cells[N_COLUMNS:]):
        return cells[:N_COLUMNS]
    return cells


def read_csv_bytes(csv_path: Path, what: str = "annotation file") -> bytes:
    """The bytes of a corpus CSV; CorpusFileError (missing_csv, unreadable_csv) if it has none."""
    try:
        return csv_path.read_bytes()
    except FileNotFoundError as err:
        problem = (f"dangling symbolic link to {os.readlink(csv_path)}"
                   if csv_path.is_symlink() else f"{what} not found")
        raise CorpusFileError(csv_path, "missing_csv", problem) from err
    except OSError as err:      # permission denied, a directory, a link loop, an I/O error
        raise CorpusFileError(csv_path, "unreadable_csv",
                              f"cannot read the {what}: {err.strerror or err}") from err


def split_csv_lines(raw: bytes) -> list[tuple[int, list[str] | None, str]]:
    """(line number, cells or None, problem) of every physical line of a CSV in UTF-8.

    Each line is decoded and parsed on its own, so one bad byte or stray quote costs that
    line only (KEMDy20 fields never hold line breaks). A line that cannot be read has a
    problem (and its cells as far as they can be told, for messages).
    """
    lines = raw.splitlines()
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]  # a BOM, which some editors add when a file is re-saved
    out = []
    for line_no, line in enumerate(lines, start=1):
        problem = ""
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            problem = f"not UTF-8 text ({err.reason} at byte {err.start})"
        try:
            cells = next(csv.reader([line.decode("utf-8", "replace")]), [])
        except csv.Error as err:
            cells, problem = None, f"not valid CSV ({err})"
        out.append((line_no, cells, problem))
    return out


def _data_row(cells: list[str] | None, problem: str, line_no: int
              ) -> tuple[list[str] | None, str, str]:
    """(cells, "", repair) for a readable data row, (None, problem, "") for one that is not."""
    if problem or cells is None:        # no cells: a CSV error, which `problem` says
        return None, f"line {line_no}: {problem}", ""
    trimmed = _without_stray_fields(cells)
    if len(trimmed) != N_COLUMNS:
        return None, f"line {line_no} has {len(cells)} columns, expected {N_COLUMNS}", ""
    repair = (f"line {line_no}: {len(cells) - N_COLUMNS} empty field(s) after column "
              f"{N_COLUMNS} ignored (stray comma)") if len(trimmed) < len(cells) else ""
    return [c.strip() for c in trimmed], "", repair


def read_annotations(csv_path: str | Path) -> pd.DataFrame:
    """Read one `SessNN_eval.csv` into a DataFrame, in file order: `line` (line number in the
    file, for messages) then ANNOTATION_COLUMNS.

    The file has two header rows (row 1: Numb, WAV, Segment ID, Total Evaluation, rater ids;
    row 2: start, end, Emotion/Valence/Arousal per group) and 37 columns on every line. Rater
    groups become positional columns rater01_* .. rater10_* so files with different rater ids
    stack; the ids themselves are kept in `df.attrs["raters"]`. A file that cannot be read or
    whose headers are wrong raises CorpusFileError. Every data row that can be read is: one
    whose only fault is empty fields past column 37 (a stray comma) is kept and listed in
    `attrs["repaired_rows"]`; one that cannot be parsed (another column count, bad bytes) is
    left out and listed in `attrs["bad_rows"]` ({line, segment_id, problem}); `attrs["data_rows"]`
    counts all non-blank data lines. Unparsable numbers in a kept row become NaN so the caller
    can drop that row alone and say why.
    """
    csv_path = Path(csv_path)
    lines = split_csv_lines(read_csv_bytes(csv_path))
    header = [cells or [] for _, cells, _ in lines[:2]]
    bad = next((problem for _, _, problem in lines[:2] if problem), "")
    if bad:
        raise CorpusFileError(csv_path, "malformed_csv", f"header: {bad}")
    raters = _check_header(csv_path, header)
    data, numbers, bad_rows, repaired = [], [], [], []
    for line_no, cells, problem in lines[2:]:
        if not problem and not any(cell.strip() for cell in cells or ()):
            continue  # blank line
        row, bad, repair = _data_row(cells, problem, line_no)
        sid = (cells[3].strip() if cells and len(cells) > 3 else "")
        if row is None:
            bad_rows.append({"line": line_no, "segment_id": sid, "problem": bad})
            continue
        if repair:
            repaired.append({"line": line_no, "segment_id": sid, "problem": repair})
        data.append(row)
        numbers.append(line_no)
    frame = pd.DataFrame(data, columns=ANNOTATION_COLUMNS, dtype=str)
    frame.insert(0, "line", pd.Series(numbers, dtype="int64"))
    for col in NUMERIC_COLUMNS + tuple(c for c in RATER_COLUMNS if not c.endswith("_emotion")):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame.attrs.update(raters=raters, source=str(csv_path), bad_rows=bad_rows,
                       repaired_rows=repaired, data_rows=len(data) + len(bad_rows))
    return frame


def label_problem(valence: float, arousal: float) -> str:
    """Why a row's total valence/arousal cannot be a KEMDy20 label ("" when both can)."""
    low, high = LABEL_RANGE
    bad = [f"{name} {value!r}" for name, value in (("valence", valence), ("arousal", arousal))
           if not low <= value <= high]         # NaN and inf fail the comparison too
    return f"{' and '.join(bad)} outside {low:g}-{high:g}" if bad else ""


def _korean_share(text: str) -> float:
    """Share of the non-ASCII letters that are Hangul (1.0 for ASCII-only text). A wrong
    decoding of Korean bytes gives Hanja and symbols among the syllables (`萸먯빞`)."""
    wide = [ch for ch in text if ord(ch) > 127 and not ch.isspace() and ch != "\ufeff"]
    if not wide:
        return 1.0
    hangul = sum("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff"
                 or "\u3130" <= ch <= "\u318f" for ch in wide)
    return hangul / len(wide)


def decode_transcript(raw: bytes, preferred: TranscriptEncoding = "cp949"
                      ) -> tuple[str, TranscriptEncoding] | None:
    """(text, encoding) of transcript bytes, or None when no encoding decodes them.

    Decided by content, not by which codec raises first: UTF-8 bytes of Korean text often
    decode as cp949 too, into mojibake (`뭐야 그건.` -> `萸먯빞 洹멸굔.`). Of the decodings that
    succeed the most Korean-looking wins; a tie (e.g. ASCII) goes to `preferred`.
    """
    decoded: list[tuple[float, int, str, TranscriptEncoding]] = []
    for rank, candidate in enumerate(dict.fromkeys((preferred,) + TRANSCRIPT_ENCODINGS)):
        try:
            text = raw.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        decoded.append((_korean_share(text), -rank, text, candidate))
    if not decoded:
        return None
    _, _, text, used = max(decoded)
    return text, used


def _read_file_bytes(path: Path, kind: str, what: str) -> bytes:
    """The bytes of a row's file; CorpusFileError naming the path and why it has none."""
    problem = file_problem(path, kind, what)
    if problem is not None:
        raise problem
    try:
        return path.read_bytes()
    except OSError as err:
        raise CorpusFileError(path, f"unreadable_{kind}",
                              f"cannot read the {what}: {err.strerror or err}") from err


def file_problem(path: Path, kind: str, what: str) -> CorpusFileError | None:
    """Why `path` is not a readable regular file (missing, a dangling link or a link loop, a
    directory, no permission on its folder), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return CorpusFileError(path, "broken_link",
                                   f"dangling symbolic link to {os.readlink(path)}")
        return CorpusFileError(path, f"missing_{kind}", f"{what} not found")
    except OSError as err:
        if err.errno == errno.ELOOP:
            return CorpusFileError(path, "broken_link", "symbolic link loop")
        return CorpusFileError(path, f"unreadable_{kind}",
                               f"cannot read the {what}: {err.strerror or err}")
    if stat.S_ISDIR(mode):
        return CorpusFileError(path, "not_a_file", f"is a directory, not a {what}")
    return None


def read_transcript_with_encoding(path: str | Path, encoding: TranscriptEncoding = "cp949"
                                  ) -> tuple[str, TranscriptEncoding]:
    """First line of a transcript and the encoding that decoded it (decode_transcript).

    KEMDy20 transcripts are cp949; KEMDy19 and re-saved files are UTF-8. The caller records
    an encoding other than `encoding` so it never happens unnoticed.
    """
    path = Path(path)
    found = decode_transcript(_read_file_bytes(path, "txt", "transcript file"), encoding)
    if found is None:
        raise CorpusFileError(path, "undecodable_txt",
                              f"transcript is neither {encoding} nor utf-8 text")
    text, used = found
    return text.lstrip("\ufeff").splitlines()[0].strip() if text.strip() else "", used


def read_transcript(path: str | Path, encoding: TranscriptEncoding = "cp949") -> str:
    """First line of a transcript (decoded by content: decode_transcript), without the line break."""
    return read_transcript_with_encoding(path, encoding)[0]


def clean_transcript(text: str) -> str:
    """Remove the markers `c/ n/ N/ u/ l/ b/ * +` (also glued ones) and collapse spaces."""
    # Replace by a space, not nothing: `안녕n/하세요` must not glue two words together.
    return " ".join(MARKER_RE.sub(" ", text).split())


def check_wav(path: str | Path, sample_rate: int = SAMPLE_RATE) -> tuple[int, float]:
    """Header check of one utterance wav -> (n_samples, duration in seconds).

    Raises CorpusFileError for a missing, empty, corrupt or truncated file, another sample
    rate, more than one channel, or a sample format other than PCM (8 to 32-bit) or float
    (KEMDy20 is PCM 16-bit; a re-exported copy is read too, and `check_wav_content` checks its
    values). A link that leads nowhere, a folder or a file without read permission gets its
    own reason (file_problem), not "corrupt".
    """
    import soundfile as sf

    path = Path(path)
    problem = file_problem(path, "wav", "wav file")
    if problem is not None:
        raise problem
    if path.stat().st_size == 0:
        raise CorpusFileError(path, "empty_wav", "wav file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        _read_file_bytes(path, "wav", "wav file")  # no permission: say so, not "corrupt"
        raise CorpusFileError(path, "corrupt_wav", f"not a readable wav file ({err})") from err
    truncated = TRUNCATED_DATA_RE.search(info.extra_info or "")
    if truncated and int(truncated.group(1)) > int(truncated.group(2)):
        raise CorpusFileError(
            path, "truncated_wav",
            f"wav file is truncated: header declares {truncated.group(1)} data bytes, "
            f"{truncated.group(2)} present")
    if info.samplerate != sample_rate:
        raise CorpusFileError(path, "wrong_sample_rate",
                              f"sample rate is {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        raise CorpusFileError(path, "not_mono", f"wav has {info.channels} channels, expected mono")
    if info.subtype not in WAV_SUBTYPES:
        raise CorpusFileError(path, "unsupported_sample_format",
                              f"sample format is {info.subtype}, expected one of "
                              f"{', '.join(WAV_SUBTYPES)} (KEMDy20: PCM_16)")
    if info.frames == 0:
        raise CorpusFileError(path, "empty_wav", "wav file holds no samples")
    return int(info.frames), info.frames / info.samplerate


def check_wav_content(path: str | Path) -> CorpusFileError | None:
    """The problem with one wav's samples, or None: non-finite values (float files), digital
    silence (peak below one 16-bit step) or a constant signal (DC only, no waveform). Returned,
    not raised: prepare keeps or drops no-signal rows by `data.silent_audio`."""
    import soundfile as sf

    wave, _ = sf.read(str(path), dtype="float32", always_2d=False)
    if not np.isfinite(wave).all():
        bad = int((~np.isfinite(wave)).sum())
        return CorpusFileError(path, "nonfinite_audio",
                               f"{bad} of {wave.size} samples are NaN or infinite")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak < SILENCE_PEAK:          # for PCM_16 files: every sample is 0
        return CorpusFileError(path, "silent_audio",
                               f"digital silence: peak {peak:.1e} is below one 16-bit step")
    if float(wave.max() - wave.min()) == 0.0:
        return CorpusFileError(path, "constant_audio",
                               f"constant signal: every sample is {float(wave[0]):.6f} (no waveform)")
    return None
