"""The valuations table: which columns it has and checking every cell of it.

This module owns the input contract of a valuation map (required and optional columns, which
other columns are popup attributes, which are per-house money contributions) and
``checked_frame``, which reports every bad cell of the table with row, house_id and column in
one ``UserInputError`` (missing columns, empty or duplicate ids, coordinates out of range,
non-finite predictions, non-positive prices, contributions that are not numbers).
``Problems`` is shared with the thumbnail step, which reports unreadable image files the same
way. See docs/maps.md ("Input table").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from houseprice.errors import UserInputError

__all__ = [
    "BASE_PRICE_COLUMN",
    "CONTRIBUTION_PREFIX",
    "OPTIONAL_COLUMNS",
    "RANGE_COLUMNS",
    "REQUIRED_COLUMNS",
    "Problems",
    "attribute_columns",
    "checked_frame",
    "contribution_columns",
    "is_missing",
]

REQUIRED_COLUMNS = ("house_id", "latitude", "longitude", "predicted_price")
OPTIONAL_COLUMNS = ("price", "image", "heatmap", "used_visual")
# The calibrated price range (houseprice/valuation/calibration.py): the popup's range bar.
RANGE_COLUMNS = ("price_low", "price_high", "interval_level", "fsd", "confidence")
# Columns never listed as attributes in the popup (geometry/mask are machine data).
_NOT_ATTRIBUTES = frozenset(
    (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *RANGE_COLUMNS, "geometry", "mask")
)
_MAX_REPORTED_PROBLEMS = 25
# Money split of each prediction (houseprice/pricing/contributions.py): base_price +
# sum(contrib_<group>) == predicted_price. Shown as the popup's chart, never as attributes.
BASE_PRICE_COLUMN = "base_price"
CONTRIBUTION_PREFIX = "contrib_"


def _is_contribution(column: Any) -> bool:
    name = str(column)
    return name == BASE_PRICE_COLUMN or (
        name.startswith(CONTRIBUTION_PREFIX) and len(name) > len(CONTRIBUTION_PREFIX)
    )


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The columns listed in the popup as attributes, in table order."""
    return [c for c in frame.columns if c not in _NOT_ATTRIBUTES and not _is_contribution(c)]


def contribution_columns(frame: pd.DataFrame) -> list[str]:
    """The ``contrib_<group>`` columns in table order; empty unless ``base_price`` is there too."""
    if BASE_PRICE_COLUMN not in frame.columns:
        return []
    return [c for c in frame.columns if _is_contribution(c) and c != BASE_PRICE_COLUMN]


def is_missing(value: Any) -> bool:
    """True for None, NaN/NaT/pd.NA and blank strings (an absent optional cell)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class Problems:
    """Collects every bad cell so one error can report them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, row: int, house_id: Any, column: str, message: str) -> None:
        self.items.append(f"row {row} (house_id={house_id!r}), column {column!r}: {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:_MAX_REPORTED_PROBLEMS]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise UserInputError(
            f"valuations: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail
        )


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)


def _check_cells(
    ids: list[Any], raw: dict[str, list[Any]], parsed: dict[str, np.ndarray], problems: Problems
) -> None:
    """Report empty ids, coordinates out of range, non-finite predictions, bad prices."""
    for row, house_id in enumerate(ids):
        if is_missing(house_id):
            problems.add(row, house_id, "house_id", "is empty; every house needs an id")
        # Leaflet's Web Mercator view ends at about +/-85 degrees latitude
        for column, low, high in (("latitude", -85.0, 85.0), ("longitude", -180.0, 180.0)):
            value = parsed[column][row]
            if not (math.isfinite(value) and low <= value <= high):
                problems.add(
                    row,
                    house_id,
                    column,
                    f"value {raw[column][row]!r} is not a number in [{low:g}, {high:g}]",
                )
        if not math.isfinite(parsed["predicted_price"][row]):
            problems.add(
                row,
                house_id,
                "predicted_price",
                f"value {raw['predicted_price'][row]!r} is not a finite number",
            )
        price_raw = raw["price"][row]
        price = parsed["price"][row]
        if not is_missing(price_raw) and not (math.isfinite(price) and price > 0):
            problems.add(
                row,
                house_id,
                "price",
                f"value {price_raw!r} is not a positive number (use NaN for unknown)",
            )


def _check_contributions(
    frame: pd.DataFrame, ids: list[Any], problems: Problems
) -> dict[str, np.ndarray]:
    """Parse base_price (finite, > 0) and contrib_* (finite, or NaN for "not used")."""
    columns = contribution_columns(frame)
    parsed: dict[str, np.ndarray] = {}
    if not columns:
        return parsed
    for column in (BASE_PRICE_COLUMN, *columns):
        raw = frame[column].tolist()
        values = _numeric(frame, column)
        for row, (value, cell) in enumerate(zip(values, raw, strict=True)):
            if column == BASE_PRICE_COLUMN:
                bad = not (math.isfinite(value) and value > 0)
            else:
                bad = not math.isfinite(value) and not is_missing(cell)
            if bad:
                problems.add(
                    row, ids[row], column, f"value {cell!r} is not a money amount (NaN if unused)"
                )
        parsed[column] = values
    return parsed


def _check_unique_ids(ids: list[Any], problems: Problems) -> None:
    seen: dict[str, int] = {}
    for row, house_id in enumerate(ids):
        if is_missing(house_id):
            continue
        key = str(house_id)
        if key in seen:
            problems.add(row, house_id, "house_id", f"duplicates row {seen[key]}")
        else:
            seen[key] = row


def checked_frame(valuations: pd.DataFrame) -> pd.DataFrame:
    """Validate the table; return a copy with numeric columns parsed and optional ones added.

    Raises:
        TypeError: ``valuations`` is not a DataFrame.
        UserInputError: missing columns, no rows, or bad cells (all listed at once).
    """
    if not isinstance(valuations, pd.DataFrame):
        raise TypeError(f"valuations must be a pandas DataFrame, got {type(valuations).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in valuations.columns]
    if missing:
        raise UserInputError(
            f"valuations is missing column(s) {missing}; it has "
            f"{list(map(str, valuations.columns))}"
        )
    if len(valuations) == 0:
        raise UserInputError("valuations has no rows: nothing to put on the map")

    frame = valuations.reset_index(drop=True).copy()
    for column in ("price", "image", "heatmap"):
        if column not in frame.columns:
            frame[column] = None
    problems = Problems()
    ids = frame["house_id"].tolist()
    raw = {c: frame[c].tolist() for c in ("latitude", "longitude", "predicted_price", "price")}
    parsed = {c: _numeric(frame, c) for c in raw}
    _check_cells(ids, raw, parsed, problems)
    _check_unique_ids(ids, problems)
    parsed.update(_check_contributions(frame, ids, problems))
    problems.raise_if_any()
    for column, values in parsed.items():
        frame[column] = values
    frame["house_id"] = [str(v) for v in ids]
    return frame
