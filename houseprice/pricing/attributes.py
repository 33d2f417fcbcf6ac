"""Attribute sets (the paper's letters) and the time-sorted train/test split.

G = latitude + longitude, Bed = bedrooms, Bath = bathrooms, T = sale time in months since
1970-01, A = area_sqft. Extra columns of a table may be named too (numeric only).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from houseprice.errors import UserInputError

LETTERS: dict[str, tuple[str, ...]] = {
    "G": ("latitude", "longitude"),
    "Bed": ("bedrooms",),
    "Bath": ("bathrooms",),
    "T": ("t_months",),
    "A": ("area_sqft",),
}
FULL_SET: tuple[str, ...] = ("G", "Bed", "Bath", "T", "A")
#: The attribute sets of Chen et al. Table 2 ("none" = visual features only).
TABLE2_SETS: tuple[tuple[str, ...], ...] = (
    (),
    ("G",),
    ("G", "Bed", "Bath"),
    ("G", "Bed", "Bath", "T"),
    ("G", "A"),
    FULL_SET,
)


def set_name(letters: tuple[str, ...]) -> str:
    """``("G", "Bed")`` → ``"G,Bed"``; the empty set is ``"none"``."""
    return ",".join(letters) if letters else "none"


#: Columns that can never be attributes: the target, identifiers, geometry and files.
NOT_ATTRIBUTES = frozenset(
    ("price", "house_id", "geometry", "image", "mask", "sold_date", "latitude", "longitude")
)


def parse_attribute_set(text: str, extra_columns: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Parse ``"G,Bed,Bath,T,A"`` into letters / extra column names; errors say what is wanted.

    ``"none"`` (or an empty text) is the empty set: Table 2's visual-features-only row.

    The target (``price``), the id, geometry and file columns can never be attributes (the
    contract's raw columns are reached through their letters: G, Bed, Bath, T, A).
    """
    text = text.strip()
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items or [i.lower() for i in items] == ["none"]:
        return ()  # visual features only (Table 2's "none" row)
    forbidden = [s for s in items if s in NOT_ATTRIBUTES or s.lower() == "price"]
    if forbidden:
        raise UserInputError(
            f"--attributes may not include {', '.join(forbidden)}: the target, ids, dates, "
            "coordinates and file columns are not attributes (use the letters G and T for "
            "location and sale time)"
        )
    bad = [s for s in items if s not in LETTERS and s not in extra_columns]
    if bad:
        raise UserInputError(
            f"unknown attribute(s) {', '.join(bad)}; use letters "
            f"{', '.join(LETTERS)} or numeric extra columns of the table"
        )
    if len(set(items)) != len(items):
        raise UserInputError(f"attribute set {text!r} names an attribute twice")
    return items


def months_since_epoch(dates: pd.Series) -> pd.Series:
    """Sale time T: months since 1970-01, with the day as a fraction of the month."""
    d = pd.to_datetime(dates)
    return ((d.dt.year - 1970) * 12 + (d.dt.month - 1) + (d.dt.day - 1) / 31.0).astype("float64")


def feature_columns(letters: tuple[str, ...]) -> list[str]:
    cols: list[str] = []
    for s in letters:
        cols.extend(LETTERS.get(s, (s,)))
    return cols


def attribute_frame(records: pd.DataFrame, letters: tuple[str, ...]) -> pd.DataFrame:
    """Numeric feature matrix for an attribute set (missing values stay NaN)."""
    out = pd.DataFrame(index=records.index)
    for col in feature_columns(letters):
        if col == "t_months":
            if "sold_date" not in records.columns:
                raise UserInputError("attribute T needs the 'sold_date' column")
            out[col] = months_since_epoch(records["sold_date"])
        elif col not in records.columns:
            raise UserInputError(f"attribute column {col!r} is not in the table")
        else:
            v = pd.to_numeric(records[col], errors="coerce")
            bad = v.isna() & records[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
                raise UserInputError(
                    f"attribute column {col!r} must be numeric (row {row}: "
                    f"{records[col].iloc[row - 1]!r})"
                )
            out[col] = v.astype("float64")
    return out


def time_split(records: pd.DataFrame, train_fraction: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Sort by sold_date (stable, ties by house_id) and cut: first 60% train, rest test."""
    if records["sold_date"].isna().any():
        n = int(records["sold_date"].isna().sum())
        raise UserInputError(f"{n} rows have no sold_date; the time split needs every sale date")
    order = np.lexsort(
        (
            records["house_id"].astype(str).to_numpy(),
            pd.to_datetime(records["sold_date"]).to_numpy(),
        )
    )
    n_train = int(np.floor(len(records) * train_fraction))
    if n_train < 2 or len(records) - n_train < 1:
        raise UserInputError(
            f"{len(records)} rows are too few for a {train_fraction:.0%} time split"
        )
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def visual_columns(dim: int) -> list[str]:
    """Names of the ``dim`` visual-feature columns: ``vf0 … vf{dim-1}``."""
    return [f"vf{i}" for i in range(dim)]


def with_visual(x_attr: pd.DataFrame, feats: np.ndarray) -> pd.DataFrame:
    """The attribute frame plus visual-feature columns ``(N, d)`` (NaN where no tile)."""
    x = x_attr.copy()
    for name, col in zip(visual_columns(feats.shape[1]), feats.T, strict=True):
        x[name] = col
    return x
