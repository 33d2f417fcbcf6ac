"""predict --out X.gpkg / X.geoparquet: layers a GIS opens, read back with pyogrio / geopandas.

Checks geometry (the house's longitude/latitude, or their projection with --crs), CRS, every
output column and its values against a one-shot predict_frame, the area-cell layer against an
independent computation (count, median ratio, COD by the IAAO formula), the partitions being
streamed into the file, resume, and the overwrite rules (never a file houseprice did not write).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
from pyproj import Transformer

import houseprice.jobs.gis_out as gis_out
from houseprice.data.houses import load_any
from houseprice.errors import OutputExistsError, UserInputError
from houseprice.jobs.engines import score_table
from houseprice.jobs.gis_out import input_crs
from houseprice.maps.areas import area_grid
from houseprice.maps.payload import MapStyle
from houseprice.valuation.model import HousePriceModel


@pytest.fixture(scope="module")
def one_shot(city_model: Path, tiny_city: Path) -> pd.DataFrame:
    model = HousePriceModel.load(city_model)
    ds = load_any(tiny_city, purpose="predict")
    return model.predict_frame(ds.records, ds.tiles).reset_index(drop=True)


def _check_points(got: gpd.GeoDataFrame, want: pd.DataFrame) -> None:
    assert list(got["house_id"]) == list(want["house_id"])
    assert set(want.columns) <= set(got.columns)  # every output column, whatever they are
    assert (got.geom_type == "Point").all()
    np.testing.assert_allclose(got["predicted_price"], want["predicted_price"], rtol=1e-12)
    assert list(got["used_visual"].astype(bool)) == list(want["used_visual"])


def _check_areas(areas: gpd.GeoDataFrame, houses: pd.DataFrame) -> None:
    """The cells against an independent computation on the same grid."""
    grid = area_grid(
        houses["latitude"].to_numpy(),
        houses["longitude"].to_numpy(),
        cell_meters=None,
        cells_across=MapStyle().area_cells_across,
    )
    cells = pd.Series(list(map(tuple, grid.cells)))
    assert areas["houses"].sum() == len(houses)
    assert len(areas) == cells.nunique()
    assert (areas.geom_type == "Polygon").all()
    busiest = areas.sort_values(["sales", "cell_row", "cell_col"]).iloc[-1]
    assert busiest["sales"] >= 2
    inside = (cells == (busiest["cell_row"], busiest["cell_col"])).to_numpy()
    ratio = (houses["predicted_price"] / houses["price"]).to_numpy()[inside]
    med = np.median(ratio)
    assert busiest["houses"] == inside.sum()
    assert busiest["median_ratio"] == pytest.approx(med, rel=1e-12)
    assert busiest["cod"] == pytest.approx(100 * np.mean(np.abs(ratio - med)) / med, rel=1e-9)
    assert busiest["median_predicted_price"] == pytest.approx(
        np.median(houses["predicted_price"].to_numpy()[inside]), rel=1e-12
    )
    # the polygon holds its houses
    lon_lat = gpd.points_from_xy(houses["longitude"][inside], houses["latitude"][inside])
    polygon = areas.to_crs("EPSG:4326").geometry[busiest.name]
    assert all(polygon.buffer(1e-9).contains(p) for p in lon_lat)


def test_gpkg_point_and_area_layers(
    city_model: Path, tiny_city: Path, tmp_path: Path, one_shot: pd.DataFrame
) -> None:
    out = tmp_path / "prices.gpkg"
    res = score_table(city_model, tiny_city, out, chunk_size=37, progress=False)
    assert res.partitions == 5 and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prices.gpkg"]  # no work folder left
    layers = {name: kind for name, kind in pyogrio.list_layers(out)}
    assert layers == {"houses": "Point", "areas": "Polygon"}
    info = pyogrio.read_info(out, layer="houses")
    assert info["crs"] == "EPSG:4326" and info["features"] == len(one_shot)
    houses = pyogrio.read_dataframe(out, layer="houses")
    _check_points(houses, one_shot)
    np.testing.assert_allclose(houses.geometry.x, one_shot["longitude"], atol=1e-12)
    np.testing.assert_allclose(houses.geometry.y, one_shot["latitude"], atol=1e-12)
    areas = pyogrio.read_dataframe(out, layer="areas")
    assert areas.crs.to_epsg() == 4326
    _check_areas(areas, one_shot)


def test_gpkg_in_another_crs(
    city_model: Path, tiny_city: Path, tmp_path: Path, one_shot: pd.DataFrame
) -> None:
    out = tmp_path / "utm.gpkg"
    score_table(city_model, tiny_city, out, chunk_size=100, progress=False, crs="EPSG:32615")
    houses = pyogrio.read_dataframe(out, layer="houses")
    assert houses.crs.to_epsg() == 32615
    x, y = Transformer.from_crs(4326, 32615, always_xy=True).transform(
        one_shot["longitude"].to_numpy(), one_shot["latitude"].to_numpy()
    )
    np.testing.assert_allclose(houses.geometry.x, x, atol=1e-6)
    np.testing.assert_allclose(houses.geometry.y, y, atol=1e-6)
    assert pyogrio.read_info(out, layer="areas")["crs"] == "EPSG:32615"


def test_geoparquet(
    city_model: Path, tiny_city: Path, tmp_path: Path, one_shot: pd.DataFrame
) -> None:
    out = tmp_path / "prices.geoparquet"
    score_table(city_model, tiny_city, out, chunk_size=50, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "prices.areas.geoparquet",
        "prices.geoparquet",
    ]
    houses = gpd.read_parquet(out)
    assert houses.crs.to_epsg() == 4326
    _check_points(houses, one_shot)
    np.testing.assert_allclose(houses.geometry.x, one_shot["longitude"], atol=1e-12)
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # one per partition: streamed
    areas = gpd.read_parquet(tmp_path / "prices.areas.geoparquet")
    _check_areas(areas, one_shot)


def test_gis_output_is_written_part_by_part(
    city_model: Path, tiny_city: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The points are appended one partition at a time, never the whole table at once."""
    sizes: list[int] = []
    real = gis_out.GisWriter.append

    def spy(self: gis_out.GisWriter, frame: pd.DataFrame) -> None:
        sizes.append(len(frame))
        real(self, frame)

    monkeypatch.setattr(gis_out.GisWriter, "append", spy)
    score_table(city_model, tiny_city, tmp_path / "p.gpkg", chunk_size=40, progress=False)
    assert sizes == [40, 40, 40, 40]


