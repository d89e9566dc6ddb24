"""Errors that mean "your input is wrong", as opposed to bugs. The CLI prints them as one line."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


class KoemoInputError(ValueError):
    """Bad input from the user: the message names the file (or value) and the problem."""


class CheckpointError(KoemoInputError):
    """A checkpoint is missing, corrupt, or does not match the model/config asked for."""


class BiosignalsNotAvailable(KoemoInputError):
    """The data root lacks the folder of a requested bio-signal (KEMDy20 is often downloaded as
    audio + text only). Callers that can go on without bio-signals catch this one; `missing`
    and `found` are the signal folders looked for that are absent and present."""

    def __init__(self, data_root: str | Path, missing: Iterable[Path], found: Iterable[Path] = ()):
        self.data_root = data_root
        self.missing = list(missing)
        self.found = list(found)
        message = ("bio-signals not available: looked for these folders and did not find them: "
                   + ", ".join(str(p) for p in self.missing))
        if self.found:
            message += (" (present: " + ", ".join(str(p) for p in self.found)
                        + "; analyse only those: --signals, or biosignals.signals in the config)")
        else:
            message += " (this KEMDy20 copy has no wrist bio-signals, e.g. an audio + text download)"
        super().__init__(message)


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop, raised as this by the CLI) ended the work.
    A KeyboardInterrupt, so every `finally` and every cleanup that expects Ctrl-C runs; the CLI
    prints one line naming the signal and `what` stopped (a notebook, a run), and exits with
    128 + the signal number."""

    def __init__(self, signum: int, what: str = ""):
        super().__init__(signum, what)
        self.signum, self.what = int(signum), what

    @classmethod
    def naming(cls, err: KeyboardInterrupt, what: str) -> "Interrupted":
        """`err` (Ctrl-C's KeyboardInterrupt, or an Interrupted) as an Interrupted naming `what`,
        unless something nearer to the work already named it."""
        import signal

        signum = getattr(err, "signum", signal.SIGINT)
        return cls(signum, getattr(err, "what", "") or what)
