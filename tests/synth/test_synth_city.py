"""Tests of the synthetic city generator (houseprice.synth.city)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from houseprice.errors import OutputExistsError, UserInputError
from houseprice.synth.city import (
    HOUSE_COLUMNS,
    ORACLE_COLUMNS,
    CityConfig,
    SyntheticCity,
    contact_sheet,
    generate_city,
    objects,
    render,
    simulate_city,
    tile_masks,
)

SMALL_N = 80  # small written city: seconds to generate, yet tiles overlap often
SMALL = CityConfig(min_world_m=600.0)  # defaults except a smaller minimum world


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth_city")
    return {
        "a": generate_city(root / "a", n_houses=SMALL_N, seed=0, config=SMALL, progress=False),
        "b": generate_city(root / "b", n_houses=SMALL_N, seed=0, config=SMALL, progress=False),
        "c": generate_city(root / "c", n_houses=SMALL_N, seed=1, config=SMALL, progress=False),
    }


@pytest.fixture(scope="module")
def city() -> SyntheticCity:
    """A 2,000-house city simulated without pictures (drivers, prices, geometry)."""
    return simulate_city(n_houses=2000, seed=0)


@pytest.fixture(scope="module")
def classes(city: SyntheticCity) -> np.ndarray:
    return render.render_classes(city.world, 70.0 / 64)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_byte_identical_files(written: dict[str, Path]) -> None:
    a, b = _files(written["a"]), _files(written["b"])
    # tiles, masks, evidence + dataset.json, houses.csv, drivers, manifest.json,
    # orthophoto.tif, houses.parquet
    assert len(a) == 3 * SMALL_N + 6
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert different == []


def test_other_seed_gives_other_city(written: dict[str, Path]) -> None:
    a, c = _files(written["a"]), _files(written["c"])
    assert a["houses.csv"] != c["houses.csv"]
    assert a["truth/drivers.csv"] != c["truth/drivers.csv"]
    tiles = [k for k in a if k.startswith("tiles/")]
    assert sum(a[k] != c.get(k) for k in tiles) > 0.9 * len(tiles)


def test_output_contract(written: dict[str, Path]) -> None:
    root = written["a"]
    meta = json.loads((root / "dataset.json").read_text())
    assert list(meta) == [
        "format", "format_version", "name", "generator", "seed", "table", "n_houses", "crs",
        "tile_px", "tile_meters", "mask_classes", "truth",
    ]  # fmt: skip
    assert meta["format"] == "houseprice-dataset" and meta["name"] == "synthetic-city"
    assert meta["generator"]["name"] == "houseprice.synth.city"
    assert meta["generator"]["config"] == json.loads(json.dumps(SMALL.__dict__))
    assert CityConfig.from_dict(meta["generator"]["config"]) == SMALL
    assert (meta["n_houses"], meta["tile_px"], meta["tile_meters"]) == (SMALL_N, 64, 70.0)
    assert meta["mask_classes"]["6"] == "pool" and len(meta["mask_classes"]) == 10
    houses = pd.read_csv(root / "houses.csv", dtype={"house_id": str})
    assert list(houses.columns) == HOUSE_COLUMNS
    assert houses["house_id"].is_unique and houses["house_id"].iloc[0] == "H000001"
    assert (houses["price"] > 0).all()
    assert houses["sold_date"].between("2017-01-01", "2019-04-30").all()
    assert houses["latitude"].between(43.66, 43.74).all()
    assert houses["longitude"].between(-79.45, -79.35).all()
    drivers = pd.read_csv(root / meta["truth"]["drivers"], dtype={"house_id": str})
    assert drivers["house_id"].tolist() == houses["house_id"].tolist()
    for col in ("has_pool", "lot_area_m2", "tree_cover", "water_front", "park_adjacent",
                "highway_adjacent", "visual_log_premium"):  # fmt: skip
        assert col in drivers.columns
    effects = drivers[[c for c in drivers.columns if c.startswith("effect_")]].sum(axis=1)
    np.testing.assert_allclose(effects, drivers["visual_log_premium"], atol=1e-5)
    for hid in houses["house_id"].iloc[:10]:
        tile = Image.open(root / "tiles" / f"{hid}.png")
        mask = Image.open(root / "masks" / f"{hid}.png")
        ev = Image.open(root / "truth" / "evidence" / f"{hid}.png")
        assert (tile.mode, tile.size, mask.mode, mask.size, ev.mode) == (
            "RGB",
            (64, 64),
            "L",
            (64, 64),
            "L",
        )
        assert set(np.unique(np.asarray(ev))) <= {0, 255}
        assert np.asarray(mask).max() <= 9


def test_loads_with_the_records_loader(written: dict[str, Path]) -> None:
    from houseprice.data.houses import load_dataset

    ds = load_dataset(written["a"], purpose="train")
    assert len(ds.records) == SMALL_N and ds.tile_meters == 70.0


def test_price_is_the_documented_sum(written: dict[str, Path]) -> None:
    root = written["a"]
    houses = pd.read_csv(root / "houses.csv")
    d = pd.read_csv(root / "truth" / "drivers.csv")
    cfg = CityConfig()
    structure = (
        cfg.area_elasticity * np.log(d["area_sqft_true"] / 2000.0)
        + cfg.bedroom_effect * (d["bedrooms_true"] - 3)
        + cfg.bathroom_effect * (d["bathrooms_true"] - 2.5)
    )
    log_p = (math.log(cfg.base_price) + d["level_log"] + structure + d["trend_log"]
             + d["season_log"] + d["visual_log_premium"] + d["noise_log"])  # fmt: skip
    # Prices are rounded to 100 CAD.
    np.testing.assert_allclose(houses["price"], np.exp(log_p), rtol=1e-5, atol=50.0)


def test_mask_and_image_agree(written: dict[str, Path]) -> None:
    root = written["a"]
    pix: dict[int, list[np.ndarray]] = {k: [] for k in render.MASK_CLASSES}
    for p in sorted((root / "masks").glob("*.png")):
        mask = np.asarray(Image.open(p))
        tile = np.asarray(Image.open(root / "tiles" / p.name)).astype(int)
        for k in pix:
            core = ndimage.binary_erosion(mask == k, iterations=1)  # skip anti-aliased edges
            pix[k].append(tile[core])
    rgb = {k: np.concatenate(v) for k, v in pix.items()}
    r, g, b = (rgb[render.POOL][:, i] for i in range(3))
    assert len(r) > 50 and np.mean((b > r + 60) & (g > r + 40) & (b > 150)) > 0.95  # pool blue
    for k in (render.ROAD, render.HIGHWAY):
        c = rgb[k]
        if len(c):
            grey = (
                (c.max(axis=1) - c.min(axis=1) < 30)
                & (c.mean(axis=1) > 35)
                & (c.mean(axis=1) < 215)
            )
            assert np.mean(grey) > 0.93, render.MASK_CLASSES[k]
    t = rgb[render.TREE]
    assert np.mean((t[:, 1] > t[:, 0]) & (t[:, 1] > t[:, 2]) & (t.mean(axis=1) < 120)) > 0.9
    roofs = np.concatenate([rgb[render.TARGET_HOUSE], rgb[render.OTHER_HOUSE]])
    assert np.mean(roofs[:, 1] > roofs[:, 0] + 10) < 0.05  # roofs are never grass-green
    if len(rgb[render.WATER]):
        w = rgb[render.WATER]
        assert np.mean((w[:, 2] > w[:, 0] + 30) & (w.mean(axis=1) < 120)) > 0.95
    if len(rgb[render.PARK]):
        pk = rgb[render.PARK]
        assert np.mean(pk[:, 1] >= pk[:, [0, 2]].max(axis=1)) > 0.85


def test_target_house_is_at_the_centre(written: dict[str, Path]) -> None:
    near = 0
    for p in sorted((written["a"] / "masks").glob("*.png")):
        ys, xs = np.nonzero(np.asarray(Image.open(p)) == render.TARGET_HOUSE)
        assert len(ys) > 0, p.name
        near += abs(ys.mean() - 31.5) < 3 and abs(xs.mean() - 31.5) < 3
    assert near >= 0.9 * SMALL_N


def test_neighbouring_tiles_agree(written: dict[str, Path]) -> None:
    root = written["a"]
    d = pd.read_csv(root / "truth" / "drivers.csv", dtype={"house_id": str})
    m_per_px = 70.0 / 64
    tl = np.floor(d[["y_m", "x_m"]].to_numpy() / m_per_px - 32 + 0.5).astype(int)  # (row, col)
    pairs = 0
    for i in range(len(d)):
        for j in range(i + 1, len(d)):
            dr, dc = tl[j] - tl[i]
            if abs(dr) >= 48 or abs(dc) >= 48:  # need an overlap of at least 16 x 16 px
                continue
            a = np.asarray(Image.open(root / "tiles" / f"{d.house_id[i]}.png"))
            b = np.asarray(Image.open(root / "tiles" / f"{d.house_id[j]}.png"))
            ra, ca = slice(max(dr, 0), 64 + min(dr, 0)), slice(max(dc, 0), 64 + min(dc, 0))
            rb, cb = slice(max(-dr, 0), 64 + min(-dr, 0)), slice(max(-dc, 0), 64 + min(-dc, 0))
            np.testing.assert_array_equal(a[ra, ca], b[rb, cb])
            pairs += 1
    assert pairs >= 5


def test_evidence_mask_covers_each_applying_driver(
    city: SyntheticCity, classes: np.ndarray
) -> None:
    d, thr = city.drivers, city.config.evidence_min_effect
    checks = {  # driver flag -> class its evidence must contain
        "has_pool": render.POOL, "water_front": render.WATER, "park_adjacent": render.PARK,
        "highway_adjacent": render.HIGHWAY,
    }  # fmt: skip
    for flag, cls in checks.items():
        rows = np.flatnonzero(d[flag].to_numpy())
        assert len(rows) >= 5, flag
        for row in rows:
            _, mask, ev = tile_masks(city, int(row), classes, 64, 70.0 / 64)
            assert ((ev == 255) & (mask == cls)).sum() >= 4, (flag, row)
    treed = np.flatnonzero(city.effects["trees"] >= thr)[:50]
    for row in treed:
        _, mask, ev = tile_masks(city, int(row), classes, 64, 70.0 / 64)
        assert ((ev == 255) & (mask == render.TREE)).any()
    # A house whose drivers are all below the threshold has an empty evidence mask ...
    quiet = np.flatnonzero(np.all([np.abs(v) < thr for v in city.effects.values()], axis=0))
    assert len(quiet) > 0
    for row in quiet[:20]:
        assert tile_masks(city, int(row), classes, 64, 70.0 / 64)[2].max() == 0
    # ... and evidence never covers the target house itself.
    for row in range(0, 2000, 97):
        _, mask, ev = tile_masks(city, row, classes, 64, 70.0 / 64)
        assert not ((ev == 255) & (mask == render.TARGET_HOUSE)).any()


def test_pools_are_large_enough_to_see(city: SyntheticCity, classes: np.ndarray) -> None:
    rows = np.flatnonzero(city.drivers["has_pool"].to_numpy())[:80]
    sizes = []
    for row in rows:
        _, mask, _ = tile_masks(city, int(row), classes, 64, 70.0 / 64)
        lab, _ = ndimage.label(mask == render.POOL)
        h, w = zip(
            *[(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(lab)],
            strict=True,
        )
        sizes.append(min(max(h), max(w)))
    assert min(sizes) >= 4  # every pooled house shows a pool at least 4 px across


def test_listing_noise_and_attribute_ranges(city: SyntheticCity) -> None:
    h, d = city.houses, city.drivers
    for col in ("bedrooms", "bathrooms", "area_sqft"):
        assert 0.01 <= h[col].isna().mean() <= 0.035, col
    assert 0.015 <= d["area_corrupted"].mean() <= 0.05
    ok = h["area_sqft"].notna() & ~d["area_corrupted"]
    np.testing.assert_allclose(h.loc[ok, "area_sqft"], d.loc[ok, "area_sqft_true"], atol=0.051)
    assert np.corrcoef(d["footprint_m2"] * d["storeys"], d["area_sqft_true"])[0, 1] > 0.95
    assert h["bedrooms"].dropna().between(1, 9).all()
    assert (h["bathrooms"].dropna() * 2 % 1 == 0).all()
    log_p = np.log(h["price"])
    assert 0.35 < log_p.std() < 0.7 and 1e6 < h["price"].median() < 1.4e6
    # Market: the 2017 spring boom is visible in the trend the drivers record.
    spring17 = d.loc[h["sold_date"].between("2017-03-15", "2017-05-15"), "trend_log"].mean()
    winter18 = d.loc[h["sold_date"].between("2017-12-01", "2018-02-28"), "trend_log"].mean()
    assert spring17 - winter18 > 0.08
    # Every visual driver occurs, and none is rare to the point of uselessness.
    for col, lo in (("has_pool", 0.08), ("water_front", 0.01), ("park_adjacent", 0.015),
                    ("highway_adjacent", 0.003)):  # fmt: skip
        assert d[col].mean() >= lo, col
    assert d["tree_cover"].std() > 0.08 and d["lot_area_m2"].std() > 150


def _acc10(y_log: np.ndarray, p_log: np.ndarray) -> float:
    return float(np.mean(np.abs(np.exp(p_log - y_log) - 1.0) <= 0.10))


def test_oracle_drivers_lift_accuracy(city: SyntheticCity) -> None:
    """LightGBM on G,Bed,Bath,T,A vs the same plus the hidden drivers (time-sorted 60/40)."""
    h, d = city.houses, city.drivers
    t = pd.to_datetime(h["sold_date"])
    x = pd.DataFrame({
        "lat": h["latitude"], "lon": h["longitude"], "bed": h["bedrooms"].astype(float),
        "bath": h["bathrooms"], "T": (t.dt.year - 1970) * 12 + t.dt.month - 1, "A": h["area_sqft"],
    })  # fmt: skip
    drivers = d[ORACLE_COLUMNS].astype(float)
    y = np.log(h["price"].to_numpy())
    order = np.argsort(t.to_numpy(), kind="stable")
    train, test = order[: int(0.6 * len(h))], order[int(0.6 * len(h)) :]
    acc = {}
    for name, feats in (("attributes", x), ("oracle", pd.concat([x, drivers], axis=1))):
        model = lgb.LGBMRegressor(
            n_estimators=500, learning_rate=0.03, num_leaves=15, min_child_samples=15,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.9, random_state=0, n_jobs=1,
            deterministic=True, verbose=-1,
        )  # fmt: skip
        model.fit(feats.iloc[train], y[train])
        acc[name] = _acc10(y[test], model.predict(feats.iloc[test]))
    assert 0.3 < acc["attributes"] < 0.65, acc
    assert acc["oracle"] - acc["attributes"] >= 0.06, acc


def test_refuses_to_overwrite_and_replaces_atomically(tmp_path: Path) -> None:
    out = tmp_path / "city"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        generate_city(out, n_houses=3, seed=0, config=SMALL, progress=False)
    with pytest.raises(OutputExistsError, match="not written by houseprice"):
        generate_city(out, n_houses=3, seed=0, config=SMALL, progress=False, overwrite=True)
    assert (out / "keep.txt").read_text() == "user file"  # a folder it did not write is kept
    mine = generate_city(tmp_path / "mine", n_houses=3, seed=0, config=SMALL, progress=False)
    first = (mine / "houses.csv").read_bytes()
    generate_city(mine, n_houses=3, seed=1, config=SMALL, progress=False, overwrite=True)
    assert (mine / "houses.csv").read_bytes() != first
    assert json.loads((mine / "manifest.json").read_text())["format"] == "houseprice-dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city", "mine"]  # no temp folders


def test_bad_parameters_are_explained(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="water_front_m"):
        generate_city(tmp_path / "x", n_houses=3, tile_meters=40.0, progress=False)
    with pytest.raises(UserInputError, match="n_houses"):
        simulate_city(n_houses=0)
    with pytest.raises(UserInputError, match="unknown CityConfig field"):
        CityConfig.from_dict({"pool_effekt": 0.1})
    assert not (tmp_path / "x").exists()


def test_other_tile_sizes_render_the_same_world(tmp_path: Path) -> None:
    small = generate_city(tmp_path / "s", n_houses=4, seed=3, config=SMALL, progress=False)
    big = generate_city(
        tmp_path / "b",
        n_houses=4,
        seed=3,
        config=SMALL,
        tile_px=96,
        tile_meters=80.0,
        progress=False,
    )
    # The records and prices do not depend on how the world is photographed.
    assert (small / "houses.csv").read_bytes() == (big / "houses.csv").read_bytes()
    assert (small / "truth/drivers.csv").read_bytes() == (big / "truth/drivers.csv").read_bytes()
    tile = np.asarray(Image.open(big / "tiles" / "H000001.png"))
    mask = np.asarray(Image.open(big / "masks" / "H000001.png"))
    assert tile.shape == (96, 96, 3) and (mask[44:52, 44:52] == render.TARGET_HOUSE).any()


def test_palettes_cover_the_world_indices() -> None:
    assert len(render.TINTS) == objects.N_TINTS and len(render.ROOFS) == objects.N_ROOFS
    assert len(render.DRIVES) == objects.N_DRIVE_TONES
    assert len(render.TREES) == objects.N_TREE_TONES


def test_contact_sheet(written: dict[str, Path], tmp_path: Path) -> None:
    out = contact_sheet(written["a"], tmp_path / "sheet.png", n=4)
    im = Image.open(out)
    assert im.mode == "RGB" and im.width >= 2 * 3 * 64 * 3 and im.height >= 2 * 64 * 3
