"""What an orthophoto must be before tiles are cut from it: its bands, and its scale.

This module owns the checks :mod:`houseprice.data.houses.imagery` runs on a user's raster:

- :func:`band_layout`: which bands are red, green, blue and alpha. A raster with no colour band
  (a lone alpha band) and a palette (colour-mapped) raster are refused with the command that
  fixes them (reading palette indices as grey would give silently wrong tiles);
- :func:`check_scale`: the imagery's pixel size against the tile's. A tile whose read would
  pull more than :data:`MAX_SOURCE_PX` source pixels across (a very fine raster without
  overviews: seconds and gigabytes per tile) is refused, naming ``gdaladdo``; a slow but
  bounded read is warned about; imagery far coarser than the tile's pixels (every tile a few
  flat colours) is warned about, saying by how much;
- :func:`quiet_affine`: the ``affine`` package's "Use `@` matmul" deprecation warning that
  rasterio's own code triggers is kept out of the user's output.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rasterio.enums import ColorInterp

from houseprice.errors import UserInputError

#: A tile may read at most this many source pixels across (4096^2 RGBA: 64 MB per tile).
MAX_SOURCE_PX = 4096
#: Above this many source pixels across a tile, reading is slow: say so (with gdaladdo).
SLOW_SOURCE_PX = 1024
#: Imagery pixels this many times larger than the tile's pixels are warned about.
COARSE_FACTOR = 4.0


def band_layout(src: Any) -> tuple[tuple[int, int, int], int | None]:
    """RGB band indexes (grey replicated) and the alpha band index of an open raster."""
    ci = list(src.colorinterp)
    if ColorInterp.palette in ci:
        raise UserInputError(
            f"{src.name}: a palette (colour-mapped) raster: its pixels are indexes into a colour "
            f"map, not colours; expand it to RGB first: gdal_translate -expand rgb "
            f"{Path(src.name).name} rgb.tif"
        )
    alpha = ci.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in ci else None
    rgb = [
        ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) if c in ci
    ]
    if len(rgb) == 3:
        return (rgb[0], rgb[1], rgb[2]), alpha
    colour = [i + 1 for i in range(src.count) if i + 1 != alpha]
    if not colour:
        raise UserInputError(
            f"{src.name}: its only band is alpha (transparency), no colour band to cut tiles "
            "from; give the RGB (or grey) imagery"
        )
    if len(colour) >= 3:
        return (colour[0], colour[1], colour[2]), alpha
    return (colour[0], colour[0], colour[0]), alpha  # greyscale


def _levels(source_px: float, size: int) -> str:
    """Overview factors (2 4 8 ...) that bring ``source_px`` down to about ``size``."""
    top = max(1, math.ceil(math.log2(max(source_px / size, 2.0))))
    return " ".join(str(2**k) for k in range(1, top + 1))


def check_scale(
    path: Path, metres_per_px: float, factor: int, tile_meters: float, size: int
) -> None:
    """Refuse or warn about one raster's scale for tiles of ``size`` px over ``tile_meters``.

    ``metres_per_px`` is the raster's full-resolution pixel, ``factor`` the overview factor
    the tiles are read from (1: full resolution).
    """
    tile_res = tile_meters / size
    source_px = tile_meters / (metres_per_px * factor)
    fix = f"gdaladdo -r average {path.name} {_levels(source_px, size)}"
    where = "no overviews" if factor == 1 else f"its coarsest usable overview is {factor}x"
    if source_px > MAX_SOURCE_PX:
        raise UserInputError(
            f"{path}: {metres_per_px:.3g} m pixels and {where}: every {tile_meters:g} m tile "
            f"would read {source_px:,.0f} x {source_px:,.0f} pixels to make {size} x {size} "
            f"(seconds and gigabytes per house); build overviews first: {fix}"
        )
    if source_px > SLOW_SOURCE_PX:
        warnings.warn(
            f"{path.name}: {metres_per_px:.3g} m pixels and {where}: every tile reads "
            f"{source_px:,.0f} x {source_px:,.0f} pixels, which is slow; overviews make it "
            f"faster: {fix}",
            stacklevel=3,
        )
    if metres_per_px > tile_res * COARSE_FACTOR:
        warnings.warn(
            f"{path.name}: {metres_per_px:.3g} m pixels, {metres_per_px / tile_res:,.0f}x "
            f"coarser than the tiles' {tile_res:.3g} m pixels: its tiles are blurred or flat "
            "(a few colours), so visual features from it carry little; use finer imagery",
            stacklevel=3,
        )


@contextlib.contextmanager
def quiet_affine() -> Iterator[None]:
    """Hide affine's "Use `@` matmul" warning raised inside rasterio (not houseprice's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Use `@` matmul", category=DeprecationWarning)
        warnings.filterwarnings(
            "ignore", message=r"Use `@` matmul", category=PendingDeprecationWarning
        )
        yield


__all__ = ["COARSE_FACTOR", "MAX_SOURCE_PX", "band_layout", "check_scale", "quiet_affine"]
