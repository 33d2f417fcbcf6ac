"""Reading and validating house-record tables (the contract in data_specs/houses.md).

``load_records`` reads CSV / Parquet / GeoParquet into a GeoDataFrame in EPSG:4326 after
checking every rule of :mod:`houseprice.data.houses.schema`. All problems are collected and raised
together in one :class:`RecordsValidationError` (row, column, value, rule), so a user fixes a
file in one pass. Missing optional values stay missing (NaN / NA); no row is ever dropped.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from houseprice.data.houses.schema import (
    COLUMNS_BY_NAME,
    HOUSE_COLUMNS,
    TRAIN_REQUIRED,
)
from houseprice.errors import FormatError, UserInputError, quote, shorten

Purpose = Literal["train", "predict", "any"]
_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
TABLE_SUFFIXES = (".csv", ".parquet", ".geoparquet", ".pq")
#: The most columns a house table may have (the contract's ten plus extras kept as
#: attributes); a wider file is refused before its rows are read.
MAX_COLUMNS = 2_000
#: The largest whole number accepted in an integer column (2^53: exact as a float).
MAX_INTEGER = 2**53


@dataclass(frozen=True)
class Problem:
    """One violated rule: ``row`` is the 1-based data row (None for table-level problems)."""

    row: int | None
    column: str
    value: Any
    rule: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "table"
        return f"{where}, column {quote(self.column)}, value {quote(self.value)}: {self.rule}"


class RecordsValidationError(UserInputError):
    """Raised with every problem found in a table (not just the first)."""

    def __init__(self, source: str | Path, problems: list[Problem], max_listed: int = 200):
        self.source = str(source)
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems[:max_listed])
        more = len(problems) - max_listed
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{self.source}: {len(problems)} problem(s) in the house records "
            f"(rows are 1-based data rows; CSV line = row + 1):\n{listed}{tail}"
        )


class DatasetError(FormatError):
    """A dataset folder or its dataset.json is malformed."""


def _first_non_utf8_line(path: Path) -> tuple[int, int, int]:
    """(1-based line, 1-based byte column, byte value) of the first byte that is not UTF-8."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return lineno, e.start + 1, line[e.start]
    return 0, 0, 0


def check_width(path: str | Path, n_columns: int) -> None:
    """Refuse a table of more than :data:`MAX_COLUMNS` columns (before reading its rows)."""
    if n_columns > MAX_COLUMNS:
        raise UserInputError(
            f"{path}: {n_columns:,} columns; houseprice reads at most {MAX_COLUMNS:,} (the "
            "house columns plus extra attributes); drop the columns you do not need"
        )


