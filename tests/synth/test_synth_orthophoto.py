"""The synthetic city as real-format data: orthophoto.tif and houses.parquet agree with its tiles.

Tolerances (measured on this 150-house city, 64 px tiles of 70 m): the orthophoto's pixels
have the tiles' size, so ``OrthophotoTiles`` crops them pixel for pixel (nearest, no
resampling; houseprice/data/houses/imagery.py). Against the generator's own tiles the mean
|difference| per channel is ~1.6 grey levels (< 3 asserted) and 85 % of the pixels are
identical (> 80 % asserted); what differs is where the local Transverse Mercator grid of the
tile (0.3° grid convergence at 0.4° from its central meridian) picks the neighbouring pixel.
With the geotransform shifted by one pixel the difference is ~9.6 (> 7 asserted): the check
fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import Affine

from houseprice.artifacts import check_replaceable
from houseprice.data.houses import load_dataset
from houseprice.data.houses.imagery import OrthophotoTiles
from houseprice.data.houses.importer import import_records
from houseprice.errors import UserInputError
from houseprice.synth.city import CityConfig, generate_city, orthophoto

N = 150
SIZE = 64
TILE_M = 70.0
GEN_TOLERANCE = 3.0  # mean |diff| per channel vs the generator's tiles (grey levels)
SAME_SHARE = 0.8  # share of pixels identical to the generator's tiles


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ortho") / "city"
    return generate_city(
        root, n_houses=N, seed=0, config=CityConfig(min_world_m=600.0), progress=False
    )


@pytest.fixture(scope="module")
def houses(city: Path) -> pd.DataFrame:
    return pd.read_csv(city / "houses.csv", dtype={"house_id": str})


@pytest.fixture(scope="module")
def generator_tiles(city: Path, houses: pd.DataFrame) -> np.ndarray:
    tiles = [np.asarray(Image.open(city / "tiles" / f"{h}.png")) for h in houses["house_id"]]
    return np.stack(tiles).astype(float)


def _cut(path: Path, houses: pd.DataFrame) -> np.ndarray:
    with OrthophotoTiles([path], tile_meters=TILE_M) as ortho:
        batch = ortho.read(houses, SIZE, warn=False)
    assert batch.ok.all(), batch.reasons
    return batch.pixels.astype(float)


def _mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b).mean(axis=(0, 1, 2))  # per channel


def test_orthophoto_is_a_cloud_optimised_geotiff_in_the_city_crs(city: Path) -> None:
    meta = json.loads((city / "dataset.json").read_text())
    m_per_px = meta["tile_meters"] / meta["tile_px"]
    with rasterio.open(city / orthophoto.ORTHOPHOTO_NAME) as src:
        assert src.driver == "GTiff" and src.count == 3 and src.dtypes[0] == "uint8"
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
        assert src.overviews(1) == [2, 4]
        assert src.compression.name.lower() == "deflate"
        assert [c.name for c in src.colorinterp] == ["red", "green", "blue"]
        assert src.crs == rasterio.crs.CRS.from_proj4(orthophoto.city_crs())
        transform = src.transform
        assert src.width == src.height and abs(transform.a - m_per_px) < 1e-12
    size_m = -2 * transform.c  # the world's west edge is at X = -size/2
    assert transform.almost_equals(orthophoto.world_transform(size_m, m_per_px))
    # a world position maps to the latitude/longitude the records give it (to 1 cm)
    houses = pd.read_csv(city / "houses.csv", dtype={"house_id": str})
    drivers = pd.read_csv(city / "truth" / "drivers.csv", dtype={"house_id": str})
    to_crs = Transformer.from_crs("EPSG:4326", orthophoto.city_crs(), always_xy=True)
    x, y = to_crs.transform(houses["longitude"].to_numpy(), houses["latitude"].to_numpy())
    col, row = ~transform @ (x, y)
    np.testing.assert_allclose(col * m_per_px, drivers["x_m"], atol=0.01)
    np.testing.assert_allclose(row * m_per_px, drivers["y_m"], atol=0.01)


def test_utm_would_not_match_the_records(city: Path) -> None:
    """Why the orthophoto is Sinusoidal: the generator's metres are not UTM metres."""
    d = pd.read_csv(city / "truth" / "drivers.csv", dtype={"house_id": str})
    h = pd.read_csv(city / "houses.csv", dtype={"house_id": str})
    utm = Transformer.from_crs("EPSG:4326", "EPSG:32617", always_xy=True)
    e, n = utm.transform(h["longitude"].to_numpy(), h["latitude"].to_numpy())
    de, dn = e - d["x_m"].to_numpy(), -n - d["y_m"].to_numpy()  # y is south
    assert max(np.ptp(de), np.ptp(dn)) > 2.0  # metres: a rigid UTM grid does not fit


