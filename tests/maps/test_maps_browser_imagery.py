"""Browser test: the orthophoto under the map draws from file:// with no network request.

A small GeoTIFF (UTM, with overviews) of a flat, unmistakable colour lies under the houses;
the page is opened in headless Chromium (every request that is not file:/data: is recorded and
aborted). Checked for a single-file map (one embedded image) and a folder map (a tile pyramid
in the folder): the imagery's pixels cover much of the screenshot, unticking the layer in the
layer control removes them, and the page made no network request and logged no error. With an
online street layer (``base_tiles_url``, ``--basemap osm``) the page does ask the network:
that layer is opt-in only.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import rasterio
from map_synthetic import MakeValuations
from PIL import Image
from pyproj import Transformer
from rasterio.transform import from_origin

from houseprice.data.houses.imagery import open_raster
from houseprice.maps import render_valuation_map
from houseprice.maps.browser import find_chromium, headless_chromium, open_page
from houseprice.maps.render import IMAGERY_NAME

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None, reason="chromium is not installed (bash .ci/install_browser.sh)"
    ),
]

COLOUR = (203, 17, 181)  # magenta: nothing else on the page has it
PANE_IMAGES = ".leaflet-hp-imagery-pane img"
_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def orthophoto(tmp_path: Path) -> Path:
    """A 0.5 m UTM GeoTIFF of one colour over the houses of ``make_valuations`` (Ames)."""
    to_utm = Transformer.from_crs(4326, 32615, always_xy=True)
    x0, y0 = to_utm.transform(-93.630, 42.022)
    x1, y1 = to_utm.transform(-93.605, 42.042)
    res = 0.5
    width, height = int((x1 - x0) / res), int((y1 - y0) / res)
    path = tmp_path / "ortho.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=3,
        dtype="uint8",
        crs="EPSG:32615",
        transform=from_origin(x0, y1, res, res),
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as dst:
        for band, value in enumerate(COLOUR, start=1):
            dst.write(np.full((height, width), value, np.uint8), band)
        dst.build_overviews([2, 4, 8, 16, 32])
    return path


def _imagery_share(page: Page) -> float:
    """Share of the screenshot's pixels with the orthophoto's colour."""
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), dtype=int)
    close = np.abs(shot - np.array(COLOUR)).max(axis=2) <= 12
    return float(close.mean())


def _check_draws_and_toggles(page: Page) -> None:
    page.wait_for_function(f"({_LOADED})('{PANE_IMAGES}')")
    page.wait_for_function("!document.querySelector('.leaflet-zoom-anim, .leaflet-pan-anim')")
    assert _imagery_share(page) > 0.3
    page.get_by_label(IMAGERY_NAME).uncheck()
    assert page.locator(PANE_IMAGES).count() == 0
    assert _imagery_share(page) < 0.01
    page.get_by_label(IMAGERY_NAME).check()
    page.wait_for_function(f"({_LOADED})('{PANE_IMAGES}')")


def test_single_file_map_draws_imagery_offline(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations, orthophoto: Path
) -> None:
    page_path = render_valuation_map(
        make_valuations(6),
        tmp_path / "map.html",
        tile_meters=50.0,
        imagery=[open_raster(orthophoto)],
    )
    assert not (tmp_path / "map").exists()  # one self-contained file
    page, log = open_page(browser, page_path)
    try:
        _check_draws_and_toggles(page)
        assert page.locator(PANE_IMAGES).first.get_attribute("src").startswith("data:image/")
    finally:
        page.context.close()
    assert all(u.startswith(("file:", "data:")) for u in log.requests)
    assert log.problems() == []


def test_folder_map_draws_imagery_tiles_offline(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations, orthophoto: Path
) -> None:
    page_path = render_valuation_map(
        make_valuations(6),
        tmp_path / "map.html",
        tile_meters=50.0,
        imagery=[open_raster(orthophoto)],
        folder_threshold=3,
    )
    assert page_path == tmp_path / "map" / "index.html"
    assert list((tmp_path / "map" / "imagery").rglob("*.webp"))
    page, log = open_page(browser, page_path)
    try:
        _check_draws_and_toggles(page)
        tiles = [u for u in log.requests if "/imagery/" in u]
        assert tiles and all(u.startswith("file:") for u in tiles)
    finally:
        page.context.close()
    assert all(u.startswith(("file:", "data:")) for u in log.requests)
    assert log.problems() == []


def test_street_layer_is_opt_in(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations, orthophoto: Path
) -> None:
    page_path = render_valuation_map(
        make_valuations(3),
        tmp_path / "map.html",
        tile_meters=50.0,
        imagery=[open_raster(orthophoto)],
        base_tiles_url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    )
    page, log = open_page(browser, page_path)
    try:
        page.wait_for_function(f"({_LOADED})('{PANE_IMAGES}')")
        page.wait_for_function("() => document.querySelectorAll('.leaflet-tile').length > 0")
    finally:
        page.context.close()
    assert any(u.startswith("https://tile.openstreetmap.org/") for u in log.blocked)
