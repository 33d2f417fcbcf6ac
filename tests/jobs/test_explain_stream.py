"""The explain job's heatmaps: written chunk by chunk (same bytes), signed in two colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from houseprice.data.houses import load_dataset
from houseprice.jobs.explain import _write_heatmaps
from houseprice.maps.overlay import signed_overlay
from houseprice.runtime import resolve_device
from houseprice.valuation.gradweights import explained_net, load_database, transfer_maps
from houseprice.valuation.model import HousePriceModel


def _frame(ds) -> pd.DataFrame:
    f = ds.records[["house_id"]].copy()
    f["overlay"] = f["heatmap"] = f["neighbour"] = None
    return f


def test_chunked_heatmaps_are_identical_and_signed(
    city_model: Path, tiny_city: Path, tmp_path: Path
) -> None:
    model = HousePriceModel.load(city_model)
    ds = load_dataset(tiny_city)
    ds = ds.subset(ds.records.iloc[:40])
    frames = {}
    for chunk in (7, 10_000):
        out = tmp_path / str(chunk)
        frames[chunk] = _frame(ds)
        signed = _write_heatmaps(
            model, ds, frames[chunk], out, device="cpu", progress=False, chunk=chunk
        )
        assert signed  # the model's database has signed weights
    pd.testing.assert_frame_equal(frames[7], frames[10_000])
    names = sorted(p.name for p in (tmp_path / "7" / "heatmaps").iterdir())
    assert len(names) == frames[7]["heatmap"].notna().sum() > 30
    for sub in ("heatmaps", "overlays"):
        for n in names:
            a = (tmp_path / "7" / sub / n).read_bytes()
            assert a == (tmp_path / "10000" / sub / n).read_bytes(), (sub, n)
    # the map's heatmap PNG is the two-colour signed blend of the transferred signed map
    db, cfg = load_database(model)
    tiles = ds.tiles.read(ds.records.iloc[:1], model.config.siamese.image_size, warn=False)
    net = explained_net(model)
    maps, _ = transfer_maps(
        net, db, tiles.pixels, cfg.key, device=resolve_device("cpu"), signed=True
    )
    want = signed_overlay(tiles.pixels[0], maps[0].numpy())
    got = np.asarray(Image.open(tmp_path / "7" / frames[7]["heatmap"].iloc[0]))
    np.testing.assert_array_equal(got, want)
    assert float(maps[0].min()) < 0 < float(maps[0].max())  # both signs present


@pytest.mark.parametrize("chunk", [1])
def test_tiny_chunks_keep_the_neighbours(
    city_model: Path, tiny_city: Path, tmp_path: Path, chunk: int
) -> None:
    model = HousePriceModel.load(city_model)
    ds = load_dataset(tiny_city)
    ds = ds.subset(ds.records.iloc[:5])
    f = _frame(ds)
    _write_heatmaps(model, ds, f, tmp_path, device="cpu", progress=False, chunk=chunk)
    ref = _frame(ds)
    _write_heatmaps(model, ds, ref, tmp_path / "r", device="cpu", progress=False)
    assert f["neighbour"].tolist() == ref["neighbour"].tolist()
