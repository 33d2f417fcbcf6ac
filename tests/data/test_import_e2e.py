"""The user path end to end, through the CLI: import -> train -> evaluate -> explain --map.

The data are the synthetic city in a user's shape: its orthophoto reprojected to Web Mercator
(EPSG:3857) and its records as a GeoPackage in UTM 17N (EPSG:32617) with the user's own column
names, so the records, the imagery and the tiles' local CRS are three different CRSs.
The imported tiles are checked against the generator's own tiles: the warp to Web Mercator
resamples bilinearly (its pixels keep their ground size, so the tile cut from it is then a
nearest-pixel crop); measured mean |difference| per channel ~5.3, < 8 asserted (a tile one
pixel off is ~9.6).
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
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from typer.testing import CliRunner

from cli.main import app
from houseprice.synth.city import CityConfig, generate_city, orthophoto

N = 150
runner = CliRunner()


def run(*args: object) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def to_web_mercator(src_path: Path, dst_path: Path) -> Path:
    """The orthophoto warped (bilinear) to EPSG:3857, as a user's GIS would export it."""
    with rasterio.open(src_path) as src:
        transform, w, h = calculate_default_transform(
            src.crs, "EPSG:3857", src.width, src.height, *src.bounds
        )
        profile = {**src.profile, "driver": "GTiff", "crs": "EPSG:3857", "transform": transform}
        profile.update(width=w, height=h, tiled=True, blockxsize=256, blockysize=256)
        with rasterio.open(dst_path, "w", **profile) as dst:
            for b in range(1, 4):
                reproject(
                    rasterio.band(src, b),
                    rasterio.band(dst, b),
                    dst_transform=transform,
                    dst_crs="EPSG:3857",
                    resampling=Resampling.bilinear,
                )
            dst.colorinterp = src.colorinterp
    return dst_path


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("e2e")
    city = generate_city(
        root / "city", n_houses=N, seed=0, config=CityConfig(min_world_m=600.0), progress=False
    )
    user = root / "user"
    user.mkdir()
    image = to_web_mercator(city / orthophoto.ORTHOPHOTO_NAME, user / "ortho_3857.tif")
    sales = gpd.read_parquet(city / orthophoto.GEOPARQUET_NAME).to_crs("EPSG:32617")
    sales = sales.rename(
        columns={"house_id": "PID", "price": "SalePrice", "sold_date": "Sale Date"}
    )
    sales["Sale Date"] = sales["Sale Date"].astype(str)
    records = user / "sales.gpkg"
    sales.to_file(records, layer="sales", engine="pyogrio")
    return {"city": city, "image": image, "records": records, "root": root}


def test_import_train_evaluate_explain_map(user_files: dict[str, Path]) -> None:
    root, city = user_files["root"], user_files["city"]
    data, model = root / "data", root / "model"
    code, out = run(
        "data", "import", "--records", user_files["records"], "--out", data,
        "--imagery", user_files["image"], "--column", "price=SalePrice",
        "--tile-meters", "70", "--tile-px", "64", "--quiet",
    )  # fmt: skip
    assert code == 0, out
    houses = pd.read_csv(data / "houses.csv", dtype={"house_id": str})
    assert len(houses) == N and houses["image"].notna().all()
    assert len(pd.read_csv(data / "rejected.csv")) == 0
    truth = pd.read_csv(city / "houses.csv", dtype={"house_id": str})
    np.testing.assert_allclose(houses["latitude"], truth["latitude"], atol=1e-7)
    np.testing.assert_allclose(houses["longitude"], truth["longitude"], atol=1e-7)
    # tiles cut from the Web Mercator copy still line up with the generator's tiles
    ours = np.stack([np.asarray(Image.open(data / p)) for p in houses["image"]]).astype(float)
    gen = [np.asarray(Image.open(city / "tiles" / f"{h}.png")) for h in houses["house_id"]]
    diff = np.abs(ours - np.stack(gen).astype(float)).mean(axis=(0, 1, 2))
    assert (diff < 8.0).all(), diff

    code, out = run("train", "--data", data, "--out", model, "--profile", "quick", "--quiet")
    assert code == 0, out
    code, out = run("evaluate", "--model", model, "--data", data, "--out", root / "r", "--quiet")
    assert code == 0, out
    report = json.loads((root / "r" / "report.json").read_text())
    assert report["test_size"] > 0 and "G,Bed,Bath,T,A" in report["accuracy_within_10pct"]
    map_html = root / "e" / "map.html"
    code, out = run(
        "explain", "--model", model, "--input", data, "--out", root / "e",
        "--map", map_html, "--unseen-only", "--quiet",
    )  # fmt: skip
    assert code == 0, out
    assert map_html.is_file() and map_html.stat().st_size > 10_000
    table = pd.read_csv(root / "e" / "explanations.csv")
    assert table["overlay"].notna().all()
