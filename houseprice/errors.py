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


#: The most characters of one user value (a cell, a column name, a list of names) that an
#: error message quotes: a 50 MB header line must not become a 50 MB message.
QUOTE_LIMIT = 200


def shorten(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``str(value)`` cut to ``limit`` characters, saying how much was left out."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit:,} more characters]"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut like :func:`shorten` (the cut is outside the quotes)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... [{len(value) - limit:,} more characters]"
    return shorten(repr(value), limit + 2)


__all__ = [
    "QUOTE_LIMIT",
    "FormatError",
    "HousepriceError",
    "OutputExistsError",
    "UserInputError",
    "quote",
    "shorten",
]
