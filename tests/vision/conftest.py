"""Fixtures of the vision tests: the planted-signal tiles and a small siamese setup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from houseprice.data.houses import load_dataset, load_tiles, resolve_asset
from houseprice.vision.backbones import BackboneConfig
from houseprice.vision.siamese import SiameseConfig, SiameseTrainConfig


@pytest.fixture(scope="session")
def small_arch() -> SiameseConfig:
    """A small radial-gate siamese on 32-px tiles."""
    return SiameseConfig(backbone=BackboneConfig(widths=(16, 32, 48)), image_size=32)


@pytest.fixture(scope="session")
def small_training() -> SiameseTrainConfig:
    return SiameseTrainConfig(epochs=12, batch_size=32, lr=5e-3, patience=12, local_fraction=0.0)


@pytest.fixture(scope="session")
def planted_tiles(planted: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(tiles (N, 32, 32, 3) uint8, log price, pool mask, area)`` of the planted dataset."""
    ds = load_dataset(planted)
    paths = [resolve_asset(ds.root, v) for v in ds.records["image"]]
    tiles = load_tiles(paths, 32)
    assert tiles.ok.all()
    tile_px = tiles.pixels
    pool = (tile_px[..., 2] > 200).any(axis=(1, 2))  # the planted blue square
    area = ds.records["area_sqft"].to_numpy()
    return tile_px, np.log(ds.records["price"].to_numpy()), pool, area
