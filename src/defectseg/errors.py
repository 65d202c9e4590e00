"""Errors a user can fix, reported as one line instead of a traceback."""

from pathlib import Path


class DefectsegError(Exception):
    """An expected failure caused by input, params or environment, not by a bug."""


class DataError(DefectsegError):
    """A problem with one input file or folder; the message names it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ImageTooLargeError(DataError):
    """An image whose header announces more pixels than allowed: refused before it is decoded."""


class ParamsError(DefectsegError):
    """An invalid ``params.yaml``; the message names the key."""
