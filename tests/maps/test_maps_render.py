"""Tests for houseprice.maps.render (and the page layers.py builds), without a browser."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from map_synthetic import MakeValuations, render

from houseprice.errors import UserInputError
from houseprice.maps import render_valuation_map
from houseprice.maps.assets import offline_assets


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


def test_page_is_self_contained(tmp_path: Path, make_valuations: MakeValuations) -> None:
    page, data = render(tmp_path, make_valuations(5))
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


def test_optional_base_tiles(tmp_path: Path, make_valuations: MakeValuations) -> None:
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    page, _ = render(
        tmp_path, make_valuations(2), base_tiles_url=url, base_tiles_attribution="© example"
    )
    assert url in page and "L.tileLayer" in page
    with pytest.raises(ValueError, match="base_tiles_url"):
        render(tmp_path, make_valuations(2), base_tiles_url="ftp://x/{z}/{x}/{y}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile_meters": 0.0}, "tile_meters"),
        ({"tile_meters": 50.0, "thumb_px": 4}, "thumb_px"),
        ({"tile_meters": 50.0, "cluster_threshold": -1}, "cluster_threshold"),
        ({"tile_meters": 50.0, "heatmap_cmap": "no-such-map"}, "heatmap_cmap"),
    ],
)
def test_bad_arguments(
    tmp_path: Path, make_valuations: MakeValuations, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        render_valuation_map(make_valuations(1), tmp_path / "m.html", **kwargs)


def test_output_is_reproducible(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(3)
    first = render_valuation_map(frame, tmp_path / "a.html", tile_meters=50.0).read_bytes()
    second = render_valuation_map(frame, tmp_path / "b.html", tile_meters=50.0).read_bytes()
    assert first == second


def test_legend_names_the_sides_of_a_signed_heatmap() -> None:
    from houseprice.maps import OUTCOMES, SIGNED_CMAP, MapStyle
    from houseprice.maps.render import legend_html

    counts = [1] * len(OUTCOMES)
    signed = legend_html("t", counts, 70.0, SIGNED_CMAP, MapStyle(), 3)
    plain = legend_html("t", counts, 70.0, "jet", MapStyle(), 3)
    assert "lowers price" in signed and "raises price" in signed and "signed heatmap" in signed
    assert "lowers price" not in plain and "relevance heatmap" in plain
