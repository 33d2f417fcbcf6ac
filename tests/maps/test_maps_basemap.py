"""The imagery under the map (houseprice.maps.basemap), without a browser.

A UTM GeoTIFF whose west part is one colour and east part another, split at a known longitude:
the overlay image and the tiles must put the split where Web Mercator puts that longitude,
every tile Leaflet can ask for must exist, low zooms must read an overview (memory flat in the
raster's size), and imagery away from the houses is a clear error.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from houseprice.data.houses.imagery import Raster, open_raster
from houseprice.errors import UserInputError
from houseprice.maps.basemap import imagery_overlay, write_tile_pyramid

WEST, EAST = (200, 30, 30), (30, 30, 200)
SPLIT_LON = -93.6175
EXTENT = (42.028, -93.622, 42.034, -93.613)  # the houses: south, west, north, east
HALF = 20037508.342789244


@pytest.fixture
def ortho(tmp_path: Path) -> Path:
    to_utm = Transformer.from_crs(4326, 32615, always_xy=True)
    x0, y0 = to_utm.transform(-93.630, 42.022)
    x1, y1 = to_utm.transform(-93.605, 42.040)
    res = 1.0
    width, height = int((x1 - x0) / res), int((y1 - y0) / res)
    xs = x0 + (np.arange(width) + 0.5) * res
    ys = y1 - (np.arange(height) + 0.5) * res
    lon, _ = Transformer.from_crs(32615, 4326, always_xy=True).transform(*np.meshgrid(xs, ys))
    west = lon < SPLIT_LON
    path = tmp_path / "ortho.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
        crs="EPSG:32615", transform=from_origin(x0, y1, res, res), tiled=True,
        blockxsize=256, blockysize=256,
    ) as dst:  # fmt: skip
        for band in range(3):
            dst.write(np.where(west, WEST[band], EAST[band]).astype(np.uint8), band + 1)
        dst.build_overviews([2, 4, 8, 16])
    return path


def _merc_x(lon: float) -> float:
    return math.radians(lon) * 6378137.0


def _split_column(rgba: np.ndarray) -> float:
    """Column where the row through the middle turns from the west to the east colour."""
    row = rgba[rgba.shape[0] // 2].astype(int)
    is_west = np.abs(row[:, :3] - WEST).max(axis=1) < 40
    is_east = np.abs(row[:, :3] - EAST).max(axis=1) < 40
    assert is_west.any() and is_east.any()
    return (np.flatnonzero(is_west).max() + np.flatnonzero(is_east).min() + 1) / 2


def test_overlay_is_georeferenced(ortho: Path) -> None:
    layer = imagery_overlay([open_raster(ortho)], EXTENT, max_px=512)
    assert not layer.tiled and layer.url.startswith("data:image/webp;base64,")
    data = base64.b64decode(layer.url.split(",", 1)[1])
    rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    (south, west), (north, east) = layer.bounds
    assert south < EXTENT[0] and west < EXTENT[1] and north > EXTENT[2] and east > EXTENT[3]
    assert max(rgba.shape[:2]) == 512
    x0, x1 = _merc_x(west), _merc_x(east)
    want = (_merc_x(SPLIT_LON) - x0) / (x1 - x0) * rgba.shape[1]
    assert _split_column(rgba) == pytest.approx(want, abs=1.5)
    assert (rgba[..., 3] > 0).mean() > 0.99  # the imagery covers the whole padded extent


def test_tile_pyramid_covers_what_leaflet_asks_for(ortho: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imagery"
    layer = write_tile_pyramid([open_raster(ortho)], EXTENT, folder, max_zoom=20)
    assert layer.tiled and layer.url == "imagery/{z}/{x}/{y}.webp"
    assert layer.max_zoom == 17  # 1 m pixels at 42° N: zoom 17 is the first finer level
    assert layer.min_zoom < layer.max_zoom
    (south, west), (north, east) = layer.bounds
    written = {p.relative_to(folder).as_posix() for p in folder.rglob("*.webp")}
    assert len(written) == layer.n_images
    to_merc = Transformer.from_crs(4326, 3857, always_xy=True)
    (mx0, mx1), (my0, my1) = to_merc.transform([west, east], [south, north])
    for z in range(layer.min_zoom, layer.max_zoom + 1):  # tiles overlapping the bounds
        size = 2 * HALF / 2**z
        for x in range(int((mx0 + HALF) // size), int((mx1 + HALF) // size) + 1):
            for y in range(int((HALF - my1) // size), int((HALF - my0) // size) + 1):
                assert f"{z}/{x}/{y}.webp" in written
    # the split lies where Web Mercator puts it, in the finest tile that holds it
    z = layer.max_zoom
    size = 2 * HALF / 2**z
    mx = _merc_x(SPLIT_LON)
    my = to_merc.transform(SPLIT_LON, (EXTENT[0] + EXTENT[2]) / 2)[1]
    x, y = int((mx + HALF) // size), int((HALF - my) // size)
    rgba = np.asarray(Image.open(folder / f"{z}/{x}/{y}.webp"))
    want = (mx - (-HALF + x * size)) / size * 256
    if 8 < want < 248:
        assert _split_column(rgba) == pytest.approx(want, abs=1.5)


def test_low_zooms_read_overviews(
    ortho: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels: list[int] = []
    real = Raster.dataset

    def spy(self: Raster, level: int):  # type: ignore[no-untyped-def]
        levels.append(level)
        return real(self, level)

    monkeypatch.setattr(Raster, "dataset", spy)
    write_tile_pyramid([open_raster(ortho)], EXTENT, tmp_path / "imagery")
    assert min(levels) == -1  # the finest zoom reads full resolution
    assert max(levels) >= 0  # the coarsest zoom (3.5 m pixels) reads the 2 m overview
    levels.clear()
    imagery_overlay([open_raster(ortho)], EXTENT, max_px=64)  # 1.4 km in 64 px: 22 m pixels
    assert levels == [3]  # the 16 m overview, not the 1 m raster


def test_imagery_away_from_the_houses(ortho: Path) -> None:
    with pytest.raises(UserInputError, match="covers none of the houses"):
        imagery_overlay([open_raster(ortho)], (10.0, 10.0, 10.01, 10.01))
    with pytest.raises(UserInputError, match="no imagery"):
        imagery_overlay([], EXTENT)
