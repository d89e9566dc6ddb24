"""Real-file faults planted into a written synthetic corpus (`koemo synth --faults ...`).

Real copies of KEMDy20 are messier than a generated one: an editor leaves a trailing comma,
a row loses a column, transcripts are re-saved as UTF-8, a label is mistyped, a row's times
are swapped, a row is written twice, a wav is re-exported at 8 bits or replaced by a link that
leads nowhere, a session is recorded but not annotated. Each row fault damages fixed rows of
session 1 (which every corpus has), so the demo and the tests keep exercising what
`koemo prepare` does with them; docs/kemdy20.md lists what prepare reports for each.

Rows are addressed by their position among session 1's data rows (0 = first), each fault its
own rows, so any combination can be planted and the same faults always give the same bytes.
Repeated rows are added at the end of the file, so no other fault's row moves.

Two faults cost a whole session its labels and are planted only when named, never by `all`
(koemo.config.synthetic.FAULTS_ONLY_BY_NAME): the last session's annotation file left with its header rows only, or saved
under a browser's duplicate-download name (`Sess05_eval (1).csv`, which stops prepare unless
--skip-unreadable). In the demo (`faults: [all]`) either would take a tenth of the corpus out
of its session folds, or stop it; `all` plants `unannotated-session` instead: a session that
was recorded but has no annotation file, as in a partial download, which loses no row.
"""
from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import soundfile as sf

from koemo.config.synthetic import FAULTS_ONLY_BY_NAME, SYNTHETIC_FAULTS
from koemo.errors import KoemoInputError

# UTF-8 bytes of this sentence also decode as cp949 (into `萸먯빞 洹멸굔.`): a reader that takes
# the first codec that raises nothing turns it into mojibake.
MOJIBAKE_PRONE_TEXT = "뭐야 그건."
SESSION = 1


def _csv_path(root: Path) -> Path:
    return root / "annotation" / f"Sess{SESSION:02d}_eval.csv"


def _edit_rows(root: Path, edits: dict[int, Callable[[list[str]], list[str]]]) -> None:
    """Apply `edit(cells) -> cells` to data rows of session 1 (by position, headers skipped)."""
    path = _csv_path(root)
    lines = path.read_bytes().decode("utf-8").split("\n")
    for position, edit in edits.items():
        lines[2 + position] = ",".join(edit(lines[2 + position].split(",")))
    path.write_bytes("\n".join(lines).encode("utf-8"))


def _row(root: Path, position: int) -> list[str]:
    return _csv_path(root).read_text(encoding="utf-8").split("\n")[2 + position].split(",")


def _segment_id(root: Path, position: int) -> str:
    return _row(root, position)[3]


def _append_rows(root: Path, rows: list[list[str]]) -> None:
    path = _csv_path(root)
    text = path.read_bytes().decode("utf-8").rstrip("\n")
    path.write_bytes((text + "\n" + "\n".join(",".join(r) for r in rows) + "\n").encode("utf-8"))


def _last_annotation(root: Path) -> Path:
    return sorted((root / "annotation").glob("Sess[0-9][0-9]_eval.csv"))[-1]


def _file_of(root: Path, position: int, suffix: str) -> Path:
    return root / "wav" / f"Session{SESSION:02d}" / f"{_segment_id(root, position)}{suffix}"


def stray_comma(root: Path) -> None:
    _edit_rows(root, {0: lambda cells: cells + [""]})


def missing_column(root: Path) -> None:
    _edit_rows(root, {1: lambda cells: cells[:20] + cells[21:]})


def extra_column(root: Path) -> None:
    _edit_rows(root, {2: lambda cells: cells + ["3"]})


def out_of_range_labels(root: Path) -> None:
    def valence(cells: list[str]) -> list[str]:
        return cells[:5] + ["99"] + cells[6:]

    def arousal(cells: list[str]) -> list[str]:
        return cells[:6] + ["-7"] + cells[7:]
    _edit_rows(root, {3: valence, 4: arousal})


def utf8_transcripts(root: Path) -> None:
    """Every transcript of session 1 re-saved as UTF-8; the first says MOJIBAKE_PRONE_TEXT."""
    for k, txt in enumerate(sorted((root / "wav" / f"Session{SESSION:02d}").glob("*.txt"))):
        text = MOJIBAKE_PRONE_TEXT + "\n" if k == 0 else txt.read_bytes().decode("cp949")
        txt.write_bytes(text.encode("utf-8"))


def pcm8_wavs(root: Path) -> None:
    """Two wavs re-exported as 8-bit PCM (WAV's unsigned PCM_U8), which prepare reads."""
    for position in (5, 6):
        wav = _file_of(root, position, ".wav")
        wave, rate = sf.read(wav, dtype="float64")
        buffer = io.BytesIO()
        sf.write(buffer, wave, rate, subtype="PCM_U8", format="WAV")
        wav.write_bytes(buffer.getvalue())


def dangling_link(root: Path) -> None:
    """One wav replaced by a symbolic link to a file that is not there (a moved disk)."""
    wav = _file_of(root, 7, ".wav")
    wav.unlink()
    os.symlink(wav.with_name("moved-away.wav"), wav)


