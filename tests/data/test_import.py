"""Importing a user's house file: formats, CRS handling, column matching, refusals, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import jsonschema
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from houseprice.data.houses import load_dataset, records_frame
from houseprice.data.houses.columns import match_columns, parse_column_pairs
from houseprice.data.houses.importer import ImportSource, import_records, tile_dataset
from houseprice.data.houses.schema import dataset_json_schema
from houseprice.errors import OutputExistsError, UserInputError

E0, N0 = 440_000.0, 4_650_000.0  # UTM 15N (EPSG:32615), near Ames
TO_LL = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True)


def houses_gpkg(path: Path, n: int = 6, crs: str | None = "EPSG:32615") -> Path:
    pts = [Point(E0 + 100 + 40 * i, N0 - 100 - 30 * i) for i in range(n)]
    gdf = gpd.GeoDataFrame(
        {
            "PID": [f"P{i}" for i in range(n)],
            "SalePrice": [200_000.0 + 1000 * i for i in range(n)],
            "Gr_Liv_Area": [1500.0] * n,
            "Beds": [3] * n,
            "SaleDate": ["2010-05-03"] * n,
            "Zoning": ["RL"] * n,
        },
        geometry=pts,
        crs=crs,
    )
    gdf.to_file(path, engine="pyogrio")
    return path


def ortho_3857(path: Path, extent_m: float = 600.0) -> Path:
    """Noise imagery in EPSG:3857 over the UTM square E0..E0+extent, N0-extent..N0."""
    to = Transformer.from_crs("EPSG:32615", "EPSG:3857", always_xy=True)
    x0, y0 = to.transform(E0, N0)
    x1, y1 = to.transform(E0 + extent_m, N0 - extent_m)
    w, h = int(x1 - x0), int(y0 - y1)
    pixels = np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8)
    with rasterio.open(
        path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:3857",
        transform=from_origin(x0, y0, 1.0, 1.0),
    ) as dst:  # fmt: skip
        dst.write(pixels)
    return path


def test_projected_geopackage_with_imagery_in_another_crs(tmp_path: Path) -> None:
    gpkg = houses_gpkg(tmp_path / "sales.gpkg")
    ortho = ortho_3857(tmp_path / "ortho.tif")
    res = import_records(gpkg, out=tmp_path / "ds", imagery=[ortho], tile_px=32, progress=False)
    assert (res.kept, res.refused_rows, res.tiles) == (6, 0, 6)
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    jsonschema.validate(meta, dataset_json_schema())
    assert meta["n_houses"] == 6 and meta["tile_px"] == 32 and meta["tile_meters"] == 70.0
    assert "EPSG:32615 -> EPSG:4326" in meta["source"]
    ds = load_dataset(tmp_path / "ds", purpose="train")
    lon, lat = TO_LL.transform(E0 + 100, N0 - 100)
    assert ds.records.latitude[0] == pytest.approx(lat, abs=1e-7)
    assert ds.records.longitude[0] == pytest.approx(lon, abs=1e-7)
    assert ds.records["Zoning"].tolist() == ["RL"] * 6  # extras kept
    assert ds.records["image"].tolist() == [f"tiles/P{i}.png" for i in range(6)]
    assert ds.tiles.read(ds.records, 32).ok.all()
    text = "\n".join(res.lines())
    for line in ("house_id   <- 'PID' (auto)", "price      <- 'SalePrice' (auto)",
                 "area_sqft  <- 'Gr_Liv_Area' (auto)", "bedrooms   <- 'Beds' (auto)"):  # fmt: skip
        assert line in text


def test_csv_with_common_names_and_lat_lon(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    pd.DataFrame(
        {
            "Parcel ID": ["A", "B"], "Lat": ["42.0", "42.01"], "Lng": ["-93.6", "-93.61"],
            "beds": ["3", "NA"], "Baths": ["2.5", ""], "SqFt": ["1200", "900"],
            "Sale_Date": ["2011-02-03 00:00:00", "2011/04/05"], "sale_price": ["1e5", "2e5"],
            "image": ["mine.png", "x.png"],
        }
    ).to_csv(csv, index=False)  # fmt: skip
    res = import_records(csv, out=tmp_path / "ds", progress=False)
    ds = load_dataset(tmp_path / "ds", purpose="train")
    r = ds.records
    assert r["house_id"].tolist() == ["A", "B"] and r["bedrooms"].isna().tolist() == [False, True]
    assert [str(d.date()) for d in r["sold_date"]] == ["2011-02-03", "2011-04-05"]
    assert r["source_image"].tolist() == ["mine.png", "x.png"]  # renamed, not a tile path
    assert "image" not in r.columns and res.refused_rows == 0


def test_xy_columns_in_a_projected_crs(tmp_path: Path) -> None:
    csv = tmp_path / "xy.csv"
    pd.DataFrame(
        {"id": [1, 2], "X": [E0, E0 + 500], "Y": [N0, N0 - 500], "price": [1e5, 2e5]}
    ).to_csv(csv, index=False)
    with pytest.raises(UserInputError, match=r"xy.csv.*look like projected.*--crs"):
        import_records(csv, out=tmp_path / "a", progress=False)
    import_records(csv, out=tmp_path / "b", crs="EPSG:32615", progress=False)
    r = load_dataset(tmp_path / "b").records
    lon, lat = TO_LL.transform([E0, E0 + 500], [N0, N0 - 500])
    np.testing.assert_allclose(r["longitude"], lon, atol=1e-7)
    np.testing.assert_allclose(r["latitude"], lat, atol=1e-7)
    with pytest.raises(UserInputError, match="not a CRS PROJ knows"):
        import_records(csv, out=tmp_path / "c", crs="EPSG:999999", progress=False)


def test_geometry_without_crs_needs_crs(tmp_path: Path) -> None:
    gpkg = houses_gpkg(tmp_path / "nocrs.gpkg", crs=None)
    with pytest.raises(UserInputError, match=r"nocrs.gpkg: the geometry column .* has no CRS"):
        import_records(gpkg, out=tmp_path / "a", progress=False)
    res = import_records(gpkg, out=tmp_path / "b", crs="EPSG:32615", progress=False)
    assert res.kept == 6
    with pytest.raises(UserInputError, match="the file says its CRS is EPSG:32615"):
        import_records(houses_gpkg(tmp_path / "x.gpkg"), out=tmp_path / "c", crs="EPSG:3857")


def test_parcels_are_reduced_to_a_point_inside_them(tmp_path: Path) -> None:
    # An L-shaped parcel: its centroid lies outside it, the representative point does not.
    ell = box(E0, N0 - 100, E0 + 100, N0).difference(box(E0 + 20, N0 - 100, E0 + 100, N0 - 20))
    gdf = gpd.GeoDataFrame({"pid": ["L"], "price": [1e5]}, geometry=[ell], crs="EPSG:32615")
    path = tmp_path / "parcels.parquet"
    gdf.to_parquet(path)  # GeoParquet
    import_records(path, out=tmp_path / "ds", progress=False)
    r = load_dataset(tmp_path / "ds").records
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32615", always_xy=True)
    assert ell.contains(Point(*to_utm.transform(r.longitude[0], r.latitude[0])))
    assert not ell.contains(ell.centroid)


def test_column_options(tmp_path: Path) -> None:
    gpkg = houses_gpkg(tmp_path / "h.gpkg")
    with pytest.raises(UserInputError, match=r"no column 'Cost' in the file \(columns: 'PID'"):
        import_records(gpkg, out=tmp_path / "a", columns={"price": "Cost"})
    with pytest.raises(UserInputError, match="'cost' is not a contract column"):
        import_records(gpkg, out=tmp_path / "a", columns={"cost": "SalePrice"})
    with pytest.raises(UserInputError, match="expected contract=source"):
        parse_column_pairs(["price"])
    res = import_records(
        gpkg, out=tmp_path / "b", columns={"house_id": "Zoning", "price": "SalePrice"}
    )
    assert res.refused_rows == 5  # Zoning is "RL" everywhere: duplicates refused, first kept
    m = match_columns(["LATITUDE", "y", "Long", "SALEPRICE", "price"])
    assert m.source_of("latitude") == "LATITUDE" and m.source_of("longitude") == "Long"
    assert m.source_of("price") == "price" and m.extras == ["y", "SALEPRICE"]


def test_refused_rows_are_listed_and_kept_rows_are_valid(tmp_path: Path) -> None:
    csv = tmp_path / "messy.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "a", "c", "d", "e", "", "f"],
            "latitude": ["42", "42", "42", "95", "42", "x", "42", "42"],
            "longitude": ["-93", "-93", "-93", "-93", "-93", "-93", "-93", "-93"],
            "price": ["1e5", "lots", "1e5", "1e5", "1e5", "1e5", "1e5", "-5"],
            "area": ["900", "900", "900", "900", "0", "900", "900", "abc"],
        }
    ).to_csv(csv, index=False)
    res = import_records(csv, out=tmp_path / "ds", progress=False)
    rej = pd.read_csv(tmp_path / "ds" / "rejected.csv", dtype=str, keep_default_na=False)
    by_row = {int(k): g for k, g in rej.groupby("source_row")}
    assert sorted(by_row) == [2, 3, 4, 5, 6, 7, 8] and res.kept == 1 and res.refused_rows == 7
    assert by_row[2]["reason"].tolist() == ["price: expected a finite number"]
    assert by_row[3]["reason"].str.startswith("duplicate house_id (the first, source row 1").all()
    assert by_row[4]["column"].tolist() == ["latitude"] and by_row[4]["value"].tolist() == ["95"]
    assert by_row[5]["reason"].tolist() == ["area_sqft: must be > 0"]
    assert by_row[6]["reason"].tolist() == ["expected a number"]
    assert by_row[7]["reason"].tolist() == ["house_id: value is required"]
    assert len(by_row[8]) == 2  # both problems of one row are listed
    kept = pd.read_csv(tmp_path / "ds" / "houses.csv", dtype=str, keep_default_na=False)
    assert kept["house_id"].tolist() == ["a"]
    records_frame(kept, purpose="any")  # passes the contract


def test_everything_refused_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["a"], "lat": ["x"], "lon": ["y"]}).to_csv(csv, index=False)
    with pytest.raises(UserInputError, match=r"bad.csv: all 1 row\(s\) were refused"):
        import_records(csv, out=tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    pd.DataFrame({"id": ["a"], "price": [1]}).to_csv(csv, index=False)
    with pytest.raises(UserInputError, match="no coordinates"):
        import_records(csv, out=tmp_path / "ds")


def test_outputs_are_never_clobbered(tmp_path: Path) -> None:
    gpkg = houses_gpkg(tmp_path / "h.gpkg")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not empty"):
        import_records(gpkg, out=mine)
    with pytest.raises(OutputExistsError, match="not written by `houseprice data import`"):
        import_records(gpkg, out=mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    import_records(gpkg, out=tmp_path / "ds", progress=False)
    import_records(gpkg, out=tmp_path / "ds", overwrite=True, progress=False)  # ours: fine
    with pytest.raises(UserInputError, match="contains the input"):
        import_records(gpkg, out=tmp_path, overwrite=True)


def test_tiles_folder_mode_copies_and_links(tmp_path: Path) -> None:
    from PIL import Image

    gpkg = houses_gpkg(tmp_path / "h.gpkg", n=3)
    user = tmp_path / "user_tiles"
    user.mkdir()
    for i in (0, 1):
        Image.new("RGB", (48, 48), (i, 0, 0)).save(user / f"P{i}.png")
    res = import_records(gpkg, out=tmp_path / "ds", tiles_dir=user, progress=False)
    assert res.tiles == 2 and res.tile_problems_csv is not None
    problems = pd.read_csv(res.tile_problems_csv)
    assert problems["house_id"].tolist() == ["P2"]
    ds = load_dataset(tmp_path / "ds")
    assert ds.records["image"].tolist()[:2] == ["tiles/P0.png", "tiles/P1.png"]
    assert ds.meta["tile_px"] == 48 and sorted(p.name for p in user.iterdir()) == [
        "P0.png",
        "P1.png",
    ]
    src = ImportSource(gpkg, tiles_dir=user)  # on the fly: the user's folder is the root
    batch = src.load().tiles.read(src.load().records, 16, warn=False)
    assert batch.ok.tolist() == [True, True, False]


def test_import_source_on_the_fly_and_tile_dataset(tmp_path: Path) -> None:
    gpkg = houses_gpkg(tmp_path / "h.gpkg")
    ortho = ortho_3857(tmp_path / "o.tif")
    src = ImportSource(gpkg, imagery=[ortho])
    ds = src.load(purpose="train")
    assert len(ds.records) == 6 and ds.meta["tile_meters"] == 70.0
    assert ds.tiles.read(ds.records, 24).ok.all() and not (tmp_path / "h").exists()
    src.close()
    import_records(gpkg, out=tmp_path / "ds", progress=False)
    res = tile_dataset(tmp_path / "ds", [ortho], tile_px=24, progress=False)
    assert res.tiles == 6 and load_dataset(tmp_path / "ds").meta["tile_px"] == 24
    with pytest.raises(OutputExistsError, match="already has tiles"):
        tile_dataset(tmp_path / "ds", [ortho])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "houses.csv").write_text((tmp_path / "ds" / "houses.csv").read_text())
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    meta.pop("generator")
    (foreign / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(UserInputError, match="was not written by `houseprice data import`"):
        tile_dataset(foreign, [ortho])


def test_unreadable_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "h.xlsx").write_bytes(b"x")
    with pytest.raises(UserInputError, match=r"unsupported format '\.xlsx'"):
        import_records(tmp_path / "h.xlsx", out=tmp_path / "a")
    (tmp_path / "h.gpkg").write_bytes(b"not a geopackage")
    with pytest.raises(UserInputError, match=r"h\.gpkg: not a readable gpkg file"):
        import_records(tmp_path / "h.gpkg", out=tmp_path / "a")
    with pytest.raises(UserInputError, match="no such file"):
        import_records(tmp_path / "nope.csv", out=tmp_path / "a")
