"""Tests for houseprice.maps.areas: the grid, the per-cell statistics and what is drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from map_synthetic import city_valuations

from houseprice.errors import UserInputError
from houseprice.maps import MapStyle
from houseprice.maps.areas import area_grid, area_layers, nice_cell_meters


def test_nice_cell_meters() -> None:
    assert nice_cell_meters(6000.0, 30) == 200.0
    assert nice_cell_meters(1000.0, 30) == 50.0  # 33 m -> 50 (nearest on a log scale)
    assert nice_cell_meters(50.0, 30) == 10.0  # never below 10 m


def test_grid_is_square_on_the_ground() -> None:
    lat = np.array([42.0, 42.01, 42.02])
    lon = np.array([-93.6, -93.59, -93.58])
    grid = area_grid(lat, lon, cell_meters=500.0, cells_across=30)
    assert grid.lat_step == pytest.approx(500.0 / 111_195.0, rel=1e-3)
    assert grid.lon_step == pytest.approx(grid.lat_step / np.cos(np.radians(42.01)), rel=1e-6)
    assert grid.cells[0].tolist() == [0, 0]
    assert grid.cells[2, 0] == int(0.02 * 111_195 // 500)
    with pytest.raises(UserInputError, match="area_cell_meters"):
        area_grid(lat, lon, cell_meters=-1.0, cells_across=30)


def _frame(n: int, *, error: float, price: bool = True) -> pd.DataFrame:
    """n houses within 20 m of one point, all with the same error."""
    rng = np.random.default_rng(0)
    predicted = np.full(n, 200_000.0)
    return pd.DataFrame(
        {
            "latitude": 42.0 + rng.uniform(0, 1e-4, n),
            "longitude": -93.6 + rng.uniform(0, 1e-4, n),
            "predicted_price": predicted,
            "price": predicted / (1 + error) if price else np.nan,
            "base_price": 190_000.0,
            "contrib_image": np.r_[np.full(n - 1, 5_000.0), np.nan],
        }
    )


def test_cell_statistics_and_minimum_houses() -> None:
    layers = {
        a.key: a for a in area_layers(_frame(6, error=0.2), cell_meters=100, style=MapStyle())
    }
    assert set(layers) == {"error", "accuracy", "image"}
    (cell,) = layers["error"].cells
    assert "median error +20.0% · 6 houses" == cell[5]
    assert layers["accuracy"].cells[0][5].startswith("0% within")
    assert layers["image"].cells[0][5] == "image adds +5,000 on average · 5 houses"
    # 5 houses, one without an image: error/accuracy drawn, image contribution (4) not
    layers = {
        a.key: a for a in area_layers(_frame(5, error=0.0), cell_meters=100, style=MapStyle())
    }
    assert set(layers) == {"error", "accuracy"}
    assert layers["accuracy"].cells[0][5].startswith("100% within")
    assert area_layers(_frame(4, error=0.0), cell_meters=100, style=MapStyle()) == []
    # no prices: only the image layer
    keys = [
        a.key
        for a in area_layers(_frame(8, error=0, price=False), cell_meters=100, style=MapStyle())
    ]
    assert keys == ["image"]


def test_city_grid_size_from_extent() -> None:
    frame = city_valuations(20_000, seed=1)  # ~20 houses per cell
    (error, *_rest) = area_layers(frame, cell_meters=None, style=MapStyle())
    assert "cells of 200 m" in error.legend_html  # ~5 km / 30 -> 200 m
    assert 400 <= len(error.cells) <= 900
    assert all(c[4].startswith("#") for c in error.cells)
