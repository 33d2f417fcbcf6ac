"""Tests for houseprice.maps.valuation_map without a browser: content, offline-ness, escaping."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from map_synthetic import MALICIOUS_ID, MakeValuations, synthetic_heatmap, synthetic_tile
from PIL import Image
from pyproj import Geod

from houseprice.maps import (
    OUTCOMES,
    classify_outcome,
    render_valuation_map,
    save_overlay_png,
    tile_footprint_bounds,
)
from houseprice.maps.assets import offline_assets

_DATA = re.compile(
    r'<script type="application/json" id="hp-valuations-data">(.*?)</script>', re.DOTALL
)
_KEYS = [o.key for o in OUTCOMES]


class _ResourceCollector(HTMLParser):
    """Collects every URL an HTML page would fetch from its tags, and the inline CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "data", "poster", "srcset") and value is not None:
                self.urls.append(value)
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def _payload(page: str) -> dict[str, Any]:
    match = _DATA.search(page)
    assert match is not None, "data block missing"
    return json.loads(match.group(1))


def _render(tmp_path: Path, frame, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    out = render_valuation_map(frame, tmp_path / "out" / "map.html", tile_meters=50.0, **kwargs)
    page = out.read_text(encoding="utf-8")
    return page, _payload(page)


@pytest.mark.parametrize(
    ("predicted", "price", "expected"),
    [
        (110.0, 100.0, "within"),
        (90.0, 100.0, "within"),
        (100.0, 100.0, "within"),
        (110.5, 100.0, "over"),
        (89.5, 100.0, "under"),
        (100.0, float("nan"), "unknown"),
        (100.0, None, "unknown"),
    ],
)
def test_classify_outcome(predicted: float, price: float | None, expected: str) -> None:
    assert classify_outcome(predicted, price) == expected


def test_footprint_is_tile_meters_on_the_ground() -> None:
    geod = Geod(ellps="WGS84")
    for lat in (0.0, 42.03, 65.0):
        south, west, north, east = tile_footprint_bounds(lat, 10.0, 100.0)[0]
        _, _, north_south = geod.inv(10.0, south, 10.0, north)
        _, _, east_west = geod.inv(west, lat, east, lat)
        assert north_south == pytest.approx(100.0, rel=6e-3)
        assert east_west == pytest.approx(100.0, rel=6e-3)
        assert (south + north) / 2 == pytest.approx(lat)
        assert (west + east) / 2 == pytest.approx(10.0)
    with pytest.raises(ValueError, match="tile_meters"):
        tile_footprint_bounds(0.0, 0.0, -5.0)


def test_page_is_self_contained(tmp_path: Path, make_valuations: MakeValuations) -> None:
    page, data = _render(tmp_path, make_valuations(5))
    collector = _ResourceCollector()
    collector.feed(page)
    assert collector.urls == []  # no <script src>, <link href>, <img src>: everything inline
    css_urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", "".join(collector.styles))
    assert css_urls and all(u.startswith(("data:", "#default#VML")) for u in css_urls)
    assert all(
        entry[0].startswith(("data:image/jpeg;base64,", "data:image/png;base64,"))
        for entry in data["images"]
    )
    assert "sourceMappingURL" not in page
    assert "L.tileLayer" not in page  # no base map unless asked for
    assert offline_assets().versions["leaflet"].startswith("1.")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["map.html"]  # atomic, no temp


def test_outcomes_popups_and_overlays(tmp_path: Path, make_valuations: MakeValuations) -> None:
    prices = [200_000.0, 210_000.0, 220_000.0, 230_000.0, float("nan")]
    frame = make_valuations(
        5, prices=prices, predicted=[200_000.0, 273_000.0, 154_000.0, 241_500.0, 250_000.0]
    )
    _, data = _render(tmp_path, frame, title="Ames test")
    houses = data["houses"]
    assert [_KEYS[h["o"]] for h in houses] == ["within", "over", "under", "within", "unknown"]
    assert data["cluster"] is False
    info = houses[1]["info"]
    assert "273,000" in info and "210,000" in info and "+30.0%" in info
    assert "bedrooms" in info and "area_sqft" in info and "1,501.5" in info
    assert "2021-06-01" in info and "visual features" in info
    assert "unknown" in houses[4]["info"]
    assert "(2)" in data["legend"] and "Ames test" in data["legend"]
    # every house has both thumbnails, the heatmap footprint is centred on the house
    for house, row in zip(houses, frame.itertuples(), strict=True):
        assert house["t"] >= 0 and house["h"] >= 0 and house["t"] != house["h"]
        south, west, north, east = house["b"]
        assert (south + north) / 2 == pytest.approx(row.latitude, abs=1e-6)
        assert (west + east) / 2 == pytest.approx(row.longitude, abs=1e-6)
        half_lat = math.degrees(25.0 / 6_371_008.8)
        assert north - south == pytest.approx(2 * half_lat, abs=2.1e-7)  # 7-decimal rounding


def test_thumbnails_are_downscaled(tmp_path: Path, make_valuations: MakeValuations) -> None:
    _, data = _render(tmp_path, make_valuations(2), thumb_px=32)
    for uri, width, height in data["images"]:
        assert (width, height) == (32, 32)
        encoded = uri.split(",", 1)[1]
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            assert image.size == (32, 32)


def test_input_text_is_escaped(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(2)
    frame["<b>note</b>"] = ["</script><script>alert(2)</script>", "a & b"]
    page, data = _render(tmp_path, frame, title="<i>t</i>")
    for raw in (MALICIOUS_ID, "<script>alert", "alert(2)</script>", "<b>note</b>", "<i>t</i>"):
        assert raw not in page
    info = data["houses"][0]["info"]
    assert html.escape(MALICIOUS_ID) in info
    assert html.escape("</script><script>alert(2)</script>") in info
    assert html.escape("<b>note</b>") in info
    assert html.escape(MALICIOUS_ID) in data["houses"][0]["label"]
    assert "<title>&lt;i&gt;t&lt;/i&gt;</title>" in page


def test_clustering_threshold(tmp_path: Path, make_valuations: MakeValuations) -> None:
    _, data = _render(tmp_path, make_valuations(4), cluster_threshold=3)
    assert data["cluster"] is True
    _, data = _render(tmp_path, make_valuations(3), cluster_threshold=3)
    assert data["cluster"] is False


def test_houses_without_images(tmp_path: Path, make_valuations: MakeValuations) -> None:
    _, data = _render(tmp_path, make_valuations(3, with_images=False))
    assert data["images"] == []
    assert all(h["t"] == -1 and h["h"] == -1 for h in data["houses"])
    assert "not used" in data["houses"][0]["info"]


def test_optional_base_tiles(tmp_path: Path, make_valuations: MakeValuations) -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    page, _ = _render(
        tmp_path, make_valuations(2), base_tiles_url=url, base_tiles_attribution="© example"
    )
    assert url in page and "L.tileLayer" in page
    with pytest.raises(ValueError, match="base_tiles_url"):
        _render(tmp_path, make_valuations(2), base_tiles_url="ftp://x/{z}/{x}/{y}")


def test_bad_rows_are_all_reported(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(4)
    frame.loc[1, "latitude"] = 95.0
    frame.loc[2, "image"] = str(tmp_path / "missing.png")
    frame.loc[3, "house_id"] = "house-1"
    frame.loc[0, "price"] = -3.0
    with pytest.raises(ValueError) as info:
        _render(tmp_path, frame)
    message = str(info.value)
    assert "4 problem(s)" in message or "3 problem(s)" in message
    assert "row 1 (house_id='house-1'), column 'latitude'" in message
    assert "row 3 (house_id='house-1'), column 'house_id': duplicates row 1" in message
    assert "column 'price'" in message
    frame = make_valuations(2)
    frame.loc[1, "image"] = str(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"row 1 .*column 'image': image file not found"):
        _render(tmp_path, frame)


def test_heatmap_with_colorbar_is_rejected(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(2)
    tile = synthetic_tile(np.random.default_rng(1))
    figure_png = save_overlay_png(tile, synthetic_heatmap(), tmp_path / "fig.png", colorbar=True)
    frame.loc[1, "heatmap"] = str(figure_png)
    with pytest.raises(ValueError, match=r"colorbar=False"):
        _render(tmp_path, frame)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile_meters": 0.0}, "tile_meters"),
        ({"tile_meters": 50.0, "thumb_px": 4}, "thumb_px"),
        ({"tile_meters": 50.0, "cluster_threshold": -1}, "cluster_threshold"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, make_valuations: MakeValuations, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_valuation_map(make_valuations(1), tmp_path / "m.html", **kwargs)


def test_missing_columns_and_empty_table(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(1)
    with pytest.raises(ValueError, match="missing column"):
        render_valuation_map(
            frame.drop(columns=["predicted_price"]), tmp_path / "m.html", tile_meters=50.0
        )
    with pytest.raises(ValueError, match="no rows"):
        render_valuation_map(frame.iloc[:0], tmp_path / "m.html", tile_meters=50.0)


def test_output_is_reproducible(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(3)
    first = render_valuation_map(frame, tmp_path / "a.html", tile_meters=50.0).read_bytes()
    second = render_valuation_map(frame, tmp_path / "b.html", tile_meters=50.0).read_bytes()
    assert first == second


def test_missing_asset_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    offline_assets.cache_clear()
    monkeypatch.setitem(sys.modules, "xstatic.pkg.leaflet", None)  # import now fails
    try:
        with pytest.raises(ImportError, match="pip install xstatic-leaflet"):
            offline_assets()
    finally:
        offline_assets.cache_clear()
