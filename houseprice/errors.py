"""The error types of houseprice: what is the user's to fix, and what is a bug.

``UserInputError`` (and its ``FormatError``) is raised for anything a user can fix: a bad
table, a missing file, an option out of range, a model folder that is not one. The CLI prints
its message on one line and exits with code 2. Every other exception is a bug in houseprice
and keeps its traceback (exit 1). ``UserInputError`` also derives from ``ValueError`` so that
library callers that already catch ``ValueError`` keep working.
"""

from __future__ import annotations


class HousepriceError(Exception):
    """Base class of every error houseprice raises on purpose."""


class UserInputError(HousepriceError, ValueError):
    """Bad input the user can fix (file, row, column, option); the CLI exits with code 2."""


class FormatError(UserInputError):
    """A model folder, dataset folder, report or CUB folder is not in the expected format."""


class OutputExistsError(UserInputError, FileExistsError):
    """An output path exists and replacing it was not asked for or is not safe."""


__all__ = ["FormatError", "HousepriceError", "OutputExistsError", "UserInputError"]
