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
CONTRIBUTION_GROUPS = ("location", "bedrooms", "bathrooms", "sale_time", "area", "image")
CITY_CENTRE = (42.0308, -93.6319)  # Ames, Iowa


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


def with_contributions(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """``frame`` plus ``base_price`` and ``contrib_<group>`` that add up to the prediction.

    Follows houseprice/pricing/contributions.py: random log effects φ_g (location takes the
    rest so that Σφ = log(predicted / base)), money ``(p − b) · φ_g / Σφ``; ``contrib_image``
    is NaN for houses without an image.
    """
    rng = np.random.default_rng(seed)
    n = len(frame)
    predicted = frame["predicted_price"].to_numpy(dtype=np.float64)
    base = np.full(n, 230_000.0)
    total = np.log(predicted / base)  # (N,) Σφ
    total = np.where(np.abs(total) < 1e-3, 1e-3, total)
    base = predicted / np.exp(total)
    has_image = frame["image"].notna().to_numpy() if "image" in frame else np.ones(n, bool)
    phi = {g: rng.normal(0.0, 0.08, size=n) for g in CONTRIBUTION_GROUPS[1:]}
    phi["image"] = np.where(has_image, phi["image"], 0.0)
    phi["location"] = total - sum(phi.values())
    out = frame.copy()
    out["base_price"] = base
    for group in CONTRIBUTION_GROUPS:
        money = (predicted - base) * phi[group] / total
        out[f"contrib_{group}"] = np.where(has_image, money, np.nan) if group == "image" else money
    return out


def city_valuations(
    n: int, *, seed: int = 0, image: Path | None = None, heatmap: Path | None = None
) -> pd.DataFrame:
    """``n`` houses scattered over ~5 km of Ames, 10% without a price, with contributions.

    Every house shares the one ``image`` / ``heatmap`` file given (or has none).
    """
    rng = np.random.default_rng(seed)
    price = np.exp(rng.normal(np.log(230_000), 0.35, size=n))
    predicted = price * np.exp(rng.normal(0.0, 0.12, size=n))
    price[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "house_id": [f"H{i:06d}" for i in range(n)],
            "latitude": CITY_CENTRE[0] + rng.uniform(-0.03, 0.03, size=n),
            "longitude": CITY_CENTRE[1] + rng.uniform(-0.03, 0.03, size=n),
            "predicted_price": predicted,
            "price": price,
            "image": None if image is None else str(image),
            "heatmap": None if heatmap is None else str(heatmap),
            "used_visual": image is not None,
            "bedrooms": rng.integers(1, 6, size=n),
            "area_sqft": np.round(rng.uniform(700, 4200, size=n)),
        }
    )
    return with_contributions(frame, seed=seed)
