"""Tests for houseprice.maps.payload: outcomes, footprints, thumbnails, popup text, the JSON."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from map_synthetic import (
    MALICIOUS_ID,
    MakeValuations,
    render,
    synthetic_heatmap,
    synthetic_tile,
)
from PIL import Image
from pyproj import Geod

from houseprice.errors import UserInputError
from houseprice.maps import OUTCOMES, classify_outcome, save_overlay_png, tile_footprint_bounds
from houseprice.maps.payload import script_json

_KEYS = [o.key for o in OUTCOMES]


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
    with pytest.raises(UserInputError, match="poles"):
        tile_footprint_bounds(89.5, 0.0, 50.0)


def test_outcomes_popups_and_overlays(tmp_path: Path, make_valuations: MakeValuations) -> None:
    prices = [200_000.0, 210_000.0, 220_000.0, 230_000.0, float("nan")]
    frame = make_valuations(
        5, prices=prices, predicted=[200_000.0, 273_000.0, 154_000.0, 241_500.0, 250_000.0]
    )
    _, data = render(tmp_path, frame, title="Ames test")
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
    _, data = render(tmp_path, make_valuations(2), thumb_px=32)
    for uri, width, height in data["images"]:
        assert (width, height) == (32, 32)
        encoded = uri.split(",", 1)[1]
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            assert image.size == (32, 32)


def test_input_text_is_escaped(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(2)
    frame["<b>note</b>"] = ["</script><script>alert(2)</script>", "a & b"]
    page, data = render(tmp_path, frame, title="<i>t</i>")
    for raw in (MALICIOUS_ID, "<script>alert", "alert(2)</script>", "<b>note</b>", "<i>t</i>"):
        assert raw not in page
    info = data["houses"][0]["info"]
    assert html.escape(MALICIOUS_ID) in info
    assert html.escape("</script><script>alert(2)</script>") in info
    assert html.escape("<b>note</b>") in info
    assert html.escape(MALICIOUS_ID) in data["houses"][0]["label"]
    assert "<title>&lt;i&gt;t&lt;/i&gt;</title>" in page


def test_script_json_cannot_close_the_script_element() -> None:
    payload = {"x": "</script><!-- & \u2028\u2029", "n": [1, 2.5]}
    text = script_json(payload)
    assert not any(c in text for c in "<>&\u2028\u2029")
    assert json.loads(text) == payload
    with pytest.raises(ValueError):
        script_json({"bad": float("nan")})  # NaN is not JSON


def test_clustering_threshold(tmp_path: Path, make_valuations: MakeValuations) -> None:
    _, data = render(tmp_path, make_valuations(4), cluster_threshold=3)
    assert data["cluster"] is True
    _, data = render(tmp_path, make_valuations(3), cluster_threshold=3)
    assert data["cluster"] is False


def test_houses_without_images(tmp_path: Path, make_valuations: MakeValuations) -> None:
    _, data = render(tmp_path, make_valuations(3, with_images=False))
    assert data["images"] == []
    assert all(h["t"] == -1 and h["h"] == -1 for h in data["houses"])
    assert "not used" in data["houses"][0]["info"]


def test_missing_image_is_reported(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(2)
    frame.loc[1, "image"] = str(tmp_path / "missing.png")
    with pytest.raises(UserInputError, match=r"row 1 .*column 'image': image file not found"):
        render(tmp_path, frame)


def test_heatmap_with_colorbar_is_rejected(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(2)
    tile = synthetic_tile(np.random.default_rng(1))
    figure_png = save_overlay_png(tile, synthetic_heatmap(), tmp_path / "fig.png", colorbar=True)
    frame.loc[1, "heatmap"] = str(figure_png)
    with pytest.raises(UserInputError, match=r"colorbar=False"):
        render(tmp_path, frame)
