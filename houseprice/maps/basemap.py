"""The imagery under a valuation map: the orthophotos the houses were valued from, offline.

This module owns turning GeoTIFF/COG orthophotos (any CRS, several files, opened and checked by
the caller with :func:`houseprice.data.houses.imagery.open_raster`: maps imports only leaves,
so the rasters come in as :class:`ImageryRaster` objects) into what Leaflet draws under the
houses, without a server or a network:

* a **single-file map** gets one overlay image (:func:`imagery_overlay`): the imagery around the
  houses warped to Web Mercator (EPSG:3857, the map's projection) at most ``max_px`` pixels on
  its longer side, embedded as a ``data:`` URI;
* a **folder map** gets a tile pyramid (:func:`write_tile_pyramid`): 256 px Web-Mercator
  tiles ``imagery/{z}/{x}/{y}.webp`` from the zoom where the houses span about two tiles to the
  imagery's native resolution (Leaflet scales the last level further in), only over the houses'
  extent, loaded by the browser only when in view.

Memory is flat in the raster's size: every image is one warped read of its own output size
(``rasterio.vrt.WarpedVRT``) from the coarsest overview that is still as fine as the output
(``level_for``), so a low zoom reads an overview, never the whole raster.
Rasters later in the list are drawn over earlier ones; outside the imagery tiles are
transparent. Where the imagery lies in the layer control is :mod:`houseprice.maps.layers`' job.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from affine import Affine
from PIL import Image
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from houseprice.errors import UserInputError

__all__ = ["ImageryLayer", "ImageryRaster", "imagery_overlay", "write_tile_pyramid"]

TILE_PX = 256
WEB_MERCATOR = "EPSG:3857"
_HALF = 20037508.342789244  # half the Web-Mercator world width, metres
_EQUATOR_M_PER_PX = 2 * _HALF / TILE_PX  # zoom 0 resolution at the equator
IMAGE_FORMAT = "webp"  # lossy with alpha: small tiles, transparent outside the imagery
IMAGE_QUALITY = 80
#: The houses' extent is widened by this share of its size (at least ``_PAD_MIN_M``) so that
#: the imagery also shows around the outermost houses.
_PAD_SHARE = 0.05
_PAD_MIN_M = 150.0


@dataclass(frozen=True)
class ImageryLayer:
    """What the page draws: an image ``url`` (a ``data:`` URI, or a relative tile template
    with ``{z}/{x}/{y}``) over ``bounds`` ([[south, west], [north, east]])."""

    url: str
    bounds: list[list[float]]
    tiled: bool
    min_zoom: int = 0  # tiles: the pyramid's coarsest level
    max_zoom: int = 0  # tiles: its finest level (native resolution)
    n_images: int = 1  # tiles written (1 for an overlay)
    attribution: str = ""


class ImageryRaster(Protocol):
    """One open orthophoto (``houseprice.data.houses.imagery.Raster``)."""

    rgb: tuple[int, int, int]
    alpha: int | None
    metres_per_px: float
    bounds_ll: tuple[float, float, float, float]

    @property
    def name(self) -> str: ...

    def level_for(self, metres_per_px: float) -> int: ...

    def dataset(self, level: int) -> Any: ...


def _checked(rasters: Sequence[ImageryRaster]) -> list[ImageryRaster]:
    if not rasters:
        raise UserInputError("no imagery files given for the map")
    return list(rasters)


def _mercator_box(
    rasters: list[ImageryRaster], extent: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """West, south, east, north (EPSG:3857) of the imagery over the padded houses' extent."""
    south, west, north, east = extent
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", WEB_MERCATOR, west, south, east, north)
    scale = math.cos(math.radians((south + north) / 2))  # mercator metres per ground metre
    pad = max(_PAD_SHARE * max(x1 - x0, y1 - y0), _PAD_MIN_M / scale)
    boxes = [
        transform_bounds("EPSG:4326", WEB_MERCATOR, *r.bounds_ll, densify_pts=21) for r in rasters
    ]
    ix0, iy0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    ix1, iy1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    box = (max(x0 - pad, ix0), max(y0 - pad, iy0), min(x1 + pad, ix1), min(y1 + pad, iy1))
    if box[0] >= box[2] or box[1] >= box[3]:
        names = ", ".join(r.name for r in rasters)
        raise UserInputError(
            f"the map imagery ({names}) covers none of the houses; give the orthophotos "
            "the houses were valued from"
        )
    return box


def _latlon_bounds(box: tuple[float, float, float, float]) -> list[list[float]]:
    w, s, e, n = transform_bounds(WEB_MERCATOR, "EPSG:4326", *box)
    return [[round(s, 7), round(w, 7)], [round(n, 7), round(e, 7)]]


