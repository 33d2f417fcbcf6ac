"""Property test of ``houseprice data import`` (issue 26): random tables never crash the import.

Tables are CSV or Parquet files with random column names (contract names, their aliases, odd
text) and random column types, filled with extreme values: dates from year 1 to 9999, whole
numbers up to 2^64 (as numbers and as text), infinities, long strings, and sometimes hundreds of
columns. Coordinates are plausible in some tables so that rows get past the first checks.
Properties, for every table:

- the command exits 0 or 2 (a bad table is a user error), never with an uncaught exception or a
  traceback in its output, and no output line quotes more than a few hundred characters;
- it writes nothing outside ``--out`` (every other file in the folder keeps its digest), and a
  refused import leaves no ``--out`` behind;
- a successful import's ``houses.csv`` reads back with one row per kept row.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from houseprice.data.houses.columns import ALIASES

runner = CliRunner()

NAMES = st.one_of(
    st.sampled_from([*ALIASES, "SalePrice", "Lat", "Long", "date", "id", "image", "geometry"]),
    st.text(min_size=1, max_size=20).filter(lambda s: s.strip() and "\x00" not in s),
    st.text(alphabet="abcxyz_", min_size=300, max_size=400),  # a long header name
)
_dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
HUGE = [2**63 - 1, -(2**63), 2**53 + 1, 10**20]

#: One column's values: a type and its extremes (text forms too, as a CSV holds them).
COLUMNS: dict[str, st.SearchStrategy[Any]] = {
    "int": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(HUGE)),
    "int-text": st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(HUGE)).map(str),
    "float": st.floats(width=64),
    "float-text": st.sampled_from(["1e308", "-1e309", "inf", "nan", "1e-320", "0.1", "-0"]),
    "date": _dates,
    "date-text": _dates.map(lambda d: d.isoformat()),
    "datetime": st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    "text": st.text(max_size=30),
    "long-text": st.text(alphabet="=+-@ab \t", min_size=1_000, max_size=5_000),
    "bool": st.booleans(),
    "none": st.none(),
}


def _plain(v: Any) -> Any:
    """Dates as Timestamps where pandas can hold them (else ISO text, as a file would)."""
    if isinstance(v, datetime | date):
        try:
            return pd.Timestamp(v)
        except (OverflowError, ValueError):
            return v.isoformat()
    return v


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(min_value=0, max_value=12))
    data: dict[str, list[Any]] = {}
    if draw(st.booleans()):  # plausible coordinates: rows reach the value checks
        lat = st.floats(43.6, 43.8)
        data["latitude"] = draw(st.lists(lat, min_size=n, max_size=n))
        data["longitude"] = draw(st.lists(st.floats(-79.5, -79.3), min_size=n, max_size=n))
    wide = draw(st.sampled_from([0, 0, 0, 300]))  # sometimes hundreds of columns of one type
    for i in range(draw(st.integers(0, 8)) + wide):
        kind = draw(st.sampled_from(sorted(COLUMNS)))
        name = draw(NAMES) if i < 12 else f"w{i}"
        data.setdefault(
            name, [_plain(v) for v in draw(st.lists(COLUMNS[kind], min_size=n, max_size=n))]
        )
    frame = pd.DataFrame(data, index=range(n))
    return frame, draw(st.sampled_from(["csv", "parquet"]))


def _write(frame: pd.DataFrame, fmt: str, folder: Path) -> Path:
    if fmt == "parquet":
        path = folder / "t.parquet"
        try:
            frame.to_parquet(path, index=False)
            return path
        except Exception:  # mixed types Arrow cannot store: the same table as text instead
            path.unlink(missing_ok=True)
    path = folder / "t.csv"
    frame.to_csv(path, index=False)
    return path


def _files(folder: Path, skip: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and skip not in p.parents
    }


@settings(
    max_examples=30,  # each example is a whole import (~0.1-1 s): the default run stays fast
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(table=tables())
def test_random_tables_import_or_refuse_cleanly(table: tuple[pd.DataFrame, str]) -> None:
    frame, fmt = table
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp)
        path = _write(frame, fmt, folder)
        out = folder / "out"
        before = _files(folder, out)
        res = runner.invoke(app, ["data", "import", "--records", str(path), "--out", str(out)])
        shown = f"{fmt} table {frame.shape}:\n{res.output[:3000]}"
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise AssertionError(shown) from res.exception
        assert res.exit_code in (0, 2), shown
        assert "Traceback" not in res.output, shown
        longest = max(map(len, res.output.splitlines()), default=0)
        assert longest < 1_000, f"an output line of {longest:,} characters\n{shown}"
        assert _files(folder, out) == before, "a file outside --out was written or changed"
        if res.exit_code == 2:
            assert not out.exists(), shown
            return
        kept = pd.read_csv(out / "houses.csv", dtype=str)
        rejected = pd.read_csv(out / "rejected.csv", dtype=str)
        assert len(kept) + rejected["source_row"].nunique() == len(frame), shown
