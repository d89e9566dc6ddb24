"""Real-file faults planted into a written synthetic corpus (`koemo synth --faults ...`).

Real copies of KEMDy20 are messier than a generated one: an editor leaves a trailing comma,
a row loses a column, transcripts are re-saved as UTF-8, a label is mistyped, a wav is
re-exported at 8 bits or replaced by a link that leads nowhere. Each fault below damages
fixed rows of session 1 (which every corpus has), so the demo and the tests keep exercising
what `koemo prepare` does with them; docs/kemdy20.md lists what prepare reports for each.

Rows are addressed by their position among session 1's data rows (0 = first), each fault its
own rows, so any combination can be planted and the same faults always give the same bytes.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import soundfile as sf

from koemo.config.schema import SYNTHETIC_FAULTS
from koemo.errors import KoemoInputError

# UTF-8 bytes of this sentence also decode as cp949 (into `萸먯빞 洹멸굔.`): a reader that takes
# the first codec that raises nothing turns it into mojibake.
MOJIBAKE_PRONE_TEXT = "뭐야 그건."
SESSION = 1


def _csv_path(root: Path) -> Path:
    return root / "annotation" / f"Sess{SESSION:02d}_eval.csv"


def _edit_rows(root: Path, edits: dict[int, callable]) -> None:
    """Apply `edit(cells) -> cells` to data rows of session 1 (by position, headers skipped)."""
    path = _csv_path(root)
    lines = path.read_bytes().decode("utf-8").split("\n")
    for position, edit in edits.items():
        lines[2 + position] = ",".join(edit(lines[2 + position].split(",")))
    path.write_bytes("\n".join(lines).encode("utf-8"))


def _segment_id(root: Path, position: int) -> str:
    return _csv_path(root).read_text(encoding="utf-8").split("\n")[2 + position].split(",")[3]


def _file_of(root: Path, position: int, suffix: str) -> Path:
    return root / "wav" / f"Session{SESSION:02d}" / f"{_segment_id(root, position)}{suffix}"


def stray_comma(root: Path) -> None:
    _edit_rows(root, {0: lambda cells: cells + [""]})


def missing_column(root: Path) -> None:
    _edit_rows(root, {1: lambda cells: cells[:20] + cells[21:]})


def extra_column(root: Path) -> None:
    _edit_rows(root, {2: lambda cells: cells + ["3"]})


def out_of_range_labels(root: Path) -> None:
    def valence(cells):
        return cells[:5] + ["99"] + cells[6:]

    def arousal(cells):
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


# name (one of koemo.config.schema.SYNTHETIC_FAULTS, synthetic.faults' choices) -> (planter,
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
}


def parse_faults(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'stray-comma,pcm8-wavs' or 'all' (or a list of names) -> fault names, checked."""
    if not spec:
        return []
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return list(SYNTHETIC_FAULTS)
    unknown = [n for n in names if n not in SYNTHETIC_FAULTS]
    if unknown:
        raise KoemoInputError(f"unknown fault(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(SYNTHETIC_FAULTS)} or 'all'")
    return list(dict.fromkeys(names))


def plant_faults(root: Path, faults) -> list[str]:
    """Plant the named faults (parse_faults) into the corpus at `root`; returns their names."""
    names = parse_faults(faults)
    for name in names:
        FAULTS[name][0](Path(root))
    return names