def test_gis_overwrite_rules(city_model: Path, tiny_city: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "theirs.gpkg"
    foreign.write_bytes(b"someone else's data")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError):
            score_table(city_model, tiny_city, foreign, overwrite=overwrite, progress=False)
    assert foreign.read_bytes() == b"someone else's data"
    ours = tmp_path / "ours.gpkg"
    score_table(city_model, tiny_city, ours, progress=False)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        score_table(city_model, tiny_city, ours, progress=False)
    score_table(city_model, tiny_city, ours, overwrite=True, progress=False, crs="EPSG:3857")
    assert pyogrio.read_info(ours, layer="houses")["crs"] == "EPSG:3857"


def test_crs_errors(city_model: Path, tiny_city: Path, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="EPSG"):
        score_table(city_model, tiny_city, tmp_path / "a.gpkg", crs="EPSG:not", progress=False)
    with pytest.raises(UserInputError, match="only to a"):
        score_table(city_model, tiny_city, tmp_path / "a.csv", crs="EPSG:3857", progress=False)
    with pytest.raises(UserInputError, match="declares no CRS"):
        score_table(city_model, tiny_city, tmp_path / "a.gpkg", crs="input", progress=False)
    assert not list(tmp_path.iterdir())


def test_input_crs(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=gpd.points_from_xy([500000], [4650000]))
    frame.set_crs("EPSG:26915").to_file(tmp_path / "in.gpkg")
    frame.set_crs("EPSG:26915").to_parquet(tmp_path / "in.parquet")
    assert input_crs(tmp_path / "in.gpkg").to_epsg() == 26915
    assert input_crs(tmp_path / "in.parquet").to_epsg() == 26915
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "in.csv")
    with pytest.raises(UserInputError, match="declares no CRS"):
        input_crs(tmp_path / "in.csv")


def test_explain_gpkg(city_model: Path, tiny_city: Path, tmp_path: Path) -> None:
    from houseprice.jobs import explain_table

    out = tmp_path / "expl"
    res = explain_table(
        city_model,
        tiny_city,
        out,
        gpkg=out / "houses.gpkg",
        crs="EPSG:32615",
        progress=False,
        max_evidence=5,
    )
    table = pd.read_csv(res.table)
    houses = pyogrio.read_dataframe(out / "houses.gpkg", layer="houses")
    assert houses.crs.to_epsg() == 32615
    assert set(table.columns) <= set(houses.columns)
    assert list(houses["house_id"]) == list(table["house_id"].astype(str))
    np.testing.assert_allclose(houses["predicted_price"], table["predicted_price"], rtol=1e-9)
    areas = pyogrio.read_dataframe(out / "houses.gpkg", layer="areas").to_crs("EPSG:4326")
    _check_areas(areas, table)
    with pytest.raises(UserInputError, match="only with --gpkg"):
        explain_table(city_model, tiny_city, tmp_path / "e2", crs="EPSG:3857", progress=False)


class _Crash(BaseException):
    """Not an Exception: nothing on the way may swallow it (like a kill or Ctrl-C)."""


def test_gis_resume(
    city_model: Path,
    tiny_city: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_shot: pd.DataFrame,
) -> None:
    import houseprice.jobs.engines as engines

    out = tmp_path / "p.gpkg"
    real = engines.score_partition
    seen: list[int] = []

    def crash_at_third(job, part, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(seen) == 2:
            raise _Crash("interrupted")
        seen.append(part.index)
        return real(job, part, *args, **kwargs)

    monkeypatch.setattr(engines, "score_partition", crash_at_third)
    with pytest.raises(_Crash):
        score_table(city_model, tiny_city, out, chunk_size=40, progress=False)
    assert not out.exists() and (tmp_path / ".p.gpkg.parts").is_dir()  # never a partial file
    monkeypatch.setattr(engines, "score_partition", real)
    res = score_table(city_model, tiny_city, out, chunk_size=40, progress=False, resume=True)
    assert res.reused == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gpkg"]
    _check_points(pyogrio.read_dataframe(out, layer="houses"), one_shot)
