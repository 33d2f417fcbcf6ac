"""Fixtures for the maps tests: a valuations table over a few synthetic tiles and heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from map_synthetic import MALICIOUS_ID, MakeValuations, synthetic_heatmap, synthetic_tile
from PIL import Image

from houseprice.maps import save_overlay_png


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
