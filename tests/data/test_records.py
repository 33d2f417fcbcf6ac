"""The house-record contract: each rule has a bad-input case with its exact message."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from houseprice.data.houses import (
    DatasetError,
    RecordsValidationError,
    load_any,
    load_dataset,
    load_records,
    summarize,
)
from houseprice.data.houses.schema import dataset_json_schema, table_schema

GOOD = {
    "house_id": ["H1", "H2", "H3"],
    "latitude": [43.7, 43.71, 43.72],
    "longitude": [-79.4, -79.41, -79.42],
    "bedrooms": [3, "", 2],
    "bathrooms": [2.5, 1, ""],
    "sold_date": ["2018-05-03", "2018-06", "2019-01-31"],
    "area_sqft": [1500, "", 900.5],
    "price": [700000, 650000, 500000],
    "image": ["tiles/H1.png", "", "tiles/H3.png"],
    "extra_note": ["a", "b", "c"],
}


def write(tmp_path: Path, **changes: list) -> Path:
    data = {**GOOD, **changes}
    p = tmp_path / "houses.csv"
    pd.DataFrame(data).to_csv(p, index=False)
    return p


def problems(tmp_path: Path, purpose: str = "any", **changes: list) -> list[str]:
    with pytest.raises(RecordsValidationError) as ei:
        load_records(write(tmp_path, **changes), purpose=purpose)  # type: ignore[arg-type]
    return [str(p) for p in ei.value.problems]


def test_good_table_loads_typed_and_keeps_missing_values(tmp_path: Path) -> None:
    gdf = load_records(write(tmp_path))
    assert len(gdf) == 3 and gdf.crs.to_epsg() == 4326
    assert gdf["bedrooms"].isna().tolist() == [False, True, False]
    assert gdf["area_sqft"].isna().sum() == 1 and gdf["bathrooms"].isna().sum() == 1
    assert gdf["image"].tolist() == ["tiles/H1.png", None, "tiles/H3.png"]
    assert str(gdf["sold_date"].iloc[1].date()) == "2018-06-01"
    assert gdf["extra_note"].tolist() == ["a", "b", "c"]  # extras kept
    assert gdf.geometry.iloc[0].x == pytest.approx(-79.4)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"house_id": ["H1", "H1", "H3"]},
            "row 2, column 'house_id', value 'H1': must be unique (first seen in row 1)",
        ),
        ({"house_id": ["H1", "", "H3"]}, "row 2, column 'house_id', value None: value is required"),
        (
            {"latitude": ["43.7", "91", "43.7"]},
            "row 2, column 'latitude', value '91': must be <= 90",
        ),
        (
            {"longitude": ["-79.4", "-181", "-79"]},
            "row 2, column 'longitude', value '-181': must be >= -180",
        ),
        (
            {"latitude": [43.7, "north", 43.7]},
            "row 2, column 'latitude', value 'north': expected a finite number",
        ),
        ({"bedrooms": [3, -1, 2]}, "row 2, column 'bedrooms', value '-1': must be >= 0"),
        (
            {"bedrooms": [3, 2.5, 2]},
            "row 2, column 'bedrooms', value '2.5': expected a whole number",
        ),
        ({"bathrooms": [1, -0.5, 1]}, "row 2, column 'bathrooms', value '-0.5': must be >= 0"),
        (
            {"sold_date": ["2018-05-03", "2018-13", "2019-01"]},
            "row 2, column 'sold_date', value '2018-13': expected a date YYYY-MM or YYYY-MM-DD",
        ),
        (
            {"sold_date": ["2018-05-03", "05/06/2018", "2019-01"]},
            "row 2, column 'sold_date', value '05/06/2018': expected a date YYYY-MM or YYYY-MM-DD",
        ),
        ({"area_sqft": [1500, 0, 900]}, "row 2, column 'area_sqft', value '0': must be > 0"),
        ({"price": [1, -5, 1]}, "row 2, column 'price', value '-5': must be > 0"),
        (
            {"image": ["tiles/H1.png", "../../etc/passwd", ""]},
            "row 2, column 'image', value '../../etc/passwd': path escapes the dataset folder",
        ),
        (
            {"image": ["tiles/H1.png", "/etc/passwd", ""]},
            "row 2, column 'image', value '/etc/passwd': must be a relative path inside the "
            "dataset folder (absolute paths are refused)",
        ),
    ],
)
def test_each_rule_reports_row_column_value_and_rule(
    tmp_path: Path, changes: dict, expected: str
) -> None:
    found = problems(tmp_path, **changes)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, latitude=[99, 43, 43], price=[1, 1, -1], bedrooms=[-1, 1, 1])
    assert len(found) == 3
    assert {p.split(",")[0] for p in found} == {"row 1", "row 3"}


def test_missing_required_column(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    pd.DataFrame({"house_id": ["a"], "latitude": [1.0]}).to_csv(p, index=False)
    with pytest.raises(RecordsValidationError, match="required column 'longitude' is missing"):
        load_records(p)


def test_train_purpose_requires_price_and_date(tmp_path: Path) -> None:
    found = problems(tmp_path, purpose="train", price=[1, "", 2])
    assert found == ["row 2, column 'price', value None: value is required"]
    load_records(write(tmp_path, price=["", "", ""]), purpose="predict")  # fine for predict


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    outside.mkdir()
    (tmp_path / "tiles" / "link").symlink_to(outside)
    found = problems(tmp_path, image=["tiles/link/x.png", "", ""])
    assert "path escapes the dataset folder" in found[0]


def test_parquet_and_geoparquet_round_trip(tmp_path: Path) -> None:
    gdf = load_records(write(tmp_path))
    gdf.drop(columns="geometry").to_parquet(tmp_path / "h.parquet")
    gdf.to_parquet(tmp_path / "h.geoparquet")
    for name in ("h.parquet", "h.geoparquet"):
        again = load_records(tmp_path / name)
        assert again["house_id"].tolist() == ["H1", "H2", "H3"]
        assert again["bedrooms"].isna().sum() == 1


def test_unsupported_format(tmp_path: Path) -> None:
    (tmp_path / "h.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"unsupported table format .\.xlsx."):
        load_records(tmp_path / "h.xlsx")


def test_dataset_json_is_schema_checked(tmp_path: Path) -> None:
    write(tmp_path)
    with pytest.raises(DatasetError, match=r"no dataset\.json"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "format": "houseprice-dataset",
                "format_version": 1,
                "name": "x",
                "table": "houses.csv",
                "tile_px": 64,
            }
        )
    )
    with pytest.raises(DatasetError, match="'tile_meters' is a dependency of 'tile_px'"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "format": "houseprice-dataset",
                "format_version": 1,
                "name": "x",
                "table": "houses.csv",
                "tile_px": 64,
                "tile_meters": 70,
            }
        )
    )
    ds = load_dataset(tmp_path)
    assert ds.tile_meters == 70 and ds.has_tiles
    s = summarize(ds)
    assert s["tiles_listed"] == 2 and s["tiles_missing_on_disk"] == 2
    assert load_any(tmp_path / "houses.csv").meta["tile_px"] == 64


def test_committed_schemas_are_current() -> None:
    root = Path(__file__).resolve().parents[2] / "data_specs"
    assert json.loads((root / "houses.schema.json").read_text()) == table_schema()
    assert json.loads((root / "dataset.schema.json").read_text()) == dataset_json_schema()


def _reference_rule(root: Path, raw: str) -> bool:
    """Whether ``raw`` escapes ``root``, by resolving the whole path (the rule's definition)."""
    base = root.resolve()
    resolved = (base / raw).resolve()
    return resolved != base and base not in resolved.parents


def test_fast_path_checker_agrees_with_full_resolution(tmp_path: Path) -> None:
    from houseprice.data.houses.records import path_checker

    root = tmp_path / "data"
    (root / "tiles" / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"x")
    (root / "tiles" / "in.png").write_bytes(b"x")
    (root / "tiles" / "leaf_out.png").symlink_to(outside / "o.png")  # leaf link out
    (root / "tiles" / "leaf_in.png").symlink_to(root / "tiles" / "in.png")  # leaf link in
    (root / "tiles" / "dir_out").symlink_to(outside)  # folder link out
    (root / "tiles" / "up").symlink_to(root / "tiles" / "sub")  # folder link in; up/.. = tiles
    raws = [
        "tiles/in.png", "tiles/leaf_out.png", "tiles/leaf_in.png", "tiles/dir_out/o.png",
        "tiles/up/../in.png", "tiles/up/../../../outside/o.png", "tiles/sub/../../x.png",
        "tiles/..", "tiles/../..", ".", "tiles/./in.png", "tiles//in.png", "tiles/missing/x.png",
        "tiles/dir_out/..", "../data/tiles/in.png", "tiles/up/..",
    ]  # fmt: skip
    check = path_checker(root)
    for raw in raws * 2:  # the second pass answers from the folder cache
        assert (check(raw) is not None) == _reference_rule(root, raw), raw
    assert check("tiles/leaf_out.png") is not None
    assert check("tiles/dir_out/o.png") is not None
    assert check("tiles/leaf_in.png") is None
