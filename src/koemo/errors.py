"""Errors that mean "your input is wrong", as opposed to bugs. The CLI prints them as one line."""


class KoemoInputError(ValueError):
    """Bad input from the user: the message names the file (or value) and the problem."""


class CheckpointError(KoemoInputError):
    """A checkpoint is missing, corrupt, or does not match the model/config asked for."""
