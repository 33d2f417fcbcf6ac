"""Property test of the record contract (issue 13): random small tables never crash validation.

Tables are random subsets of the contract's columns (data_specs/houses.md) plus an extra column,
0-20 rows, each column filled either with plausible values of its type or with any mix of text,
numbers, NaN and None. Properties:

- ``validate_frame`` returns problems (never raises); ``records_frame`` raises nothing but
  :class:`RecordsValidationError` / :class:`UserInputError`;
- every row problem names a 1-based row in range and a column of the table; every table-level
  problem is "no rows" or a required column that is absent;
- a table without problems goes through ``records_frame`` keeping every row, in order.
"""

from __future__ import annotations

import math
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from houseprice.data.houses.records import (
    Problem,
    RecordsValidationError,
    records_frame,
    validate_frame,
)
from houseprice.data.houses.schema import HOUSE_COLUMNS, Column
from houseprice.errors import UserInputError

ROOT = Path("/nonexistent/hypothesis-dataset-root")  # paths are checked lexically against it

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_date = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))

#: Any cell a CSV or Parquet reader could hand over: text, numbers, NaN, None, blanks.
ANY_VALUE = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.sampled_from(["", " ", "NaN", "inf", "-inf", "1e309", "0x10", "1_000", "٣"]),
    st.text(max_size=12),
    st.floats(width=64),
    st.integers(min_value=-(10**20), max_value=10**20),
    _finite.map(repr),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    _date.map(lambda d: d.isoformat()),
    _date.map(lambda d: d.isoformat()[:7]),
    st.sampled_from(["tiles/a.png", "../x.png", "/etc/passwd", "a/../../b.png", "tiles/"]),
)


def plausible(col: Column) -> st.SearchStrategy[Any]:
    """Values that satisfy ``col``'s rule most of the time (so valid tables do occur)."""
    lo = col.minimum if col.minimum is not None else -1e6
    hi = col.maximum if col.maximum is not None else 1e7
    if col.exclusive_minimum is not None:
        lo = col.exclusive_minimum + 1.0
    if col.type == "string":
        return st.text(min_size=1, max_size=8)
    if col.type == "integer":
        ints = st.integers(min_value=int(lo), max_value=min(int(hi), 20))
        return st.one_of(ints, ints.map(str))
    if col.type == "number":
        nums = st.floats(min_value=lo, max_value=hi)
        return st.one_of(nums, nums.map(repr), st.none())
    if col.type == "date":
        d = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
        return st.one_of(d.map(lambda x: x.isoformat()), d.map(lambda x: x.isoformat()[:7]))
    return st.sampled_from(["tiles/a.png", "tiles/b.png", "x.png", None])  # path


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=20))
    cols = draw(
        st.lists(st.sampled_from([*HOUSE_COLUMNS, None]), unique=True, max_size=11).map(
            lambda cs: sorted(cs, key=lambda c: -1 if c is None else HOUSE_COLUMNS.index(c))
        )
    )
    data: dict[str, list[Any]] = {}
    for col in cols:
        name = "extra_notes" if col is None else col.name
        cell = ANY_VALUE if col is None else draw(st.sampled_from([plausible(col), ANY_VALUE]))
        data[name] = draw(st.lists(cell, min_size=n, max_size=n))
    return pd.DataFrame(data, index=range(n), dtype=object)


def _check_problem(p: Problem, df: pd.DataFrame) -> None:
    if p.row is not None:
        assert 1 <= p.row <= len(df), p
        assert p.column in df.columns, p
    elif p.column == "(rows)":
        assert len(df) == 0, p
    else:
        assert p.column not in df.columns and "missing" in p.rule, p


@settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the repository
    derandomize=True,  # the same 200 tables on every run (reproducible failures)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    df=tables(),
    purpose=st.sampled_from(["any", "predict", "train"]),
    root=st.sampled_from([None, ROOT]),
)
@example(  # found by this test: a NUL byte in a tile path made Path.resolve() raise ValueError
    df=pd.DataFrame(
        {"house_id": ["A"], "latitude": [43.7], "longitude": [-79.4], "image": ["t\x00.png"]},
        dtype=object,
    ),
    purpose="any",
    root=ROOT,
)
def test_random_tables_validate_or_refuse_cleanly(
    df: pd.DataFrame, purpose: str, root: Path | None
) -> None:
    problems = validate_frame(df, root=root, purpose=purpose)  # type: ignore[arg-type]
    for p in problems:
        _check_problem(p, df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implausible-value warnings are fine here
        try:
            gdf = records_frame(df, root=root, purpose=purpose, source="t.csv")  # type: ignore[arg-type]
        except RecordsValidationError as e:
            assert problems, f"records_frame refused a table validate_frame accepted: {e}"
            assert e.problems == problems
            return
        except UserInputError as e:
            assert problems, f"records_frame refused a table validate_frame accepted: {e}"
            return
    assert not problems, "records_frame accepted a table with problems"
    assert len(gdf) == len(df)
    assert gdf["house_id"].tolist() == [str(v).strip() for v in df["house_id"]]
    for name in ("latitude", "longitude"):
        assert all(math.isfinite(v) for v in gdf[name])
