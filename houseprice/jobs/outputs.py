"""Writing job outputs: tables safe to open in a spreadsheet, file names from house ids.

Everything a job writes goes through :mod:`houseprice.artifacts` (atomic writes, ownership
manifests); this module adds what is specific to output tables: CSV cells that a spreadsheet
would run as formulas are neutralised (:func:`houseprice.artifacts.csv_safe`, which the data
layer's own CSV reports use too), and an existing file is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pandas as pd

from houseprice.artifacts import FORMULA_PREFIXES, atomic_write_bytes, atomic_write_csv, csv_safe
from houseprice.errors import UserInputError


def write_csv(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a table as CSV atomically, with formula-like cells neutralised."""
    return atomic_write_csv(out, frame)


def write_table(frame: pd.DataFrame, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a prediction table atomically as CSV or Parquet (by suffix).

    An existing file is replaced only with ``overwrite``.
    """
    from houseprice.errors import OutputExistsError

    out = Path(out)
    if out.is_dir():
        raise OutputExistsError(f"{out} is a folder; --out must name a .csv or .parquet file")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if out.suffix.lower() == ".csv":
        write_csv(frame, out)
    elif out.suffix.lower() in (".parquet", ".pq"):
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(out, buf.getvalue())
    else:
        raise UserInputError(f"{out}: output must end in .csv or .parquet")
    return out


def safe_name(house_id: str) -> str:
    """A file name for a house id (ids are user text; never let them form a path)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", house_id)[:80]
    if clean != house_id:
        clean += "-" + hashlib.sha1(house_id.encode()).hexdigest()[:8]
    return clean


__all__ = ["FORMULA_PREFIXES", "csv_safe", "safe_name", "write_csv", "write_table"]
