"""Shared test fixtures: tiny generated datasets (never the network), CPU-thread limits."""

from __future__ import annotations

import os
from pathlib import Path

# Two xdist workers (plus notebook kernels they start) share two cores. OpenMP threads that
# spin while waiting (the default) then steal the other process's core: LightGBM + torch in
# two processes at once ran ~20x slower (test_demo_quick 273 s vs 12 s alone). Passive
# waiting must be set before any OpenMP runtime loads; child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from houseprice.runtime import pin_cpu_isa

# The CLI's default CPU kernels (HOUSEPRICE_CPU_ISA, else avx2) for the tests and every process
# they start; torch and its libraries read the pins only when they start.
pin_cpu_isa()

import pytest  # noqa: E402
import torch  # noqa: E402

# One torch thread per xdist worker keeps the two workers from fighting over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
    os.environ.setdefault("HOUSEPRICE_THREADS", "1")  # what the CLI's run_job then sets


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic city (generated once per test session)."""
    from houseprice.synth.city import generate_city

    out = tmp_path_factory.mktemp("city") / "city"
    generate_city(out, n_houses=160, seed=3, progress=False)
    return out


def make_planted_dataset(out: Path, n: int = 96, seed: int = 0, tile_px: int = 32) -> Path:
    """A tiny dataset whose only visual price driver is a blue 'pool' square in the tile.

    Tiles are green with noise; houses with a pool (random half) sell for 35% more, so a
    model can only learn the premium by looking at the tile.
    """
    import json

    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    (out / "tiles").mkdir(parents=True)
    rows = []
    for i in range(n):
        pool = bool(rng.random() < 0.5)
        tile = np.clip(rng.normal([70, 120, 60], 12, (tile_px, tile_px, 3)), 0, 255)
        if pool:
            y, x = rng.integers(4, tile_px - 14, 2)
            tile[y : y + 10, x : x + 10] = [40, 150, 230]
        Image.fromarray(tile.astype(np.uint8)).save(out / "tiles" / f"P{i:03d}.png")
        area = float(rng.uniform(800, 2500))
        price = 200 * area * (1.35 if pool else 1.0) * float(np.exp(rng.normal(0, 0.03)))
        rows.append(
            {
                "house_id": f"P{i:03d}",
                "latitude": 43.7 + rng.normal(0, 0.01),
                "longitude": -79.4 + rng.normal(0, 0.01),
                "bedrooms": int(rng.integers(1, 5)),
                "bathrooms": 1.5,
                "sold_date": f"2018-{1 + i % 12:02d}-{1 + i % 27:02d}",
                "area_sqft": area,
                "price": price,
                "image": f"tiles/P{i:03d}.png",
            }
        )
    pd.DataFrame(rows).to_csv(out / "houses.csv", index=False)
    (out / "dataset.json").write_text(
        json.dumps(
            {
                "format": "houseprice-dataset",
                "format_version": 1,
                "name": "planted",
                "table": "houses.csv",
                "tile_px": tile_px,
                "tile_meters": 70.0,
                "seed": seed,
            }
        )
    )
    return out


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Planted-signal dataset folder (blue square ⇒ +35% price)."""
    return make_planted_dataset(tmp_path_factory.mktemp("planted") / "ds")


@pytest.fixture(scope="session")
def city_model(tiny_city: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick-profile model folder trained on ``tiny_city`` (once per test session)."""
    from houseprice.jobs import train

    out = tmp_path_factory.mktemp("city_model") / "model"
    train(tiny_city, out, profile="quick", progress=False)
    return out
