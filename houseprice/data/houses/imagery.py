"""Per-house tiles cut from the user's orthophotos (GeoTIFF / COG, any CRS, data_specs/import.md).

This module owns :class:`OrthophotoTiles`, the :class:`~houseprice.data.houses.source.TileSource`
over one or many georeferenced rasters (opening and checking them: :func:`open_raster`), and
the tile geometry (:func:`local_crs`, :func:`spatial_order`). Writing the tiles into a dataset
folder as PNG files is ``houseprice.data.houses.tilefiles`` (:func:`cut_tiles`).

The tile rule: a house's tile is a north-up square of ``tile_meters`` ground width centred on
the house, ``size`` x ``size`` pixels, in a local Transverse Mercator CRS centred on the house's
longitude rounded to a whole degree (WGS84, scale 1: at most 0.5° from true north and < 0.01 %
scale error). Each tile is one rasterio ``WarpedVRT`` whose grid *is* the tile (so the house is
exactly at the centre, one bilinear resampling, anti-aliased by GDAL when it shrinks), read from
the overview level closest to, but not coarser than, the tile's pixel size. When that level's
pixels already have the tile's size (within :data:`SAME_SCALE`, 1 %) the tile is a
nearest-pixel crop instead: bilinear resampling at the same scale only blurs (a half-pixel
shift averages neighbours), so the house is then up to half a pixel off-centre but the
imagery keeps its sharpness. With several files,
per pixel the first file in the order given that has valid data wins (``rasterio.merge``'s
"first" rule): a house inside the first file takes its tile from it alone; later files fill the
gaps. A tile with more than half its pixels outside every file or nodata is not used
(``ok = False`` with the reason); the rest of a partial tile is black.

What a raster must be (its bands; its pixel size against the tile's, which refuses imagery too
fine to read without overviews and warns about coarse imagery) is
:mod:`houseprice.data.houses.imagery_checks`. Rasters stay open across calls; GDAL's block
cache is capped (:data:`GDAL_CACHE_BYTES`) and houses are visited in spatial order, so memory
does not grow with raster size.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from houseprice.data.houses.imagery_checks import band_layout, check_scale, quiet_affine
from houseprice.data.houses.source import TileSource
from houseprice.data.houses.tiles import TileBatch
from houseprice.errors import UserInputError

#: A tile with more than this share of pixels outside the imagery / nodata is not used.
MAX_NODATA = 0.5
#: GDAL block-cache cap while reading (bytes); keeps memory flat in raster size.
GDAL_CACHE_BYTES = 64 << 20
EARTH_RADIUS_M = 6_371_008.8
#: Imagery whose pixels are within this fraction of the tile's pixel size is cropped pixel for
#: pixel (nearest) instead of resampled bilinearly (see :meth:`Raster.resampling_for`).
SAME_SCALE = 0.01
_MAX_ABS_LAT = 85.0


@lru_cache(maxsize=512)
def local_crs(lon0: int) -> CRS:
    """The local metric CRS of tiles near longitude ``lon0`` (whole degrees)."""
    return CRS.from_proj4(
        f"+proj=tmerc +lat_0=0 +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
    )


_THREAD = threading.local()


def _to_local(lon0: int) -> Transformer:
    """WGS84 -> :func:`local_crs` (one transformer per thread: pyproj's are not thread-safe)."""
    cache = _THREAD.__dict__.setdefault("to_local", {})
    if lon0 not in cache:
        cache[lon0] = Transformer.from_crs("EPSG:4326", local_crs(lon0).to_wkt(), always_xy=True)
    return cache[lon0]


@dataclass
class Raster:
    """One open imagery file: its bands, overview factors, metre resolution and footprint."""

    path: Path
    rgb: tuple[int, int, int]
    alpha: int | None
    factors: list[int]
    metres_per_px: float
    bounds_ll: tuple[float, float, float, float]  # west, south, east, north (EPSG:4326)
    levels: dict[int, Any] = field(default_factory=dict, repr=False)  # -1 = full resolution

    @property
    def name(self) -> str:
        return self.path.name

    def level_for(self, metres_per_px: float) -> int:
        """The coarsest overview whose pixels are not coarser than ``metres_per_px`` (-1: none)."""
        best = -1
        for i, f in enumerate(self.factors):
            if self.metres_per_px * f <= metres_per_px * 1.0001:
                best = i
        return best

    def resampling_for(self, level: int, metres_per_px: float) -> Resampling:
        """Nearest when ``level``'s pixels already have the tile's size, else bilinear.

        At the same scale bilinear resampling would only shift the picture by a fraction of a
        pixel and blur it (a half-pixel shift averages neighbouring pixels); a nearest-pixel
        crop keeps the imagery's sharpness, at most half a pixel off-centre.
        """
        f = self.factors[level] if level >= 0 else 1
        if abs(self.metres_per_px * f / metres_per_px - 1.0) <= SAME_SCALE:
            return Resampling.nearest
        return Resampling.bilinear

    def dataset(self, level: int) -> Any:
        if level not in self.levels:
            kw = {} if level < 0 else {"overview_level": level}
            self.levels[level] = rasterio.open(self.path, **kw)
        return self.levels[level]

    def close(self) -> None:
        for ds in self.levels.values():
            ds.close()
        self.levels.clear()


def _check_blocks(path: Path, src: Any) -> None:
    """Read the last block of every resolution level: truncated files fail here, not later."""
    for level in [-1, *range(len(src.overviews(1)))]:
        with rasterio.open(path, **({} if level < 0 else {"overview_level": level})) as ds:
            bh, bw = ds.block_shapes[0]
            win = Window(max(ds.width - bw, 0), max(ds.height - bh, 0), 1, 1)
            try:
                ds.read(1, window=win)
                ds.read(1, window=Window(0, 0, 1, 1))
            except RasterioError as e:
                raise UserInputError(
                    f"{path}: corrupt or truncated raster (reading its data failed: {e}); "
                    "re-download or re-export the file"
                ) from e


def open_raster(path: str | Path) -> Raster:
    """Open and check one imagery file; every problem is a :class:`UserInputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such imagery file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            src = rasterio.open(path)
        except RasterioError as e:
            raise UserInputError(f"{path}: not a readable GeoTIFF/raster ({e})") from e
    with src:
        if src.transform.is_identity:
            gcps = "it has ground control points only; " if src.gcps[0] else ""
            raise UserInputError(
                f"{path}: the raster has no geotransform (not georeferenced); {gcps}"
                "georeference it first, e.g. gdalwarp -t_srs EPSG:xxxx in.tif out.tif"
            )
        if src.crs is None:
            raise UserInputError(
                f"{path}: the raster has no CRS; assign the right one first, e.g. "
                "gdal_edit.py -a_srs EPSG:xxxx FILE"
            )
        if src.dtypes[0] != "uint8":
            raise UserInputError(
                f"{path}: expected 8-bit imagery (uint8), found {src.dtypes[0]}; convert it, "
                "e.g. gdal_translate -ot Byte -scale FILE out.tif"
            )
        rgb, alpha = band_layout(src)
        _check_blocks(path, src)
        lon_c = float(np.mean(transform_bounds(src.crs, "EPSG:4326", *src.bounds)[0::2]))
        dst = local_crs(round(lon_c))
        with quiet_affine():
            tr, _, _ = calculate_default_transform(src.crs, dst, src.width, src.height, *src.bounds)
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        return Raster(
            path=path,
            rgb=rgb,
            alpha=alpha,
            factors=list(src.overviews(1)),
            metres_per_px=float(abs(tr.a)),
            bounds_ll=(bounds[0], bounds[1], bounds[2], bounds[3]),
        )


def tile_half_degrees(lat: np.ndarray, tile_meters: float) -> tuple[np.ndarray, np.ndarray]:
    """Half the tile's latitude and longitude extent in degrees (spherical approximation)."""
    half_lat = np.degrees(tile_meters / 2.0 / EARTH_RADIUS_M) * np.ones_like(lat)
    coslat = np.cos(np.radians(np.clip(lat, -_MAX_ABS_LAT, _MAX_ABS_LAT)))
    return half_lat, half_lat / coslat


class OrthophotoTiles(TileSource):
    """Tiles cut on the fly from georeferenced rasters (see the module docstring for the rule).

    Not thread-safe (one GDAL handle per file); call :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        imagery: Sequence[str | Path],
        *,
        tile_meters: float = 70.0,
        max_nodata: float = MAX_NODATA,
    ) -> None:
        if not (math.isfinite(tile_meters) and tile_meters > 0):
            raise UserInputError(f"tile_meters must be a positive number, got {tile_meters}")
        if not imagery:
            raise UserInputError("no imagery files given")
        self.tile_meters = float(tile_meters)
        self.max_nodata = float(max_nodata)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            self.rasters = [open_raster(p) for p in imagery]

    # -- footprints ---------------------------------------------------------------------------
    def _overlap(self, records: pd.DataFrame) -> np.ndarray:
        """(N, F) bool: the tile's lat/lon box of row i intersects file f's footprint."""
        lat = records["latitude"].to_numpy(dtype=float)
        lon = records["longitude"].to_numpy(dtype=float)
        hlat, hlon = tile_half_degrees(lat, self.tile_meters)
        out = np.zeros((len(records), len(self.rasters)), dtype=bool)
        for j, r in enumerate(self.rasters):
            w, s, e, n = r.bounds_ll
            in_lat = (lat + hlat >= s) & (lat - hlat <= n)
            if w <= e:
                in_lon = (lon + hlon >= w) & (lon - hlon <= e)
            else:  # footprint crosses the antimeridian
                in_lon = (lon + hlon >= w) | (lon - hlon <= e)
            out[:, j] = in_lat & in_lon & (np.abs(lat) < _MAX_ABS_LAT)
        return out

    def available(self, records: pd.DataFrame) -> pd.Series:
        return pd.Series(self._overlap(records).any(axis=1), index=records.index)

    def describe(self, records: pd.DataFrame) -> list[str | None]:
        hit = self._overlap(records)
        return [self.rasters[int(np.argmax(h))].name if h.any() else None for h in hit]

    def check_coverage(self, records: pd.DataFrame, origin: str = "the houses") -> None:
        """Raise :class:`UserInputError` when the imagery overlaps none of the houses."""
        if len(records) == 0 or self._overlap(records).any():
            return
        lat, lon = records["latitude"], records["longitude"]
        boxes = "; ".join(
            f"{r.path}: lon {r.bounds_ll[0]:.5f}..{r.bounds_ll[2]:.5f}, "
            f"lat {r.bounds_ll[1]:.5f}..{r.bounds_ll[3]:.5f}"
            for r in self.rasters
        )
        raise UserInputError(
            f"the imagery covers none of {origin} (houses: lon {lon.min():.5f}..{lon.max():.5f}, "
            f"lat {lat.min():.5f}..{lat.max():.5f}; {boxes}). Check the CRS of the records "
            "(--crs) and of the rasters"
        )

    # -- reading ------------------------------------------------------------------------------
    def check_scale(self, size: int) -> None:
        """Refuse imagery too fine to read without overviews; warn about slow or coarse
        imagery for tiles of ``size`` px (:func:`~.imagery_checks.check_scale`)."""
        res = self.tile_meters / size
        for r in self.rasters:
            level = r.level_for(res)
            factor = r.factors[level] if level >= 0 else 1
            check_scale(r.path, r.metres_per_px, factor, self.tile_meters, size)

    def _warp(
        self, r: Raster, level: int, crs: CRS, transform: Any, size: int, resampling: Resampling
    ) -> np.ndarray:
        """(4, S, S) uint8: RGB and validity (alpha) of one tile from one file."""
        kw: dict[str, Any] = {"add_alpha": True} if r.alpha is None else {}
        src = r.dataset(level)
        with WarpedVRT(
            src,
            crs=crs,
            transform=transform,
            width=size,
            height=size,
            resampling=resampling,
            **kw,
        ) as vrt:
            return vrt.read(indexes=[*r.rgb, r.alpha or vrt.count])

    def tile(self, lat: float, lon: float, size: int, files: Sequence[int]) -> tuple[Any, str]:
        """One tile ``(S, S, 3)`` (or None) and a reason when it is not usable."""
        lon0 = round(lon)
        x, y = _to_local(lon0).transform(lon, lat)
        res = self.tile_meters / size
        half = self.tile_meters / 2
        transform = Affine(res, 0.0, x - half, 0.0, -res, y + half)  # north-up, centred
        rgb = np.zeros((3, size, size), dtype=np.uint8)
        valid = np.zeros((size, size), dtype=bool)
        errors = []
        for j in files:
            r = self.rasters[j]
            try:
                level = r.level_for(res)
                how = r.resampling_for(level, res)
                a = self._warp(r, level, local_crs(lon0), transform, size, how)
            except RasterioError as e:
                errors.append(f"{r.name} could not be read here ({e})")
                continue
            fill = (a[3] >= 128) & ~valid
            rgb[:, fill] = a[:3, fill]
            valid |= fill
            if valid.all():
                break
        missing = 1.0 - float(valid.mean())
        if missing > self.max_nodata:
            why = "; ".join(errors) or (
                f"{missing:.0%} of the tile is outside the imagery or nodata "
                f"(more than {self.max_nodata:.0%})"
            )
            return None, why
        return np.ascontiguousarray(rgb.transpose(1, 2, 0)), ""

    def read(
        self, records: pd.DataFrame, size: int, *, progress: bool = False, warn: bool = True
    ) -> TileBatch:
        from tqdm.auto import tqdm

        self.check_scale(size)
        n = len(records)
        pixels = np.zeros((n, size, size, 3), dtype=np.uint8)
        ok = np.zeros(n, dtype=bool)
        reasons: dict[int, str] = {}
        lat = records["latitude"].to_numpy(dtype=float)
        lon = records["longitude"].to_numpy(dtype=float)
        hit = self._overlap(records)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for i in tqdm(spatial_order(lat, lon), desc="tiles", disable=not progress, leave=False):
                files = np.flatnonzero(hit[i]).tolist()
                if abs(lat[i]) >= _MAX_ABS_LAT:
                    reasons[int(i)] = f"no north-up tile within {90 - _MAX_ABS_LAT:g}° of a pole"
                    continue
                if not files:
                    reasons[int(i)] = "outside the imagery (no file covers this house)"
                    continue
                tile, why = self.tile(float(lat[i]), float(lon[i]), size, files)
                if tile is None:
                    reasons[int(i)] = why
                else:
                    pixels[i], ok[i] = tile, True
        if warn and reasons:
            first = reasons[min(reasons)]
            warnings.warn(
                f"{len(reasons)} of {n} houses have no usable tile (first: {first}); those "
                "rows use the no-visual model",
                stacklevel=2,
            )
        return TileBatch(pixels=pixels, ok=ok, reasons=reasons)

    def clone(self) -> OrthophotoTiles:
        """The same imagery with its own file handles (one per thread)."""
        other = object.__new__(OrthophotoTiles)
        other.tile_meters, other.max_nodata = self.tile_meters, self.max_nodata
        other.rasters = [replace(r, levels={}) for r in self.rasters]
        return other

    def close(self) -> None:
        for r in self.rasters:
            r.close()

    def __enter__(self) -> OrthophotoTiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(r.name for r in self.rasters)
        return f"OrthophotoTiles([{names}], tile_meters={self.tile_meters:g})"


def spatial_order(lat: np.ndarray, lon: np.ndarray, strip_m: float = 256.0) -> np.ndarray:
    """Row indexes in strips of ``strip_m`` north to south, west to east inside a strip.

    Visiting houses in this order keeps the raster blocks in use within GDAL's capped cache.
    """
    strip = np.floor(np.radians(lat) * EARTH_RADIUS_M / strip_m)
    return np.lexsort((lon, -strip))


__all__ = [
    "GDAL_CACHE_BYTES",
    "MAX_NODATA",
    "SAME_SCALE",
    "OrthophotoTiles",
    "Raster",
    "local_crs",
    "open_raster",
    "spatial_order",
    "tile_half_degrees",
]
