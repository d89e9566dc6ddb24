"""What `koemo prepare` collects while it reads a corpus: dropped rows, problem files, session
problems, rows without signal and notes, each with its reason (the prepare report is written
from them). With `strict` (--strict) the first input problem stops prepare instead.

The corpus readers (koemo.dataset.prepare, .kemdy19, .sources, .sessions) report to one
`Collector`; it lives apart from prepare so that they can name it without importing prepare.
"""
from __future__ import annotations

from pathlib import Path

from koemo.dataset.kemdy20 import CorpusFileError
from koemo.errors import KoemoInputError


class Collector:
    """Dropped rows, problem files and notes; raises at the first input problem when strict."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.dropped: list[dict] = []
        self.files: list[dict] = []
        self.notes: list[dict] = []
        self.no_signal: list[dict] = []
        self.sessions: list[dict] = []

    def _stop_if_strict(self, message: str) -> None:
        if self.strict:
            raise KoemoInputError(f"{message} (--strict: stopping at the first input problem)")

    def drop_row(self, segment_id: str, session: int, file: str | Path, reason: str, message: str,
                 input_problem: bool = True) -> None:
        if input_problem:
            self._stop_if_strict(message)
        self.dropped.append({"segment_id": segment_id, "session": session, "file": str(file),
                             "reason": reason, "message": message, "input_problem": input_problem})

    def problem_file(self, file: str | Path, reason: str, message: str) -> None:
        self._stop_if_strict(message)
        self.files.append({"file": str(file), "reason": reason, "message": message})

    def session_problem(self, folder: str | Path, reason: str, message: str, **counts: int) -> None:
        """A session folder holding recordings without any annotation row (dataset.sessions)."""
        self._stop_if_strict(message)
        self.sessions.append({"folder": str(folder), "reason": reason, "message": message,
                              **counts})

    def no_signal_row(self, segment_id: str, session: int, label: str, err: CorpusFileError) -> None:
        """A kept row whose recording holds no signal (see module docstring)."""
        self._stop_if_strict(str(err))
        self.no_signal.append({"segment_id": segment_id, "session": session, "label": label,
                               "file": str(err.path), "reason": err.reason, "message": str(err)})

    def note(self, segment_id: str | None, file: str | Path, reason: str, message: str) -> None:
        self.notes.append({"segment_id": segment_id, "file": str(file), "reason": reason,
                           "message": message})
