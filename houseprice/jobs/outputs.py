"""Writing job outputs: prediction tables (CSV / Parquet) and file names from house ids.

Everything a job writes goes through :mod:`houseprice.artifacts` (atomic writes); this module
adds what is specific to output tables.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import pandas as pd

from houseprice.artifacts import atomic_write_bytes, atomic_write_text
from houseprice.errors import UserInputError


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a prediction table atomically as CSV or Parquet (by suffix)."""
    out = Path(out)
    if out.suffix.lower() == ".csv":
        atomic_write_text(out, frame.to_csv(index=False))
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
