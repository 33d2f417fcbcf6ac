"""Building the contract rows of a user's table: coordinates, values, refused rows.

:func:`prepare_records` takes the source table and its column mapping
(:mod:`houseprice.data.houses.columns`) and builds the contract table: coordinates from the
geometry or the coordinate columns reprojected to EPSG:4326, values normalised, and every row
that breaks a rule refused with a :class:`Refusal` (source row, column, value, reason)
instead of dropped (data_specs/import.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from houseprice.data.houses.columns import (
    MISSING_TOKENS,
    REJECTED_COLUMNS,
    ColumnMapping,
    match_columns,
)
from houseprice.data.houses.records import validate_frame
from houseprice.data.houses.schema import COLUMNS_BY_NAME
from houseprice.errors import UserInputError, quote, shorten


@dataclass(frozen=True)
class Refusal:
    """One broken rule of one source row (``source_row`` is 1-based; CSV line = row + 1)."""

    source_row: int
    house_id: str | None
    column: str
    value: Any
    reason: str


def parse_crs(crs: str | None, what: str = "--crs") -> pyproj.CRS | None:
    if crs is None:
        return None
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as e:
        raise UserInputError(f"{what} {crs!r} is not a CRS PROJ knows (e.g. EPSG:32615)") from e


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip().lower() in MISSING_TOKENS


def _id_text(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip() or None


def _date_text(v: Any) -> Any:
    """Dates as the contract writes them; unknown forms are left for validation to refuse."""
    if _missing(v):
        return None
    if isinstance(v, pd.Timestamp | np.datetime64) or hasattr(v, "strftime"):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    s = str(v).strip()
    if len(s) > 10 and s[4] == "-" and s[7] == "-" and s[10] in "T ":
        return s[:10]  # ISO date with a time
    if len(s) == 10 and s[4] == "/" and s[7] == "/":
        return s.replace("/", "-")  # YYYY/MM/DD
    return s


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float values, bad mask): missing -> NaN (not bad); text that is not a number -> bad."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        if _missing(v):
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad[i] = True
    return out, bad


class _Coordinates:
    """Latitude/longitude (EPSG:4326) of every row, the refusals, and how they were found."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, refusals: list[Refusal], how: str):
        self.lat, self.lon, self.refusals, self.how = lat, lon, refusals, how


def _from_geometry(geometry: gpd.GeoSeries, crs: pyproj.CRS | None, origin: str) -> _Coordinates:
    name = geometry.name or "geometry"
    if geometry.crs is None and crs is None:
        raise UserInputError(
            f"{origin}: the geometry column {name!r} has no CRS; pass the CRS its coordinates "
            "are in (--crs EPSG:xxxx)"
        )
    if geometry.crs is not None and crs is not None and not geometry.crs.equals(crs):
        raise UserInputError(
            f"{origin}: the file says its CRS is {geometry.crs.to_string()} but --crs says "
            f"{crs.to_string()}; drop --crs (or fix the file)"
        )
    src_crs = geometry.crs or crs
    empty = (geometry.isna() | geometry.is_empty).to_numpy()
    pts = gpd.GeoSeries(geometry.to_numpy(), crs=src_crs)
    pts[~empty] = pts[~empty].representative_point()
    ll = pts[~empty].to_crs("EPSG:4326")
    lat = np.full(len(geometry), np.nan)
    lon = np.full(len(geometry), np.nan)
    lat[~empty], lon[~empty] = ll.y.to_numpy(), ll.x.to_numpy()
    refusals = [
        Refusal(i + 1, None, name, None, "missing or empty geometry") for i in np.flatnonzero(empty)
    ]
    bad = ~empty & ~(np.isfinite(lat) & np.isfinite(lon))
    refusals += [
        Refusal(i + 1, None, name, None, f"could not be converted from {src_crs} to EPSG:4326")
        for i in np.flatnonzero(bad)
    ]
    kinds = Counter(geometry[~empty].geom_type)
    shapes = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    reduced = " (non-points reduced to representative_point())" if set(kinds) - {"Point"} else ""
    how = f"geometry {name!r} [{shapes}]{reduced}, {pyproj.CRS(src_crs).to_string()} -> EPSG:4326"
    return _Coordinates(lat, lon, refusals, how)