def _csv_width(path: Path) -> int:
    """The number of fields in a CSV file's header row (0 when the csv module cannot tell),
    read without pandas (which takes ~30 s to parse a header of 100,000 names)."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        try:
            return len(next(csv.reader(fh), []))
        except csv.Error:  # e.g. a single field over csv.field_size_limit(): pandas copes
            return 0


def _read_csv(path: Path) -> pd.DataFrame:
    """Every CSV cell as text; encoding, empty-file and ragged-row problems name the file."""
    try:
        # Everything as text first so validation sees the user's raw values.
        check_width(path, _csv_width(path))
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    except UnicodeDecodeError:
        line, col, byte = _first_non_utf8_line(path)
        raise UserInputError(
            f"{path}: line {line} is not UTF-8 text (byte 0x{byte:02x} at byte {col}); "
            "save the table as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)"
        ) from None
    except pd.errors.EmptyDataError:
        raise UserInputError(
            f"{path}: the file is empty; expected a header row naming the columns "
            "(data_specs/houses.md)"
        ) from None
    except pd.errors.ParserError as e:
        raise UserInputError(
            f"{path}: not a well-formed CSV table ({shorten(str(e).strip())}); every row needs "
            "as many fields as the header"
        ) from None


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV / Parquet / GeoParquet table without interpreting any values."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"{path}: no such file")
    if not path.is_file():
        raise UserInputError(f"{path}: not a regular file (expected a CSV or Parquet table)")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".parquet", ".geoparquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            check_width(path, len(schema.names))
            meta = schema.metadata or {}
            if b"geo" in meta:
                gdf = gpd.read_parquet(path)
                return pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
            return pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise UserInputError(f"{path}: not a readable Parquet table ({e})") from None
    raise UserInputError(
        f"{path}: unsupported table format {suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}"
    )


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _to_number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_relative_path(root: Path | None, raw: str) -> str | None:
    """Return a rule violation for a relative tile path, or None when it is acceptable."""
    return path_checker(root)(raw)


def path_checker(root: Path | None) -> Callable[[str], str | None]:
    """:func:`check_relative_path` for many paths under one ``root``, fast.

    The folder part of each path is resolved once per distinct folder (tiles sit in a few
    folders), and only the last component is looked at per path (a symlink there is followed):
    ``realpath(dir / name) == realpath(dir) / name`` unless ``name`` is a symlink.
    """
    base = str(root.resolve()) if root is not None else None
    inside = (base or "").rstrip(os.sep) + os.sep  # paths under ``base`` start with this
    folders: dict[str, str] = {}

    def resolve(path: str) -> str:
        folder, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        real = folders.get(folder)
        if real is None:
            real = folders[folder] = os.path.realpath(folder)
        leaf = os.path.join(real, name)
        return os.path.realpath(leaf) if os.path.islink(leaf) else leaf

    def check(raw: str) -> str | None:
        if "\0" in raw:
            return "a path may not contain a NUL byte"
        if Path(raw).is_absolute():
            return "must be a relative path inside the dataset folder (absolute paths are refused)"
        if base is None:
            return None
        resolved = resolve(os.path.join(base, raw))
        if resolved != base and not resolved.startswith(inside):
            return "path escapes the dataset folder (no '..' out of it, no symlinks out of it)"
        return None

    return check


def _date_ok(s: str) -> bool:
    """Whether ``s`` (already stripped) is a real date written YYYY-MM or YYYY-MM-DD."""
    if not _DATE_RE.match(s):
        return False
    return pd.to_datetime(s[:10] if len(s) > 7 else s + "-01", errors="coerce") is not pd.NaT


def validate_frame(
    df: pd.DataFrame, *, root: Path | None = None, purpose: Purpose = "any"
) -> list[Problem]:
    """Check every contract rule on a raw frame; return all problems (empty list = valid)."""
    problems: list[Problem] = []
    if len(df) == 0:
        problems.append(Problem(None, "(rows)", None, "the table has a header but no rows"))
    required = {c.name for c in HOUSE_COLUMNS if c.required}
    if purpose == "train":
        required |= set(TRAIN_REQUIRED)
    for name in sorted(required - set(df.columns)):
        problems.append(
            Problem(
                None,
                name,
                None,
                f"required column {name!r} is missing "
                f"(columns found: {shorten(', '.join(map(str, df.columns)))})",
            )
        )
    seen: dict[str, int] = {}
    check_path = path_checker(root)
    dates: dict[str, bool] = {}  # a county's sales share a few thousand dates
    for col in HOUSE_COLUMNS:
        if col.name not in df.columns:
            continue
        must = col.name in required
        values = df[col.name].tolist()
        for i, v in enumerate(values, start=1):
            if _is_missing(v):
                if must:
                    problems.append(Problem(i, col.name, None, "value is required"))
                continue
            if col.type == "string":
                s = str(v).strip()
                if col.unique:
                    if s in seen:
                        problems.append(
                            Problem(i, col.name, s, f"must be unique (first seen in row {seen[s]})")
                        )
                    else:
                        seen[s] = i
                continue
            if col.type == "date":
                s = str(v).strip()
                if isinstance(v, pd.Timestamp | np.datetime64):
                    continue
                ok = dates.get(s)
                if ok is None:
                    ok = dates[s] = _date_ok(s)
                if not ok:
                    problems.append(
                        Problem(i, col.name, v, "expected a date YYYY-MM or YYYY-MM-DD")
                    )
                continue
            if col.type == "path":
                rule = check_path(str(v).strip())
                if rule:
                    problems.append(Problem(i, col.name, v, rule))
                continue
            x = _to_number(v)
            if x is None:
                problems.append(Problem(i, col.name, v, f"expected a finite {col.type}"))
                continue
            if col.type == "integer" and abs(x) > MAX_INTEGER:
                problems.append(
                    Problem(i, col.name, v, f"expected a whole number of at most 2^53 ({x:g})")
                )
                continue
            if col.type == "integer" and x != int(x):
                problems.append(Problem(i, col.name, v, "expected a whole number"))
            if col.minimum is not None and x < col.minimum:
                problems.append(Problem(i, col.name, v, f"must be >= {col.minimum:g}"))
            if col.maximum is not None and x > col.maximum:
                problems.append(Problem(i, col.name, v, f"must be <= {col.maximum:g}"))
            if col.exclusive_minimum is not None and x <= col.exclusive_minimum:
                problems.append(Problem(i, col.name, v, f"must be > {col.exclusive_minimum:g}"))
    return problems


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Turn validated raw values into typed columns (missing stays missing)."""
    out = df.copy()
    out["house_id"] = out["house_id"].astype(str).str.strip()
    for name in ("latitude", "longitude", "bathrooms", "area_sqft", "price"):
        if name in out.columns:
            out[name] = pd.to_numeric(out[name], errors="raise").astype("float64")
    if "bedrooms" in out.columns:
        out["bedrooms"] = pd.to_numeric(out["bedrooms"], errors="raise").astype("Int64")
    if "sold_date" in out.columns:
        s = out["sold_date"]
        if not pd.api.types.is_datetime64_any_dtype(s):
            s = s.map(
                lambda v: (
                    None
                    if _is_missing(v)
                    else (
                        str(v).strip() + "-01" if len(str(v).strip()) == 7 else str(v).strip()[:10]
                    )
                )
            )
        out["sold_date"] = pd.to_datetime(s, errors="raise")
    for name in ("image", "mask"):
        if name in out.columns:
            vals = [None if _is_missing(v) else str(v).strip() for v in out[name]]
            out[name] = pd.Series(vals, index=out.index, dtype=object)
    return out