def render_rgba(
    rasters: list[ImageryRaster],
    box: tuple[float, float, float, float],
    width: int,
    height: int,
) -> np.ndarray:
    """(height, width, 4) uint8 RGBA of the Web-Mercator ``box`` (west, south, east, north),
    alpha 0 where no raster has data; one warped read per raster at the output's size."""
    x0, y0, x1, y1 = box
    res = (x1 - x0) / width
    lat = math.degrees(math.atan(math.sinh((y0 + y1) / 2 / 6378137.0)))
    ground = res * math.cos(math.radians(lat))  # metres on the ground per output pixel
    transform = Affine(res, 0.0, x0, 0.0, -(y1 - y0) / height, y1)
    out = np.zeros((height, width, 4), np.uint8)
    for raster in rasters:
        level = raster.level_for(ground)
        src = raster.dataset(level)
        options = {"add_alpha": True} if raster.alpha is None else {}
        with WarpedVRT(
            src,
            crs=WEB_MERCATOR,
            transform=transform,
            width=width,
            height=height,
            resampling=Resampling.bilinear,
            **options,
        ) as vrt:
            alpha_band = raster.alpha if raster.alpha is not None else vrt.count
            rgba = vrt.read([*raster.rgb, alpha_band])  # (4, height, width)
        seen = rgba[3] > 0
        out[seen] = np.moveaxis(rgba, 0, -1)[seen]
    return out


def _encode(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, IMAGE_FORMAT.upper(), quality=IMAGE_QUALITY)
    return buf.getvalue()


def _attribution(rasters: list[ImageryRaster]) -> str:
    return "imagery: " + ", ".join(r.name for r in rasters)


def imagery_overlay(
    rasters: Sequence[ImageryRaster],
    extent: tuple[float, float, float, float],
    *,
    max_px: int = 2048,
) -> ImageryLayer:
    """One overlay image of the imagery over the houses' ``extent`` (south, west, north,
    east), at most ``max_px`` on its longer side and never finer than the imagery."""
    rasters = _checked(rasters)
    box = _mercator_box(rasters, extent)
    span = max(box[2] - box[0], box[3] - box[1])
    lat = (extent[0] + extent[2]) / 2
    native = min(r.metres_per_px for r in rasters) / math.cos(math.radians(lat))
    res = max(span / max_px, native)
    width = max(1, round((box[2] - box[0]) / res))
    height = max(1, round((box[3] - box[1]) / res))
    data = _encode(render_rgba(rasters, box, width, height))
    url = f"data:image/{IMAGE_FORMAT};base64," + base64.b64encode(data).decode("ascii")
    return ImageryLayer(url, _latlon_bounds(box), False, attribution=_attribution(rasters))


def _tile_range(box: tuple[float, float, float, float], zoom: int) -> tuple[range, range]:
    size = 2 * _HALF / 2**zoom
    xs = range(math.floor((box[0] + _HALF) / size), math.floor((box[2] + _HALF) / size) + 1)
    ys = range(math.floor((_HALF - box[3]) / size), math.floor((_HALF - box[1]) / size) + 1)
    return xs, ys


def zoom_levels(
    rasters: list[ImageryRaster], box: tuple[float, float, float, float], max_zoom: int
) -> tuple[int, int]:
    """The pyramid's coarsest zoom (the box spans about two tiles) and finest (the imagery's
    native resolution, at most ``max_zoom``)."""
    lat = math.degrees(math.atan(math.sinh((box[1] + box[3]) / 2 / 6378137.0)))
    native = min(r.metres_per_px for r in rasters)
    finest = math.ceil(math.log2(_EQUATOR_M_PER_PX * math.cos(math.radians(lat)) / native))
    finest = max(0, min(finest, max_zoom))
    span = max(box[2] - box[0], box[3] - box[1])
    coarsest = max(0, min(finest, math.floor(math.log2(4 * _HALF / span))))
    return coarsest, finest


def write_tile_pyramid(
    rasters: Sequence[ImageryRaster],
    extent: tuple[float, float, float, float],
    folder: Path,
    *,
    max_zoom: int = 20,
    url_prefix: str = "imagery",
) -> ImageryLayer:
    """Web-Mercator tiles ``folder/{z}/{x}/{y}.webp`` of the imagery over the houses'
    ``extent`` (south, west, north, east); every tile the page may ask for is written."""
    rasters = _checked(rasters)
    box = _mercator_box(rasters, extent)
    low, high = zoom_levels(rasters, box, max_zoom)
    count = 0
    for z in range(low, high + 1):
        size = 2 * _HALF / 2**z
        xs, ys = _tile_range(box, z)
        for x in xs:
            (folder / str(z) / str(x)).mkdir(parents=True, exist_ok=True)
            for y in ys:
                tile = (-_HALF + x * size, _HALF - (y + 1) * size)
                tile_box = (tile[0], tile[1], tile[0] + size, tile[1] + size)
                rgba = render_rgba(rasters, tile_box, TILE_PX, TILE_PX)
                path = folder / str(z) / str(x) / f"{y}.{IMAGE_FORMAT}"
                path.write_bytes(_encode(rgba))
                count += 1
    url = f"{url_prefix}/{{z}}/{{x}}/{{y}}.{IMAGE_FORMAT}"
    # Leaflet asks only for tiles overlapping the bounds: shrink them by a hair so that a
    # rounding difference never makes it ask for a tile just outside what was written
    eps = 1e-3
    inner = (box[0] + eps, box[1] + eps, box[2] - eps, box[3] - eps)
    return ImageryLayer(
        url,
        _latlon_bounds(inner),
        True,
        min_zoom=low,
        max_zoom=high,
        n_images=count,
        attribution=_attribution(rasters),
    )