def _from_columns(
    frame: pd.DataFrame, mapping: ColumnMapping, crs: pyproj.CRS | None, origin: str
) -> _Coordinates:
    ys, xs = mapping.source_of("latitude"), mapping.source_of("longitude")
    if ys is None or xs is None:
        raise UserInputError(
            f"{origin}: no coordinates: no geometry and no latitude/longitude (or y/x) columns "
            f"found; name them with --column latitude=COL --column longitude=COL (columns: "
            f"{shorten(', '.join(map(repr, frame.columns)))})"
        )
    y, ybad = _numbers(frame[ys])
    x, xbad = _numbers(frame[xs])
    refusals: list[Refusal] = []
    for col, vals, bad in ((ys, y, ybad), (xs, x, xbad)):
        raw = frame[col].tolist()
        for i in range(len(frame)):
            if bad[i]:
                refusals.append(Refusal(i + 1, None, col, raw[i], "expected a number"))
            elif np.isnan(vals[i]):
                refusals.append(Refusal(i + 1, None, col, None, "a coordinate is required"))
    ok = np.isfinite(x) & np.isfinite(y)
    if crs is None:
        if ok.any() and (np.median(np.abs(x[ok])) > 180 or np.median(np.abs(y[ok])) > 90):
            raise UserInputError(
                f"{origin}: columns {quote(xs)}/{quote(ys)} hold values such as "
                f"{x[ok][0]:g}/{y[ok][0]:g}, "
                "not degrees; these look like projected coordinates: pass --crs EPSG:xxxx"
            )
        return _Coordinates(y, x, refusals, f"columns {ys!r}/{xs!r} as EPSG:4326 degrees")
    tr = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = np.full(len(x), np.nan), np.full(len(x), np.nan)
    if ok.any():
        lon[ok], lat[ok] = tr.transform(x[ok], y[ok])
    for i in np.flatnonzero(ok & ~(np.isfinite(lat) & np.isfinite(lon))):
        value = f"{x[i]:g}, {y[i]:g}"
        reason = f"could not be converted from {crs.to_string()} to EPSG:4326"
        refusals.append(Refusal(int(i) + 1, None, f"{xs}/{ys}", value, reason))
    return _Coordinates(
        lat, lon, refusals, f"columns {ys!r}/{xs!r}, {crs.to_string()} -> EPSG:4326"
    )


def _contract_frame(
    frame: pd.DataFrame, mapping: ColumnMapping, coords: _Coordinates
) -> pd.DataFrame:
    """The source rows under contract names (values normalised, not yet validated)."""
    n = len(frame)
    work = pd.DataFrame(index=range(n))
    id_src = mapping.source_of("house_id")
    if id_src is None:
        work["house_id"] = [f"R{i:06d}" for i in range(1, n + 1)]
        mapping.notes["house_id"] = "generated from the source row number (R000001, ...)"
    else:
        work["house_id"] = [_id_text(v) for v in frame[id_src].tolist()]
    work["latitude"] = np.round(coords.lat, 8)
    work["longitude"] = np.round(coords.lon, 8)
    for name in ("bedrooms", "bathrooms", "sold_date", "area_sqft", "price"):
        src = mapping.source_of(name)
        if src is None:
            continue
        vals = frame[src].tolist()
        if name == "sold_date":
            work[name] = [_date_text(v) for v in vals]
        else:
            work[name] = [
                None if _missing(v) else (v.strip() if isinstance(v, str) else v) for v in vals
            ]
    if not mapping.extras:
        return work
    extras = frame[mapping.extras].reset_index(drop=True)  # one block: linear in the columns
    extras.columns = [mapping.renamed.get(c, c) for c in mapping.extras]
    return pd.concat([work, extras], axis=1)


