"""Synthetic tiles and heatmaps for the maps tests, and reading a rendered map back.

Imported by conftest and the tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from houseprice.maps import render_valuation_map

TILE_PX = 48
MALICIOUS_ID = '<img src=x onerror="window.__xss=1"><script>alert(1)</script>'
# make_valuations(n, prices=..., predicted=..., with_images=...) -> valuations table
MakeValuations = Callable[..., pd.DataFrame]


def synthetic_tile(rng: np.random.Generator, size: int = TILE_PX) -> np.ndarray:
    """(size, size, 3) uint8: grass, a road along one edge and a roof in the centre."""
    tile = np.empty((size, size, 3), dtype=np.uint8)
    tile[:] = (70, 120, 60)
    tile[: size // 6] = (90, 90, 95)  # road
    lo, hi = size // 3, 2 * size // 3
    tile[lo:hi, lo:hi] = rng.integers(120, 200, size=3, dtype=np.uint8)  # roof
    noise = rng.integers(-10, 11, size=tile.shape)
    return np.clip(tile.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def synthetic_heatmap(size: int = TILE_PX) -> np.ndarray:
    """(size, size) float in [0, 1]: a Gaussian bump on the centre (where the house is)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    return np.exp(-((yy - centre) ** 2 + (xx - centre) ** 2) / (2 * (size / 6) ** 2))


_DATA = re.compile(
    r'<script type="application/json" id="hp-valuations-data">(.*?)</script>', re.DOTALL
)


def page_payload(page: str) -> dict[str, Any]:
    """The JSON data block of a rendered page."""
    match = _DATA.search(page)
    assert match is not None, "data block missing"
    return json.loads(match.group(1))


def render(tmp_path: Path, frame: pd.DataFrame, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Render ``frame`` (tile_meters=50) to ``tmp_path/out/map.html``; page text and payload."""
    out = render_valuation_map(frame, tmp_path / "out" / "map.html", tile_meters=50.0, **kwargs)
    page = out.read_text(encoding="utf-8")
    return page, page_payload(page)
