"""Browser test: the valuation map opened from disk in headless Chromium, fully offline.

Checks zero network requests (anything not file:/data: is recorded and aborted, so the test
never touches the network), zero console errors, that markers render, that clicking a marker
opens its popup with both images loaded, that the heatmap layer draws loaded overlays and
that clustering works; saves a screenshot. Skipped only when chromium is not installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from map_synthetic import MALICIOUS_ID, MakeValuations

from houseprice.maps import render_valuation_map
from houseprice.maps.browser import find_chromium, headless_chromium, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium() is None, reason="chromium is not installed (bash .ci/install_browser.sh)"
    ),
]

SCREENSHOT_COPY = Path(__file__).parent / "_out" / "map_screenshot.png"
_IMAGES_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""


_MAP_IDLE = "() => !document.querySelector('.leaflet-zoom-anim, .leaflet-pan-anim')"


def _open_popup(page: Page, marker: Locator) -> None:
    """Click a marker once the initial fit-to-data zoom has settled; wait for its popup.

    A click during Leaflet's zoom animation can land where the marker *was* (seen ~1 run in
    8), so the test waits for the map to be idle first.
    """
    page.wait_for_function(_MAP_IDLE)
    marker.click()
    page.wait_for_selector(".leaflet-popup")
    page.wait_for_function(
        "getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with headless_chromium() as launched:
        yield launched


def test_map_opens_offline_with_popup_and_heatmaps(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations
) -> None:
    html_path = render_valuation_map(make_valuations(5), tmp_path / "map.html", tile_meters=50.0)
    page, log = open_page(browser, html_path)
    try:
        page.wait_for_function("document.querySelectorAll('path.hp-marker').length === 5")
        assert page.locator("path.hp-marker.hp-within").count() >= 1
        assert page.locator(".hp-legend").count() == 1

        _open_popup(page, page.locator("path.hp-marker").first)  # house 0: the malicious id
        popup_images = ".leaflet-popup-content img"
        page.wait_for_function(f"({_IMAGES_LOADED})('{popup_images}')")
        assert page.locator(popup_images).count() == 2
        widths = page.eval_on_selector_all(popup_images, "els => els.map(e => e.naturalWidth)")
        assert all(w > 0 for w in widths)
        assert page.locator(".hp-head b").inner_text() == MALICIOUS_ID  # shown as text
        assert page.evaluate("window.__xss") is None  # and never executed
        popup_text = page.locator(".leaflet-popup-content").inner_text()
        assert "predicted" in popup_text and "sold" in popup_text and "error" in popup_text

        page.get_by_label("relevance heatmaps").check()
        page.wait_for_function(f"({_IMAGES_LOADED})('img.hp-heatmap')")
        assert page.locator("img.hp-heatmap").count() == 5

        # the popup fades in (CSS transition): let it finish so the screenshot shows it solid
        page.wait_for_function(
            "getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'"
        )
        screenshot = tmp_path / "map_screenshot.png"
        page.screenshot(path=str(screenshot))
        SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT_COPY)
        print(f"map screenshot: {screenshot} (copy: {SCREENSHOT_COPY})")
    finally:
        page.context.close()
    assert log.requests and all(u.startswith(("file:", "data:")) for u in log.requests)
    assert log.problems() == []


def test_clustered_map_renders_without_errors(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations
) -> None:
    html_path = render_valuation_map(
        make_valuations(30), tmp_path / "map.html", tile_meters=50.0, cluster_threshold=10
    )
    page, log = open_page(browser, html_path)
    try:
        # once the zoom animation has settled, clusters + single markers account for all 30
        page.wait_for_function("""() => {
            const spans = [...document.querySelectorAll('.hp-cluster span')];
            const grouped = spans.reduce((sum, s) => sum + Number(s.textContent), 0);
            return spans.length > 0
                && grouped + document.querySelectorAll('path.hp-marker').length === 30;
        }""")
        shown = page.locator(".hp-cluster-icon").count() + page.locator("path.hp-marker").count()
        assert 1 <= shown < 30  # some houses are grouped into clusters
    finally:
        page.context.close()
    assert log.problems() == []


def test_popup_pans_clear_of_the_legend(
    browser: Browser, tmp_path: Path, make_valuations: MakeValuations
) -> None:
    # houses lie on a SW→NE line, so in a small window (640 px) the last one sits just left of
    # the legend; its popup opens upwards and, without the pan padding, slides under it
    # (measured: popup x 123–402 vs legend from x 340 without the fix; 49–328 with it)
    html_path = render_valuation_map(make_valuations(5), tmp_path / "map.html", tile_meters=50.0)
    page, log = open_page(browser, html_path, viewport=(640, 640))
    try:
        page.wait_for_function("document.querySelectorAll('path.hp-marker').length === 5")
        _open_popup(page, page.locator("path.hp-marker").last)
        page.wait_for_timeout(400)  # auto-pan starts after the popup is added
        page.wait_for_function(_MAP_IDLE)
        popup = page.locator(".leaflet-popup-content-wrapper").bounding_box()
        legend = page.locator(".hp-legend").bounding_box()
        assert popup is not None and legend is not None
        overlap_x = min(popup["x"] + popup["width"], legend["x"] + legend["width"]) - max(
            popup["x"], legend["x"]
        )
        overlap_y = min(popup["y"] + popup["height"], legend["y"] + legend["height"]) - max(
            popup["y"], legend["y"]
        )
        assert overlap_x <= 0 or overlap_y <= 0, (popup, legend)
    finally:
        page.context.close()
    assert log.problems() == []
