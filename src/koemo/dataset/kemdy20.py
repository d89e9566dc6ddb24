"""Readers for KEMDy20's on-disk format (docs/kemdy20.md).

Each reader checks one kind of file and raises `CorpusFileError` (a KoemoInputError) whose
message names the file and the problem, plus a short `reason` code that `prepare` counts in
its report. `check_wav` reads the header only; `check_wav_content` reads one file's samples
at a time, so a scan of 13,000 files stays at constant memory.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from koemo.audio.io import SILENCE_PEAK
from koemo.errors import KoemoInputError

N_COLUMNS = 37
N_RATERS = 10
SEGMENT_ID_RE = re.compile(r"^Sess(\d{2})_script(0[1-6])_User(\d{3})([MF])_(\d{3})$")
ANNOTATION_FILE_RE = re.compile(r"^Sess(\d{2})_eval\.csv$")
# Markers of the transcripts (breath, laugh, noise, unintelligible, unknown, ...). The original
# removed them wherever they occur, which also catches markers glued to a word (`더라구.l/`).
MARKER_RE = re.compile(r"[cnNulb]/|[*+]")
# libsndfile logs `data : <declared> (should be <present>)` when the data chunk is cut short.
TRUNCATED_DATA_RE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)

# Sample formats read as they are; KEMDy20 itself is PCM_16.
WAV_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")
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


def _check_header(csv_path: Path, rows: list[list[str]]) -> list[str]:
    if len(rows) < 2:
        raise CorpusFileError(csv_path, "malformed_csv",
                              "expected two header rows, file has fewer than two lines")
    for line_no, (row, expected) in enumerate(zip(rows[:2], (_HEADER1, _HEADER2)), start=1):
        if len(row) != N_COLUMNS:
            raise CorpusFileError(csv_path, "malformed_csv",
                                  f"header row {line_no} has {len(row)} columns, expected {N_COLUMNS}")
        for col, name in expected.items():
            if row[col].strip() != name:
                raise CorpusFileError(
                    csv_path, "malformed_csv",
                    f"header row {line_no} column {col} is {row[col]!r}, expected {name!r}")
    # Rater ids (Eval01F, ...) head every third column from 7 and differ between files.
    return [rows[0][7 + 3 * i].strip() for i in range(N_RATERS)]


def read_annotations(csv_path: str | Path) -> pd.DataFrame:
    """Read one `SessNN_eval.csv` into a DataFrame, in file order: `line` (line number in the
    file, for messages) then ANNOTATION_COLUMNS.

    The file has two header rows (row 1: Numb, WAV, Segment ID, Total Evaluation, rater ids;
    row 2: start, end, Emotion/Valence/Arousal per group) and 37 columns on every line. Rater
    groups become positional columns rater01_* .. rater10_* so files with different rater ids
    stack; the ids themselves are kept in `df.attrs["raters"]`. Structural problems (encoding,
    headers, column counts) raise CorpusFileError; unparsable numbers in a data row become NaN
    so the caller can drop that row alone and say why.
    """
    csv_path = Path(csv_path)
    try:
        # utf-8-sig: tolerate a BOM, which some editors add when a file is re-saved.
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError as err:
        raise CorpusFileError(csv_path, "missing_csv", "annotation file not found") from err
    except UnicodeDecodeError as err:
        raise CorpusFileError(csv_path, "malformed_csv",
                              f"not UTF-8 text ({err.reason} at byte {err.start})") from err
    except csv.Error as err:
        raise CorpusFileError(csv_path, "malformed_csv", f"not valid CSV: {err}") from err
    raters = _check_header(csv_path, rows)
    data, lines = [], []
    for line_no, row in enumerate(rows[2:], start=3):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != N_COLUMNS:
            raise CorpusFileError(csv_path, "malformed_csv",
                                  f"line {line_no} has {len(row)} columns, expected {N_COLUMNS}")
        data.append([cell.strip() for cell in row])
        lines.append(line_no)
    frame = pd.DataFrame(data, columns=ANNOTATION_COLUMNS, dtype=str)
    frame.insert(0, "line", pd.Series(lines, dtype="int64"))
    for col in NUMERIC_COLUMNS + tuple(c for c in RATER_COLUMNS if not c.endswith("_emotion")):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame.attrs["raters"] = raters
    frame.attrs["source"] = str(csv_path)
    return frame


def read_transcript_with_encoding(path: str | Path, encoding: str = "cp949") -> tuple[str, str]:
    """First line of a transcript and the encoding that decoded it.

    KEMDy20 transcripts are cp949; KEMDy19 and re-saved files are UTF-8, so UTF-8 is the
    fallback. The caller records a fallback so it never happens unnoticed.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise CorpusFileError(path, "missing_txt", "transcript file not found") from err
    for candidate in dict.fromkeys((encoding, "utf-8")):
        try:
            text = raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        return text.lstrip("\ufeff").splitlines()[0].strip() if text.strip() else "", candidate
    raise CorpusFileError(path, "undecodable_txt",
                          f"transcript is neither {encoding} nor utf-8 text")


def read_transcript(path: str | Path, encoding: str = "cp949") -> str:
    """First line of a transcript (cp949 first, then UTF-8), without the line break."""
    return read_transcript_with_encoding(path, encoding)[0]


def clean_transcript(text: str) -> str:
    """Remove the markers `c/ n/ N/ u/ l/ b/ * +` (also glued ones) and collapse spaces."""
    # Replace by a space, not nothing: `안녕n/하세요` must not glue two words together.
    return " ".join(MARKER_RE.sub(" ", text).split())


def check_wav(path: str | Path, sample_rate: int = 16000) -> tuple[int, float]:
    """Header check of one utterance wav -> (n_samples, duration in seconds).

    Raises CorpusFileError for a missing, empty, corrupt or truncated file, another sample
    rate, more than one channel, or a sample format other than PCM or float (KEMDy20 is PCM
    16-bit; a re-exported float copy is read too, and `check_wav_content` checks its values).
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise CorpusFileError(path, "missing_wav", "wav file not found")
    if path.stat().st_size == 0:
        raise CorpusFileError(path, "empty_wav", "wav file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
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
