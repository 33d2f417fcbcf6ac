"""Fixtures for the maps tests: a few synthetic tiles, heatmaps and a valuations table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from houseprice.maps import save_overlay_png

TILE_PX = 48
MALICIOUS_ID = '<img src=x onerror="window.__xss=1"><script>alert(1)</script>'


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


MakeValuations = Callable[..., pd.DataFrame]


@pytest.fixture
def make_valuations(tmp_path: Path) -> MakeValuations:
    """Factory: ``make_valuations(n, prices=..., predicted=...)`` writes tiles + heatmaps.

    Houses lie on a line north-east of Ames, ~110 m apart; house 0 has a malicious id.
    """

    def make(
        n: int = 5,
        *,
        prices: list[float] | None = None,
        predicted: list[float] | None = None,
        with_images: bool = True,
    ) -> pd.DataFrame:
        rng = np.random.default_rng(7)
        prices = prices if prices is not None else [200_000.0 + 10_000 * i for i in range(n)]
        predicted = (
            predicted
            if predicted is not None
            else [
                p * f if np.isfinite(p) else 250_000.0
                for p, f in zip(prices, np.resize([1.0, 1.3, 0.7, 1.05], n), strict=True)
            ]
        )
        rows = []
        for i in range(n):
            image = heatmap = None
            if with_images:
                tile = synthetic_tile(rng)
                image = tmp_path / f"tile_{i}.png"
                Image.fromarray(tile).save(image)
                heatmap = save_overlay_png(
                    tile, synthetic_heatmap(), tmp_path / f"heat_{i}.png", colorbar=False
                )
            rows.append(
                {
                    "house_id": MALICIOUS_ID if i == 0 else f"house-{i}",
                    "latitude": 42.03 + 0.001 * i,
                    "longitude": -93.62 + 0.001 * i,
                    "predicted_price": predicted[i],
                    "price": prices[i],
                    "image": str(image) if image else None,
                    "heatmap": str(heatmap) if heatmap else None,
                    "used_visual": with_images,
                    "bedrooms": 3 + i % 2,
                    "area_sqft": 1500.5 + i,
                    "sold_date": pd.Timestamp("2021-06-01"),
                }
            )
        return pd.DataFrame(rows)

    return make
