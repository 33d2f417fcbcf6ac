"""Browser tests of the analyst features: contribution chart, area layers, 100k folder maps.

Like test_maps_browser.py: headless Chromium opens the page from disk, every request that is
not file:/data: is recorded and aborted, and any console error fails the test. Skipped only
when chromium is not installed. The 100k-house folder map takes ~25 s here (render ~15 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from map_synthetic import MakeValuations, city_valuations, with_contributions
from PIL import Image

from houseprice.maps import render_valuation_map
from houseprice.maps.browser import find_chromium, headless_chromium, open_page
from houseprice.maps.contributions import group_label, signed_money

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None, reason="chromium is not installed (bash .ci/install_browser.sh)"
    ),
]

_MAP_IDLE = "() => !document.querySelector('.leaflet-zoom-anim, .leaflet-pan-anim')"
_POPUP_IMAGES_LOADED = """() => {
    const images = [...document.querySelectorAll('.leaflet-popup-content img')];
    return images.length === 2 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""
# Zoom a folder map to house-level detail on chunk `i` (no animation).
_ZOOM_TO_CHUNK = """(i) => {
    const c = window.houseprice.chunked;
    c.map.setView(c.chunks[i].meta.c, 18, { animate: false });
}"""
# Page coordinates of the shown house nearest the centre of the view.
_CENTRE_HOUSE = """() => {
    const c = window.houseprice.chunked, map = c.map, size = map.getSize();
    let best = null;
    c.chunks.forEach((chunk) => {
        if (!chunk.shown) return;
        chunk.houses.forEach((house) => {
            const p = map.latLngToContainerPoint([house.lat, house.lon]);
            const d = Math.hypot(p.x - size.x / 2, p.y - size.y / 2);
            if (!best || d < best.d) best = { d, x: p.x, y: p.y };
        });
    });
    const box = map.getContainer().getBoundingClientRect();
    return { x: best.x + box.left, y: best.y + box.top };
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as launched:
        yield launched


def _chart(page: Page) -> list[tuple[str, str, str]]:
    """(row class, label, amount text) of every row of the open popup's chart."""
    rows = page.eval_on_selector_all(
        ".leaflet-popup-content .hp-c-table tr",
        "rows => rows.map(r => [r.className, r.querySelector('th').textContent,"
        " r.lastElementChild.textContent])",
    )
    return [tuple(r) for r in rows]


def test_contribution_chart_matches_the_frame(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations
) -> None:
    frame = with_contributions(make_valuations(5), seed=3)
    frame.loc[2, "contrib_image"] = np.nan  # a house without a usable tile
    html_path = render_valuation_map(frame, tmp_path / "map.html", tile_meters=50.0)
    page, log = open_page(browser, html_path)
    try:
        page.wait_for_function("document.querySelectorAll('path.hp-marker').length === 5")
        for index in (1, 2):
            page.wait_for_timeout(400)  # the last popup's auto-pan starts after it is added
            page.wait_for_function(_MAP_IDLE)  # a click during a pan lands on the map
            page.locator("path.hp-marker").nth(index).click()
            page.wait_for_selector(".leaflet-popup .hp-contrib")
            house_id = page.locator(".leaflet-popup .hp-head b").inner_text()
            row = frame.set_index("house_id").loc[house_id]
            groups = [c for c in frame.columns if c.startswith("contrib_")]
            used = sorted((c for c in groups if np.isfinite(row[c])), key=lambda c: -abs(row[c]))
            expected = [("hp-c-base", "base price", f"{row['base_price']:,.0f}")]
            expected += [
                ("hp-c-up" if row[c] >= 0 else "hp-c-down", group_label(c), signed_money(row[c]))
                for c in used
            ]
            expected += [
                ("hp-c-unused", group_label(c), "not used")
                for c in groups
                if not np.isfinite(row[c])
            ]
            assert _chart(page) == expected
            text = page.locator(".leaflet-popup-content").inner_text()
            assert "contrib_" not in text and "base_price" not in text
            colours = page.eval_on_selector_all(
                ".leaflet-popup-content .hp-c-bar i",
                "bars => bars.map(b => getComputedStyle(b).backgroundColor)",
            )
            assert len(set(colours)) == 2  # positive and negative bars differ
            page.locator(".leaflet-popup-close-button").click()
    finally:
        page.context.close()
    assert log.problems() == []


def test_area_layer_toggles_with_its_legend(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations
) -> None:
    frame = with_contributions(make_valuations(40, with_images=False))
    html_path = render_valuation_map(
        frame, tmp_path / "map.html", tile_meters=50.0, area_cell_meters=1000.0
    )
    page, log = open_page(browser, html_path)
    try:
        page.wait_for_function("document.querySelectorAll('path.hp-marker').length === 40")
        assert page.locator("path.hp-area-error").count() == 0
        page.get_by_label("area: median error").check()
        page.wait_for_function("document.querySelectorAll('path.hp-area-error').length > 0")
        drawn = page.locator("path.hp-area-error").count()
        assert page.locator(".hp-legend .hp-area-legend-error").count() == 1
        page.get_by_label("area: within ±10%").check()
        assert page.locator("path.hp-area-accuracy").count() == drawn  # same cells
        page.get_by_label("area: median error").uncheck()
        assert page.locator("path.hp-area-error").count() == 0
        assert page.locator(".hp-area-legend-error").count() == 0
        assert page.locator(".hp-area-legend-accuracy").count() == 1
        page.locator("path.hp-area-accuracy").first.hover(force=True)
        page.wait_for_selector(".leaflet-tooltip")
        assert "within ±10%" in page.locator(".leaflet-tooltip").inner_text()
    finally:
        page.context.close()
    assert log.problems() == []


def test_100k_house_folder_map_loads_offline(browser: Browser, tmp_path: Path) -> None:
    tile, heat = tmp_path / "tile.png", tmp_path / "heat.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tile)
    Image.fromarray(np.full((16, 16, 4), 200, np.uint8)).save(heat)
    frame = city_valuations(100_000, image=tile, heatmap=heat)
    start = time.perf_counter()
    index = render_valuation_map(frame, tmp_path / "city.html", tile_meters=60.0)
    print(f"render 100k: {time.perf_counter() - start:.1f} s")
    assert index == tmp_path / "city" / "index.html"
    n_chunks = len(list((tmp_path / "city" / "data").glob("chunk_*.js")))
    page, log = open_page(browser, index, viewport=(1280, 800))
    try:
        page.wait_for_function("document.querySelectorAll('.hp-chunk-icon').length > 0")
        page.wait_for_timeout(300)
        assert page.locator("path.hp-marker").count() == 0  # city view: overview rings only
        assert not any("/data/chunk_" in u for u in log.requests)
        page.evaluate(_ZOOM_TO_CHUNK, 40)
        page.wait_for_function("document.querySelectorAll('path.hp-marker').length > 0")
        page.wait_for_function(_MAP_IDLE)
        loaded = [u for u in log.requests if "/data/chunk_" in u]
        assert 0 < len(loaded) < n_chunks / 4  # only the chunks in view
        point = page.evaluate(_CENTRE_HOUSE)
        page.mouse.click(point["x"], point["y"])
        page.wait_for_function(_POPUP_IMAGES_LOADED)
        assert page.locator(".leaflet-popup .hp-contrib").count() == 1
        page.get_by_label("relevance heatmaps").check()
        page.wait_for_function("document.querySelectorAll('img.hp-heatmap').length > 0")
        assert page.evaluate("performance.memory.usedJSHeapSize") < 300 * 2**20
    finally:
        page.context.close()
    assert log.requests and all(u.startswith(("file:", "data:")) for u in log.requests)
    assert log.problems() == []