def _rule_refusals(
    work: pd.DataFrame,
    frame: pd.DataFrame,
    coords: _Coordinates,
    reported: dict[str, str],
    use_geom: bool,
) -> list[Refusal]:
    """Coordinate refusals plus every contract rule a row breaks (uniqueness aside)."""
    refusals = list(coords.refusals)
    coord_bad = {r.source_row for r in refusals}
    for p in validate_frame(
        work.assign(latitude=work["latitude"].fillna(0.0), longitude=work["longitude"].fillna(0.0)),
        purpose="any",
    ):
        if p.row is None or (
            COLUMNS_BY_NAME[p.column].unique and p.rule.startswith("must be unique")
        ):
            continue
        if p.column in ("latitude", "longitude") and p.row in coord_bad:
            continue
        value = p.value
        if p.column in ("latitude", "longitude") and not use_geom:
            value = frame[reported[p.column]].iloc[p.row - 1]  # what the file says
        refusals.append(Refusal(p.row, None, reported[p.column], value, f"{p.column}: {p.rule}"))
    return refusals


def _duplicate_refusals(ids: list[Any], refused: np.ndarray, column: str) -> list[Refusal]:
    """Later rows repeating a kept house_id (marked in ``refused`` in place)."""
    first: dict[str, int] = {}
    out = []
    for i, hid in enumerate(ids):
        if refused[i] or hid is None:
            continue
        if hid in first:
            refused[i] = True
            why = f"duplicate house_id (the first, source row {first[hid]}, is kept)"
            out.append(Refusal(i + 1, hid, column, hid, why))
        else:
            first[hid] = i + 1
    return out


def prepare_records(
    frame: pd.DataFrame,
    geometry: gpd.GeoSeries | None,
    *,
    columns: Mapping[str, str] | None = None,
    crs: str | None = None,
    origin: str = "records",
) -> tuple[pd.DataFrame, np.ndarray, list[Refusal], ColumnMapping]:
    """Map, normalise and check a source table.

    Returns the kept rows (contract columns first, extras after), their 1-based source row
    numbers, every refusal, and the column mapping.
    """
    explicit = dict(columns or {})
    use_geom = geometry is not None and not ({"latitude", "longitude"} & set(explicit))
    mapping = match_columns(
        frame.columns, explicit, origin=origin, omit=("latitude", "longitude") if use_geom else ()
    )
    target_crs = parse_crs(crs)
    if use_geom:
        coords = _from_geometry(geometry, target_crs, origin)
        mapping.notes["latitude"] = mapping.notes["longitude"] = coords.how
    else:
        coords = _from_columns(frame, mapping, target_crs, origin)
    mapping.notes["coordinates"] = coords.how
    work = _contract_frame(frame, mapping, coords)
    reported = {
        name: (mapping.source_of(name) or mapping.notes.get(name, name)) for name in COLUMNS_BY_NAME
    }
    if use_geom:
        reported["latitude"] = reported["longitude"] = str(geometry.name or "geometry")
    refusals = _rule_refusals(work, frame, coords, reported, use_geom)
    refused = np.zeros(len(frame), dtype=bool)
    refused[[r.source_row - 1 for r in refusals]] = True
    ids = work["house_id"].tolist()
    refusals += _duplicate_refusals(ids, refused, reported["house_id"])
    refusals = sorted(
        (
            Refusal(r.source_row, ids[r.source_row - 1], r.column, r.value, r.reason)
            for r in refusals
        ),
        key=lambda r: r.source_row,
    )
    kept = work[~refused].reset_index(drop=True)
    return kept, np.flatnonzero(~refused) + 1, refusals, mapping


def rejected_frame(refusals: Sequence[Refusal]) -> pd.DataFrame:
    rows = [{**asdict(r), "value": "" if r.value is None else str(r.value)} for r in refusals]
    return pd.DataFrame(rows, columns=REJECTED_COLUMNS)


def nothing_kept(origin: str, n: int, refusals: Sequence[Refusal]) -> UserInputError:
    counts = Counter(f"{r.column}: {r.reason.split(' (')[0]}" for r in refusals).most_common(5)
    lines = "\n".join(f"  - {c} row(s): {why}" for why, c in counts)
    return UserInputError(f"{origin}: all {n} row(s) were refused; most common reasons:\n{lines}")


__all__ = [
    "Refusal",
    "nothing_kept",
    "parse_crs",
    "prepare_records",
    "rejected_frame",
]