def start_after_end(root: Path) -> None:
    """Row 9's start and end swapped: the segment would end before it starts."""
    _edit_rows(root, {8: lambda cells: cells[:1] + [cells[2], cells[1]] + cells[3:]})


def repeated_row(root: Path) -> None:
    """Row 10 written a second time, unchanged."""
    _append_rows(root, [_row(root, 9)])


def conflicting_id(root: Path) -> None:
    """Row 11's Segment ID on a second row with another total emotion."""
    cells = _row(root, 10)
    cells[4] = "sad" if cells[4] != "sad" else "happy"
    _append_rows(root, [cells])


def unannotated_session(root: Path) -> None:
    """A session folder after the last one, holding copies of three of session 1's recordings
    (renamed to the new session's ids), with no annotation file: recorded, not annotated."""
    wav_root = root / "wav"
    new = max(int(p.name[7:]) for p in wav_root.glob("Session[0-9][0-9]")) + 1
    target = wav_root / f"Session{new:02d}"
    target.mkdir()
    source = wav_root / f"Session{SESSION:02d}"
    pairs = [w for w in sorted(source.glob("*.wav"))
             if w.is_file() and not w.is_symlink() and w.with_suffix(".txt").is_file()][:3]

    def renamed(name: str) -> str:      # Sess01_script01_User002M_001 -> Sess06_script01_User012M_001
        return re.sub(r"^Sess\d\d_(script\d\d)_User(\d{3})",
                      lambda m: f"Sess{new:02d}_{m[1]}_User{int(m[2]) + 2 * (new - SESSION):03d}",
                      name)
    for wav in pairs:
        for path in (wav, wav.with_suffix(".txt")):
            shutil.copyfile(path, target / renamed(path.name))


def header_only_session(root: Path) -> None:
    """The last session's annotation file keeps its two header rows only."""
    path = _last_annotation(root)
    path.write_bytes(b"\n".join(path.read_bytes().split(b"\n")[:2]) + b"\n")


def duplicate_download_name(root: Path) -> None:
    """The last session's annotation file under a browser's second-download name."""
    path = _last_annotation(root)
    path.rename(path.with_name(f"{path.stem} (1){path.suffix}"))


# name (one of koemo.config.synthetic.SYNTHETIC_FAULTS, synthetic.faults' choices) -> (planter,
# what it does and what prepare reports for it)
FAULTS = {
    "stray-comma": (stray_comma, "row 1 of Sess01_eval.csv ends with an extra comma: kept, "
                                 "note stray_field"),
    "missing-column": (missing_column, "row 2 lacks a column: dropped, malformed_row"),
    "extra-column": (extra_column, "row 3 has a 38th value: dropped, malformed_row"),
    "out-of-range-labels": (out_of_range_labels, "valence 99 in row 4, arousal -7 in row 5: "
                                                 "dropped, label_out_of_range"),
    "utf8-transcripts": (utf8_transcripts, "session 1's transcripts in UTF-8, one of them "
                                           f"{MOJIBAKE_PRONE_TEXT!r} (also valid cp949): read "
                                           "as UTF-8, note txt_encoding"),
    "pcm8-wavs": (pcm8_wavs, "the wavs of rows 6 and 7 as 8-bit PCM: read"),
    "dangling-link": (dangling_link, "the wav of row 8 is a link to nowhere: dropped, "
                                     "broken_link"),
    "start-after-end": (start_after_end, "row 9's start and end swapped: dropped, "
                                         "start_after_end"),
    "repeated-row": (repeated_row, "row 10 written again at the end of the file: the copy "
                                   "dropped, duplicate_segment_id; row 10 read"),
    "conflicting-id": (conflicting_id, "row 11's Segment ID again at the end of the file, with "
                                       "another emotion: both dropped, conflicting_segment_id"),
    "unannotated-session": (unannotated_session, "a session folder after the last, three "
                                                 "recordings, no annotation file: one "
                                                 "session_without_rows line"),
    "header-only-session": (header_only_session, "the last session's annotation file has its "
                                                 "header rows only: session_without_rows"),
    "duplicate-download-name": (duplicate_download_name, "the last session's annotation file "
                                                         "named `SessNN_eval (1).csv`: prepare "
                                                         "stops (bad_file_name) unless "
                                                         "--skip-unreadable"),
}


def parse_faults(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'stray-comma,pcm8-wavs' or 'all' (or a list of names) -> fault names, checked, in
    FAULTS order. 'all' is every fault but FAULTS_ONLY_BY_NAME's, which may be added by name
    ('all,header-only-session')."""
    if not spec:
        return []
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in SYNTHETIC_FAULTS and n != "all"]
    if unknown:
        raise KoemoInputError(f"unknown fault(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(SYNTHETIC_FAULTS)} or 'all' (all but "
                              f"{', '.join(FAULTS_ONLY_BY_NAME)})")
    wanted = set(names) | ({n for n in SYNTHETIC_FAULTS if n not in FAULTS_ONLY_BY_NAME}
                           if "all" in names else set())
    return [n for n in SYNTHETIC_FAULTS if n in wanted]


def plant_faults(root: Path, faults: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Plant the named faults (parse_faults) into the corpus at `root`; returns their names."""
    names = parse_faults(faults)
    for name in names:
        FAULTS[name][0](Path(root))
    return names