def test_tiles_cut_from_the_orthophoto_match_the_generator_tiles(
    city: Path, houses: pd.DataFrame, generator_tiles: np.ndarray
) -> None:
    cut = _cut(city / orthophoto.ORTHOPHOTO_NAME, houses)
    diff = _mean_abs(cut, generator_tiles)
    assert (diff < GEN_TOLERANCE).all(), diff
    assert (cut == generator_tiles).all(axis=-1).mean() > SAME_SHARE
    # the target house is where the generator put it: tile centres agree closely
    c = slice(SIZE // 2 - 8, SIZE // 2 + 8)
    assert (_mean_abs(cut[:, c, c], generator_tiles[:, c, c]) < GEN_TOLERANCE).all()


@pytest.mark.parametrize("shift", [(1.0, 0.0), (0.0, 1.0)])
def test_a_one_pixel_geotransform_shift_fails_the_tolerance(
    city: Path,
    houses: pd.DataFrame,
    generator_tiles: np.ndarray,
    tmp_path: Path,
    shift: tuple[float, float],
) -> None:
    moved = tmp_path / "shifted.tif"
    with rasterio.open(city / orthophoto.ORTHOPHOTO_NAME) as src:
        profile = {**src.profile, "transform": src.transform @ Affine.translation(*shift)}
        with rasterio.open(moved, "w", **profile) as dst:
            dst.write(src.read())
            dst.colorinterp = src.colorinterp
    cut = _cut(moved, houses)
    assert (_mean_abs(cut, generator_tiles) > GEN_TOLERANCE + 4).all()
    assert (cut == generator_tiles).all(axis=-1).mean() < 0.5


def test_geoparquet_records_are_the_csv_records(city: Path, houses: pd.DataFrame) -> None:
    geo = gpd.read_parquet(city / orthophoto.GEOPARQUET_NAME)
    assert geo.crs.to_epsg() == 4326 and (geo.geom_type == "Point").all()
    kept = [c for c in houses.columns if c not in orthophoto.GEOPARQUET_DROPPED]
    assert list(geo.columns) == [*kept, "geometry"]
    np.testing.assert_array_equal(geo.geometry.x, houses["longitude"])
    np.testing.assert_array_equal(geo.geometry.y, houses["latitude"])
    for col in ("house_id", "bathrooms", "area_sqft", "price"):
        pd.testing.assert_series_equal(geo[col], houses[col], check_dtype=False)
    assert geo["bedrooms"].astype("Float64").equals(houses["bedrooms"].astype("Float64"))
    assert [str(d) for d in geo["sold_date"]] == houses["sold_date"].tolist()


def test_import_of_the_city_keeps_its_truth(city: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    import_records(
        city / orthophoto.GEOPARQUET_NAME,
        out=data,
        imagery=[city / orthophoto.ORTHOPHOTO_NAME],
        tile_meters=TILE_M,
        tile_px=SIZE,
        progress=False,
    )
    orthophoto.attach_truth(data, city)
    meta = json.loads((data / "dataset.json").read_text())
    city_meta = json.loads((city / "dataset.json").read_text())
    assert meta["truth"] == city_meta["truth"] and meta["mask_classes"] == city_meta["mask_classes"]
    assert (data / "truth" / "drivers.csv").read_bytes() == (
        city / "truth" / "drivers.csv"
    ).read_bytes()
    assert len(list((data / "truth" / "evidence").glob("*.png"))) == N
    check_replaceable(data)  # the manifest lists the attached files: still replaceable
    ds = load_dataset(data, purpose="train")
    assert len(ds.records) == N and ds.records["image"].notna().all()
    with pytest.raises(UserInputError, match="already has a truth"):
        orthophoto.attach_truth(data, city)


def test_attach_truth_refuses_other_houses(city: Path, tmp_path: Path) -> None:
    table = gpd.read_parquet(city / orthophoto.GEOPARQUET_NAME)
    table["house_id"] = "X" + table["house_id"]
    src = tmp_path / "other.parquet"
    table.to_parquet(src)
    import_records(src, out=tmp_path / "data", progress=False)
    with pytest.raises(UserInputError, match="not in"):
        orthophoto.attach_truth(tmp_path / "data", city)
    assert not (tmp_path / "data" / "truth").exists()
