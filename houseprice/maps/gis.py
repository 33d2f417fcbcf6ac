"""GIS layers of valuations: house points and the map's area cells as GeoDataFrames.

This module owns what a GIS (QGIS, ArcGIS) gets from houseprice, as data (writing the files is
:mod:`houseprice.jobs.gis_out`'s job):

* **house points** (:func:`house_points`): every column of a prediction / explanation table,
  with a point geometry at the house's ``longitude`` / ``latitude`` (EPSG:4326), reprojected to
  the layer's CRS;
* **area cells** (:func:`area_cells`): the square grid of the map's area layers
  (:func:`houseprice.maps.areas.area_grid`, same cells as the map for the same houses), one
  polygon per cell holding houses, with the number of houses, the median predicted price and,
  where sale prices are known, the number of sales, the median ratio (predicted / sold) and the
  coefficient of dispersion (COD, IAAO Standard on Ratio Studies), computed by the caller's
  ``cod`` function (``houseprice.pricing.ratio_study.cod``).

The CRS of both layers is EPSG:4326 unless the user names another (:func:`parse_crs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from houseprice.errors import UserInputError
from houseprice.maps.areas import area_grid
from houseprice.maps.payload import MapStyle

__all__ = ["GIS_CRS", "area_cells", "house_points", "parse_crs"]

#: The CRS of the GIS layers unless the user names another (``--crs``).
GIS_CRS = "EPSG:4326"

#: The area layer's columns, in order (besides the geometry).
AREA_COLUMNS = (
    "cell_row",
    "cell_col",
    "cell_meters",
    "houses",
    "median_predicted_price",
    "sales",
    "median_ratio",
    "cod",
)


def parse_crs(text: str | None) -> CRS:
    """The CRS named by ``text`` (``EPSG:26915``, a WKT or PROJ string; None: EPSG:4326).

    Raises:
        UserInputError: ``text`` names no CRS pyproj knows.
    """
    if text is None:
        return CRS.from_user_input(GIS_CRS)
    try:
        return CRS.from_user_input(text)
    except CRSError as err:
        raise UserInputError(
            f"--crs {text!r}: not a coordinate reference system ({err}); give one as "
            "EPSG:<code>, e.g. --crs EPSG:26915"
        ) from err


def _lon_lat(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in ("longitude", "latitude") if c not in frame.columns]
    if missing:
        raise UserInputError(f"a GIS layer needs the columns longitude and latitude; no {missing}")
    lon = pd.to_numeric(frame["longitude"], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame["latitude"], errors="coerce").to_numpy(dtype=np.float64)
    return lon, lat


def house_points(frame: pd.DataFrame, crs: CRS | str = GIS_CRS) -> gpd.GeoDataFrame:
    """``frame`` (every column kept, index reset) as points in ``crs``.

    The points are made at ``longitude`` / ``latitude`` (WGS84 degrees, the house-record
    contract) and reprojected to ``crs``; a ``geometry`` column of ``frame`` is replaced.
    """
    lon, lat = _lon_lat(frame)
    table = pd.DataFrame(frame.drop(columns="geometry", errors="ignore")).reset_index(drop=True)
    points = gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(lon, lat), crs=GIS_CRS)
    return points if CRS.from_user_input(crs) == points.crs else points.to_crs(crs)


Dispersion = Callable[[np.ndarray, np.ndarray], float]


def _cell_cod(group: pd.DataFrame, cod: Dispersion) -> float:
    """COD of a cell's sales; NaN below two sales (a dispersion needs two)."""
    if len(group) < 2:
        return float("nan")
    return float(cod(group["predicted"].to_numpy(), group["price"].to_numpy()))


def area_cells(
    frame: pd.DataFrame,
    *,
    crs: CRS | str = GIS_CRS,
    cell_meters: float | None = None,
    style: MapStyle | None = None,
    cod: Dispersion | None = None,
) -> gpd.GeoDataFrame:
    """One polygon per grid cell holding houses of ``frame`` (``latitude``, ``longitude``,
    ``predicted_price`` and optionally ``price``), in ``crs``.

    Columns (:data:`AREA_COLUMNS`): the cell's row (south -> north) and column (west -> east),
    its side in metres, ``houses``, ``median_predicted_price``, ``sales`` (houses with a sale
    price > 0), ``median_ratio`` (median of predicted / sold; NaN without sales) and ``cod``
    (coefficient of dispersion of those ratios, in percent, by the given ``cod(estimates,
    sale_prices)``, the ratio study's (the jobs layer passes it; maps imports no peer); NaN
    below two sales or without ``cod``). IAAO considers ratio statistics of fewer than 20
    sales unreliable: filter on ``sales``.
    """
    style = style or MapStyle()
    lon, lat = _lon_lat(frame)
    grid = area_grid(lat, lon, cell_meters=cell_meters, cells_across=style.area_cells_across)
    price = (
        pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=np.float64)
        if "price" in frame.columns
        else np.full(len(frame), np.nan)
    )
    table = pd.DataFrame(
        {
            "row": grid.cells[:, 0],
            "col": grid.cells[:, 1],
            "predicted": pd.to_numeric(frame["predicted_price"]).to_numpy(dtype=np.float64),
            "price": price,
        }
    )
    sold = table[np.isfinite(table["price"]) & (table["price"] > 0)]
    by_cell = table.groupby(["row", "col"], sort=True)
    out = pd.DataFrame(
        {
            "houses": by_cell.size(),
            "median_predicted_price": by_cell["predicted"].median(),
        }
    )
    sales = sold.groupby(["row", "col"], sort=True)
    out["sales"] = sales.size().reindex(out.index, fill_value=0)
    out["median_ratio"] = (
        (sold["predicted"] / sold["price"])
        .groupby([sold["row"], sold["col"]])
        .median()
        .reindex(out.index)
    )
    if len(sold) and cod is not None:
        per_cell: Any = sales[["predicted", "price"]].apply(lambda g: _cell_cod(g, cod))
        out["cod"] = per_cell.reindex(out.index)
    else:
        out["cod"] = np.nan
    out = out.reset_index().rename(columns={"row": "cell_row", "col": "cell_col"})
    out.insert(2, "cell_meters", grid.cell_meters)
    out["houses"] = out["houses"].astype(np.int64)
    out["sales"] = out["sales"].astype(np.int64)
    boxes = [
        grid.bounds(int(r), int(c)) for r, c in zip(out["cell_row"], out["cell_col"], strict=True)
    ]
    polygons = shapely.box(*np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, [1, 0, 3, 2]].T)
    cells = gpd.GeoDataFrame(out[list(AREA_COLUMNS)], geometry=polygons, crs=GIS_CRS)
    return cells if CRS.from_user_input(crs) == cells.crs else cells.to_crs(crs)
