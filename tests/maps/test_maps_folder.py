"""Tests for folder maps (houseprice.maps.folder and render_valuation_map above the threshold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from map_synthetic import MakeValuations, page_payload, with_contributions

from houseprice.errors import OutputExistsError, UserInputError
from houseprice.maps import render_valuation_map
from houseprice.maps.folder import pack_info, spatial_chunks, unpack_info
from houseprice.maps.render import MAP_FOLDER_KIND, folder_for


def _chunk(path: Path) -> tuple[int, dict]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("window.houseprice.registerChunk(") and text.endswith(");\n")
    head, _, body = text[len("window.houseprice.registerChunk(") : -3].partition(",")
    return int(head), json.loads(body)


def test_spatial_chunks_partition_the_houses() -> None:
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(42, 42.05, 5000), rng.uniform(-93.7, -93.6, 5000)
    chunks = spatial_chunks(lat, lon, 300)
    assert all(1 <= len(c) <= 300 for c in chunks)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(5000))
    same = spatial_chunks(np.full(50, 42.0), np.full(50, -93.6), 10)  # cannot split: one leaf
    assert [len(c) for c in same] == [50]


def test_folder_map_layout_and_records(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = with_contributions(make_valuations(12))
    out = render_valuation_map(
        frame, tmp_path / "city" / "map.html", tile_meters=50.0, folder_threshold=10
    )
    folder = tmp_path / "city" / "map"
    assert out == folder / "index.html" == folder_for(tmp_path / "city" / "map.html") / "index.html"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == MAP_FOLDER_KIND  # so --overwrite may replace it later
    assert {"index.html", "data/chunk_0001.js"} <= set(manifest["files"])
    assert not (tmp_path / "city" / "map.html").exists()
    data = page_payload(out.read_text(encoding="utf-8"))
    assert "houses" not in data and "images" not in data
    assert sum(c["n"] for c in data["chunks"]) == 12
    # every house is in exactly one chunk, with the single-file record minus the footprint
    single = render_valuation_map(frame, tmp_path / "single.html", tile_meters=50.0)
    expected = {h["label"]: h for h in page_payload(single.read_text("utf-8"))["houses"]}
    seen = 0
    for summary in data["chunks"]:
        chunk_id, chunk = _chunk(folder / summary["file"])
        assert chunk_id == summary["id"] and len(chunk["houses"]) == summary["n"]
        for house in chunk["houses"]:
            want = expected[house["label"]]
            assert unpack_info(house["info"]) == want["info"]
            assert {k: v for k, v in want.items() if k not in ("b", "info", "t", "h")} == {
                k: v for k, v in house.items() if k not in ("info", "t", "h")
            }
            for key in ("t", "h"):  # images are relative files of the folder
                url = chunk["images"][house[key]][0]
                assert url.startswith("img/") and (folder / url).is_file()
            seen += 1
    assert seen == 12
    assert "<" not in "".join(c.get("file", "") for c in data["chunks"])


def test_pack_info_round_trip(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = with_contributions(make_valuations(6))  # house 0 has a malicious id
    single = render_valuation_map(frame, tmp_path / "m.html", tile_meters=50.0)
    for house in page_payload(single.read_text("utf-8"))["houses"]:
        packed = pack_info(house["info"])
        assert unpack_info(packed) == house["info"]
        assert len(packed) < 0.6 * len(house["info"])


def test_folder_overwrite_rules(tmp_path: Path, make_valuations: MakeValuations) -> None:
    frame = make_valuations(4, with_images=False)
    target = tmp_path / "map.html"
    render_valuation_map(frame, target, tile_meters=50.0, folder_threshold=3)
    with pytest.raises(OutputExistsError, match="overwrite"):
        render_valuation_map(frame, target, tile_meters=50.0, folder_threshold=3)
    render_valuation_map(frame, target, tile_meters=50.0, folder_threshold=3, overwrite=True)
    (tmp_path / "map" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="did not write"):
        render_valuation_map(frame, target, tile_meters=50.0, folder_threshold=3, overwrite=True)
    with pytest.raises(UserInputError, match="folder_threshold"):
        render_valuation_map(frame, target, tile_meters=50.0, folder_threshold=0)