def records_frame(
    raw: pd.DataFrame,
    *,
    root: str | Path | None = None,
    purpose: Purpose = "any",
    source: str | Path = "records",
) -> gpd.GeoDataFrame:
    """Validate a raw record frame and return it typed, as a GeoDataFrame (EPSG:4326).

    Raises :class:`RecordsValidationError` naming ``source`` and listing every problem.
    """
    root_path = Path(root) if root is not None else None
    problems = validate_frame(raw, root=root_path, purpose=purpose)
    if problems:
        raise RecordsValidationError(source, problems)
    df = _coerce(raw)
    warn_implausible(df, source)
    gdf = gpd.GeoDataFrame(
        df, geometry=gpd.points_from_xy(df["longitude"], df["latitude"]), crs="EPSG:4326"
    )
    gdf.attrs["source"] = str(source)
    if root_path is not None:
        gdf.attrs["root"] = str(root_path)
    return gdf


#: Values outside these ranges are legal but probably mistakes: they are warned about.
PLAUSIBLE = {
    "sold_date": (pd.Timestamp("1900-01-01"), pd.Timestamp.now() + pd.DateOffset(years=1)),
    "area_sqft": (10.0, 500_000.0),
    "price": (1_000.0, 1e10),
}


def warn_implausible(df: pd.DataFrame, source: str | Path) -> None:
    """Warn (never refuse) about sale dates, areas and prices outside :data:`PLAUSIBLE`."""
    import warnings

    for col, (lo, hi) in PLAUSIBLE.items():
        if col not in df.columns:
            continue
        v = df[col]
        bad = np.flatnonzero(((v < lo) | (v > hi)).fillna(False).to_numpy(dtype=bool))
        if len(bad):
            rows = ", ".join(str(i + 1) for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
            span = f"{lo:%Y-%m-%d} .. {hi:%Y-%m-%d}" if col == "sold_date" else f"{lo:g} .. {hi:g}"
            warnings.warn(
                f"{source}: {len(bad)} row(s) have {col} outside the plausible range "
                f"{span} (rows {rows}); check the values or the units",
                stacklevel=3,
            )


def load_records(
    path: str | Path, *, root: str | Path | None = None, purpose: Purpose = "any"
) -> gpd.GeoDataFrame:
    """Load and validate a house-record table into a GeoDataFrame (EPSG:4326).

    ``root`` is the folder that ``image``/``mask`` paths are relative to (default: the table's
    folder). ``purpose="train"`` also requires ``price`` and ``sold_date``. Raises
    :class:`RecordsValidationError` listing every problem.
    """
    path = Path(path)
    root_path = Path(root) if root is not None else path.parent
    return records_frame(read_table(path), root=root_path, purpose=purpose, source=path)


def resolve_asset(root: str | Path, rel: str | None) -> Path | None:
    """Absolute path of a validated ``image``/``mask`` value (None when missing)."""
    if rel is None or _is_missing(rel):
        return None
    base = Path(root).resolve()
    p = (base / rel).resolve()
    if p != base and base not in p.parents:
        raise UserInputError(f"{rel!r} escapes the dataset folder {base}")
    return p


COLUMN_NAMES = tuple(COLUMNS_BY_NAME)
