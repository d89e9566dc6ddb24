"""Where a KEMDy20-format corpus keeps its files: the annotation CSVs, the wav/SessionNN
folders (listed once, so finding a row's files costs no file-system call) and the stat of
every file for the input fingerprint. Links that lead nowhere and folders that cannot be
listed are recorded, never raised, so `prepare` can say which row or folder they cost."""
from __future__ import annotations

import os
from pathlib import Path

from koemo.dataset.kemdy20 import (ANNOTATION_FILE_PATTERN, CorpusFileError,
                                   session_of_annotation_file)
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
        others = f" (only {', '.join(p.name for p in misnamed)})" if misnamed else ""
        raise KoemoInputError(f"{folder}: no {ANNOTATION_FILE_PATTERN} annotation files{others}")
    return sorted(files), misnamed


def misnamed_annotation(path: Path, pattern: str, expected: str | None) -> CorpusFileError:
    """Why a CSV under annotation/ whose name names no session is not read. `prepare` stops on
    it as on an unreadable file (its rows would vanish unseen) unless --skip-unreadable.
    `expected`: the name it most likely stands for (e.g. `Sess02_eval.csv` for a browser's
    second download `Sess02_eval (1).csv`)."""
    if expected is None:
        hint = f"expected {pattern}"
    elif (path.parent / expected).exists():
        hint = (f"expected {pattern}; {expected} is there too, so this looks like a second copy "
                "of it (a browser's duplicate download): remove one")
    else:
        hint = f"expected {pattern}: rename it {expected}"
    return CorpusFileError(path, "bad_file_name",
                           f"annotation file name not recognised, so its session is unknown "
                           f"({hint})")


def corpus_file_stats(data_root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every file under annotation/ and wav/. A link that leads
    nowhere (dangling, a loop) counts with the link's own stat, a folder that cannot be listed
    as (-1, -1), and a folder reached twice through links once, so no corpus fault stops here."""
    stats, visited = [], set()
    pending = [("annotation", data_root / "annotation"), ("wav", data_root / "wav")]
    while pending:
        rel, folder = pending.pop()
        try:
            if not folder.is_dir():
                continue
            st = folder.stat()
            if (st.st_dev, st.st_ino) in visited:
                continue
            visited.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            stats.append((rel, -1, -1))
            continue
        for entry in entries:
            if is_folder(entry):
                pending.append((f"{rel}/{entry.name}", Path(entry.path)))
                continue
            try:
                st = entry.stat()
            except OSError:
                st = entry.stat(follow_symlinks=False)
            stats.append((f"{rel}/{entry.name}", st.st_size, st.st_mtime_ns))
    return sorted(stats)


def is_folder(entry: os.DirEntry) -> bool:
    """DirEntry.is_dir, False for a link loop (which raises)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


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
        self.names: dict[str, set[str]] = {}
        self.unreadable: dict[str, CorpusFileError] = {}   # folder -> why it cannot be listed
        for entry in os.scandir(self.root):
            if entry.name.startswith("Session") and is_folder(entry):
                self._list(entry)
        self.claimed: set[tuple[str, str]] = set()

    def _list(self, folder: os.DirEntry) -> None:
        # Links count even when they lead nowhere: the row check then says why.
        try:
            self.names[folder.name] = {f.name for f in os.scandir(folder.path)
                                       if not is_folder(f)}
        except OSError as err:
            self.names[folder.name] = set()
            self.unreadable[folder.name] = CorpusFileError(
                folder.path, "unreadable_folder",
                f"cannot list the session folder: {err.strerror or err}")

    def folder_problem(self, session: int) -> CorpusFileError | None:
        return self.unreadable.get(f"Session{session:02d}")

    def locate(self, session: int, segment_id: str, suffix: str) -> Path:
        folder = f"Session{session:02d}"
        present = self.names.get(folder, set())
        names = [f"{name}{suffix}" for name in candidate_names(segment_id, session)]
        name = next((n for n in names if n in present), names[0])
        self.claimed.add((folder, name))
        return self.root / folder / name

    def claim(self, session: int, segment_id: str) -> None:
        """The row's wav and txt are referred to, even when the row itself is dropped."""
        for suffix in (".wav", ".txt"):
            self.locate(session, segment_id, suffix)

    def unclaimed(self) -> list[Path]:
        return [self.root / folder / name for folder in sorted(self.names)
                for name in sorted(self.names[folder])
                if name.endswith((".wav", ".txt")) and (folder, name) not in self.claimed]
