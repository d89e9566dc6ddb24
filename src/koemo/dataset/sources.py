"""Where a corpus' annotation rows and files are, for `koemo prepare` (KEMDy20 or KEMDy19).

`open_corpus` picks the corpus (data.corpus, or recognised from its files) and returns what
differs between the two: the annotation rows in KEMDy20's column shape, a finder of each row's
wav/txt, the Segment ID parser and the transcript encoding and cleaner. The row loop that checks
and labels them is shared (koemo.dataset.prepare.scan_corpus). `out` is prepare's collector of
dropped rows, problem files and notes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple

from koemo.dataset import kemdy19
from koemo.dataset.corpora import corpus_of
from koemo.dataset.kemdy20 import (CorpusFileError, clean_transcript, parse_segment_id,
                                   read_annotations, session_of_annotation_file)
from koemo.errors import KoemoInputError


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


class _Corpus(NamedTuple):
    """What differs between the corpora; the row loop of scan_corpus is shared."""
    name: str
    frames: list            # (session, annotation file, rows in KEMDy20's column shape)
    folders: object         # locate(session, segment_id, suffix) and unclaimed()
    parse: Callable
    encoding: str
    clean: Callable
    counts: dict            # corpus-specific counts for the report


def _kemdy20_frames(data_root: Path, out) -> list:
    files, misnamed = annotation_files(data_root)
    for path in misnamed:
        out.problem_file(path, "bad_file_name", f"{path}: not named SessNN_eval.csv; skipped")
    frames = []
    for session, csv_path in files:
        try:
            frames.append((session, csv_path, read_annotations(csv_path)))
        except CorpusFileError as err:
            out.problem_file(csv_path, err.reason, str(err))
    return frames


def open_corpus(data_root: Path, data: dict, out) -> _Corpus:
    """The readers of the corpus under `data_root` (data.corpus, or detected from its files)."""
    name = corpus_of(data_root, data)
    if name == "kemdy19":
        frames, counts, listed = kemdy19.annotation_frames(
            data_root, data.get("kemdy19_labels", "own"), out)
        return _Corpus(name, frames, kemdy19.DialogueFolders(data_root, listed, out),
                       kemdy19.parse_segment_id, kemdy19.TRANSCRIPT_ENCODING,
                       kemdy19.clean_transcript, {"kemdy19": counts})
    return _Corpus(name, _kemdy20_frames(data_root, out), WavFolders(data_root),
                   parse_segment_id, data.get("transcript_encoding", "cp949"), clean_transcript, {})
