"""The synthetic city in real-world formats: one georeferenced orthophoto and GeoParquet records.

This module owns what makes the city look like a user's data (data_specs/synth_city.md,
"Orthophoto"): :func:`write_orthophoto` writes the whole world RGB raster as a Cloud-Optimised
GeoTIFF (``orthophoto.tif``: 256 px blocks, DEFLATE, internal overviews), :func:`write_geoparquet`
writes the house records as GeoParquet points (``houses.parquet``), and :func:`attach_truth`
copies the evaluation truth (``truth/``) of a city into a folder imported from them by
``houseprice data import``.

The CRS is the ellipsoidal Sinusoidal projection on WGS84 centred on the city's longitude
(:func:`city_crs`), not UTM. The generator maps world metres to degrees with
``lat = LAT0 + dy / m_per_deg_lat(LAT0)`` and ``lon = LON0 + dx / m_per_deg_lon(lat)``
(``simulate._metres_to_degrees``): metres along a meridian are linear in latitude and metres
along a parallel are the parallel's own length per degree. That is the Sinusoidal projection
(``x = (lon - LON0) N(lat) cos(lat)``, ``y`` = meridian arc length) up to series truncation: on
the standard city the records agree with it to 1 mm (5 mm after the 7-decimal rounding of
``houses.csv``), while UTM zone 17N disagrees by 22 m. A pixel's world position
``(x_m, y_m)`` (x east, y south from the north-west corner) maps to
``X = x_m - size/2``, ``Y = Y(LAT0) + size/2 - y_m`` in that CRS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import Transformer

from houseprice.artifacts import atomic_write_json, tree_files, write_manifest
from houseprice.data.houses.folder import read_dataset_meta
from houseprice.errors import UserInputError
from houseprice.synth.city.config import LAT0, LON0

#: File names inside a synthetic-city folder.
ORTHOPHOTO_NAME = "orthophoto.tif"
GEOPARQUET_NAME = "houses.parquet"
#: Block size of the orthophoto; GDAL adds ×2 overviews until one is smaller than a block.
_BLOCK = 256


def city_crs() -> str:
    """The orthophoto's CRS as a PROJ string: Sinusoidal on WGS84 at the city's longitude."""
    return f"+proj=sinu +lon_0={LON0:g} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def world_transform(size_m: float, m_per_px: float) -> Any:
    """The geotransform (``Affine``) of the world raster in :func:`city_crs`."""
    from rasterio.transform import Affine

    t = Transformer.from_crs("EPSG:4326", city_crs(), always_xy=True)
    _, y0 = t.transform(LON0, LAT0)  # the city centre, world (size/2, size/2)
    return Affine(m_per_px, 0.0, -size_m / 2, 0.0, -m_per_px, y0 + size_m / 2)


def write_orthophoto(path: str | Path, rgb: np.ndarray, size_m: float, m_per_px: float) -> Path:
    """Write the world raster ``rgb`` (H, W, 3) uint8 as a Cloud-Optimised GeoTIFF at ``path``.

    A plain tiled GeoTIFF is written next to ``path`` first (removed afterwards), then copied
    by GDAL's COG driver, which lays out the blocks and the averaged overviews. The output is a
    pure function of ``rgb``, ``size_m`` and ``m_per_px`` (no time stamps).
    """
    import rasterio
    import rasterio.shutil
    from rasterio.enums import ColorInterp

    path = Path(path)
    h, w, _ = rgb.shape
    scratch = path.with_name(f".{path.name}.plain.tif")
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint8",
        "crs": rasterio.crs.CRS.from_proj4(city_crs()),
        "transform": world_transform(size_m, m_per_px),
        "tiled": True, "blockxsize": _BLOCK, "blockysize": _BLOCK, "photometric": "RGB",
    }  # fmt: skip
    try:
        with rasterio.open(scratch, "w", **profile) as dst:
            dst.write(np.moveaxis(rgb, -1, 0))
            dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        rasterio.shutil.copy(
            scratch,
            path,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            BLOCKSIZE=str(_BLOCK),
            OVERVIEWS="AUTO",
            OVERVIEW_RESAMPLING="AVERAGE",
            RESAMPLING="AVERAGE",
        )
    finally:
        scratch.unlink(missing_ok=True)
    return path


#: ``houses.csv`` columns that ``houses.parquet`` does not repeat: the point geometry holds the
#: coordinates, and tile / mask paths belong to the per-tile folder layout, not to a user's file.
GEOPARQUET_DROPPED = ("latitude", "longitude", "image", "mask")


def write_geoparquet(path: str | Path, houses: pd.DataFrame) -> Path:
    """Write the house records as GeoParquet points (EPSG:4326), values as in ``houses.csv``.

    The columns are those of ``houses`` in order, without :data:`GEOPARQUET_DROPPED`, plus a
    ``geometry`` point at (longitude, latitude) rounded to 1e-7° as in ``houses.csv``. Numbers
    are rounded as ``houses.csv`` rounds them and ``sold_date`` is a typed date, as a GIS
    export would have it.
    """
    import geopandas as gpd

    lon = houses["longitude"].astype(float).round(7) + 0.0
    lat = houses["latitude"].astype(float).round(7) + 0.0
    df = houses.drop(columns=[c for c in GEOPARQUET_DROPPED if c in houses.columns])
    for col in ("bathrooms", "area_sqft", "price"):
        df[col] = df[col].astype(float).round(1) + 0.0
    df["sold_date"] = pd.to_datetime(df["sold_date"]).dt.date
    geo = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    geo.to_parquet(path, index=False)
    return Path(path)


def attach_truth(imported: str | Path, city: str | Path) -> Path:
    """Copy a synthetic city's evaluation truth into a folder imported from its files.

    ``imported`` is a folder written by ``houseprice data import`` from the city's
    ``houses.parquet`` / ``houses.csv`` and ``orthophoto.tif``. Its house ids are the city's,
    so the city's ``truth/`` (drivers and per-house evidence masks) is copied in as it is, and
    ``dataset.json`` gains the city's ``truth``, ``mask_classes`` and ``seed`` (keys the dataset
    schema defines), so ``evaluate``'s oracle row and ``explain``'s evidence scores work. The
    folder's ``manifest.json`` is rewritten to list the new files, so it stays replaceable.
    """
    imported, city = Path(imported), Path(city)
    meta = read_dataset_meta(imported)
    city_meta = read_dataset_meta(city)
    truth = city_meta.get("truth")
    if not truth:
        raise UserInputError(f"{city}: no truth to attach (not a synthetic city?)")
    if (imported / "truth").exists():
        raise UserInputError(f"{imported}: already has a truth folder")
    ids = pd.read_csv(imported / meta["table"], dtype={"house_id": str}, usecols=["house_id"])
    known = pd.read_csv(city / truth["drivers"], dtype={"house_id": str}, usecols=["house_id"])
    stray = sorted(set(ids["house_id"]) - set(known["house_id"]))
    if stray:
        raise UserInputError(
            f"{imported}: {len(stray)} house(s) are not in {city} (first: {stray[0]}); the "
            "truth belongs to other houses"
        )
    shutil.copytree(city / "truth", imported / "truth")
    for key in ("seed", "mask_classes", "truth"):
        if key in city_meta:
            meta[key] = city_meta[key]
    atomic_write_json(imported / "dataset.json", meta)
    read_dataset_meta(imported)  # still valid
    manifest = json.loads((imported / "manifest.json").read_text())
    write_manifest(
        imported,
        kind=manifest["format"],
        version=int(manifest["format_version"]),
        files=[f for f in tree_files(imported) if f != "manifest.json"],
    )
    return imported


__all__ = [
    "GEOPARQUET_DROPPED",
    "GEOPARQUET_NAME",
    "ORTHOPHOTO_NAME",
    "attach_truth",
    "city_crs",
    "world_transform",
    "write_geoparquet",
    "write_orthophoto",
]
