"""Errors that mean "your input is wrong", as opposed to bugs. The CLI prints them as one line."""


class KoemoInputError(ValueError):
    """Bad input from the user: the message names the file (or value) and the problem."""


class CheckpointError(KoemoInputError):
    """A checkpoint is missing, corrupt, or does not match the model/config asked for."""


class BiosignalsNotAvailable(KoemoInputError):
    """The data root lacks the folder of a requested bio-signal (KEMDy20 is often downloaded as
    audio + text only). Callers that can go on without bio-signals catch this one; `missing`
    and `found` are the signal folders looked for that are absent and present."""

    def __init__(self, data_root, missing, found=()):
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
