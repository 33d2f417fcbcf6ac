"""Tests for houseprice.maps.table: every bad cell of the valuations table is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from map_synthetic import MakeValuations, render

from houseprice.errors import UserInputError
from houseprice.maps import render_valuation_map
from houseprice.maps.table import attribute_columns, checked_frame


def test_bad_rows_are_all_reported(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(4)
    frame.loc[1, "latitude"] = 95.0
    frame.loc[2, "image"] = str(tmp_path / "missing.png")
    frame.loc[3, "house_id"] = "house-1"
    frame.loc[0, "price"] = -3.0
    with pytest.raises(ValueError) as info:
        render(tmp_path, frame)
    assert isinstance(info.value, UserInputError)
    message = str(info.value)
    assert "4 problem(s)" in message or "3 problem(s)" in message
    assert "row 1 (house_id='house-1'), column 'latitude'" in message
    assert "row 3 (house_id='house-1'), column 'house_id': duplicates row 1" in message
    assert "column 'price'" in message
    frame = make_valuations(2)
    frame.loc[1, "image"] = str(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"row 1 .*column 'image': image file not found"):
        render(tmp_path, frame)


def test_missing_columns_and_empty_table(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(1)
    with pytest.raises(UserInputError, match="missing column"):
        render_valuation_map(
            frame.drop(columns=["predicted_price"]), tmp_path / "m.html", tile_meters=50.0
        )
    with pytest.raises(UserInputError, match="no rows"):
        render_valuation_map(frame.iloc[:0], tmp_path / "m.html", tile_meters=50.0)
    with pytest.raises(TypeError, match="DataFrame"):
        checked_frame(frame.to_dict())  # type: ignore[arg-type]


def test_checked_frame_parses_and_fills(make_valuations: MakeValuations) -> None:
    frame = make_valuations(2, with_images=False).drop(columns=["price", "image", "heatmap"])
    frame["latitude"] = frame["latitude"].astype(str)
    checked = checked_frame(frame.set_index("house_id", drop=False))
    assert checked["latitude"].dtype.kind == "f"
    assert checked["price"].isna().all() and checked["image"].isna().all()
    assert list(checked.index) == [0, 1]
    assert attribute_columns(checked) == ["bedrooms", "area_sqft", "sold_date"]


def test_empty_and_duplicate_ids(make_valuations: MakeValuations) -> None:
    frame = make_valuations(3, with_images=False)
    frame.loc[0, "house_id"] = "  "
    frame.loc[2, "house_id"] = "house-1"
    with pytest.raises(UserInputError) as info:
        checked_frame(frame)
    message = str(info.value)
    assert "row 0 (house_id='  '), column 'house_id': is empty" in message
    assert "row 2 (house_id='house-1'), column 'house_id': duplicates row 1" in message
