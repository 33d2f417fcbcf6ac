"""Orthophoto tiles: geometry against an analytic truth, coverage rules, bad rasters, tile folders.

The imagery is an analytic pattern f(E, N) of UTM 15N (EPSG:32615) coordinates, sampled at the
centre of every pixel of a raster in *another* CRS (EPSG:3857, 0.5 units = 0.37 m on the ground
at 42°N). The expected tile is f at the centres of the tile's pixels, placed independently of
the code under test (an azimuthal-equidistant frame centred on the house: north-up, true
metres). Tolerance: mean absolute difference <= 1.0 grey level and max <= 4 per tile
(bilinear resampling + 8-bit rounding + the <= 0.5° grid rotation of the local CRS). The
pattern's period is 40 m, so a tile off-centre by one tile pixel (1.1 m) differs by ~9 levels
on average and a wrong CRS by far more.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer
from rasterio.transform import Affine, from_origin

from houseprice.data.houses.imagery import OrthophotoTiles, open_raster
from houseprice.data.houses.tilefiles import cut_tiles, link_tile_folder, tile_names
from houseprice.errors import UserInputError

E0, N0 = 440_000.0, 4_650_000.0  # UTM 15N, near Ames, Iowa
PERIOD_M = 40.0
TILE_M = 70.0


def pattern(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB of the analytic ground pattern at UTM 15N coordinates."""
    k = 2 * np.pi / PERIOD_M
    r = 128 + 90 * np.sin(k * e)
    g = 128 + 90 * np.sin(k * n + 1.0)
    b = 128 + 90 * np.sin(k * (e + n) / 1.7 + 2.0)
    return np.clip(np.round(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def write_imagery(
    path: Path,
    *,
    crs: str = "EPSG:3857",
    extent_m: float = 600.0,
    res: float = 0.5,
    origin: tuple[float, float] = (E0, N0),
    nodata: int | None = None,
    overviews: bool = False,
) -> Path:
    """A 3-band uint8 GeoTIFF in ``crs`` holding :func:`pattern`, covering ``extent_m``."""
    to_crs = Transformer.from_crs("EPSG:32615", crs, always_xy=True)
    back = Transformer.from_crs(crs, "EPSG:32615", always_xy=True)
    x0, y0 = to_crs.transform(*origin)
    x1, y1 = to_crs.transform(origin[0] + extent_m, origin[1] - extent_m)
    w, h = int((x1 - x0) / res), int((y0 - y1) / res)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    e, n = back.transform(x0 + cols * res, y0 - rows * res)
    img = pattern(e, n).transpose(2, 0, 1)
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": "uint8", "crs": crs,
        "transform": from_origin(x0, y0, res, res), "tiled": True, "blockxsize": 256,
        "blockysize": 256, "nodata": nodata,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        if overviews:
            dst.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)
    return path


def expected_tile(lat: float, lon: float, size: int, tile_m: float = TILE_M) -> np.ndarray:
    """The pattern at the tile's pixel centres (north-up, true metres around the house)."""
    aeqd = f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
    to_utm = Transformer.from_crs(aeqd, "EPSG:32615", always_xy=True)
    res = tile_m / size
    c = (np.arange(size) + 0.5) * res - tile_m / 2
    dx, dy = np.meshgrid(c, -c)  # row 0 is the northern edge
    e, n = to_utm.transform(dx, dy)
    return pattern(e, n)


def houses_at(points: list[tuple[float, float]]) -> pd.DataFrame:
    """Records (house_id, latitude, longitude) at UTM 15N points."""
    to_ll = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform([p[0] for p in points], [p[1] for p in points])
    return pd.DataFrame(
        {"house_id": [f"H{i}" for i in range(len(points))], "latitude": lat, "longitude": lon}
    )


def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(int) - b.astype(int))
    return float(d.mean()), int(d.max())


@pytest.fixture(scope="module")
def imagery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_imagery(tmp_path_factory.mktemp("ortho") / "ortho_3857.tif")


def test_tiles_match_a_direct_crop_across_crs(imagery: Path) -> None:
    recs = houses_at([(E0 + 150, N0 - 150), (E0 + 300.3, N0 - 412.7), (E0 + 455, N0 - 260)])
    with OrthophotoTiles([imagery], tile_meters=TILE_M) as ortho:
        for size in (64, 33):
            batch = ortho.read(recs, size)
            assert batch.ok.all(), batch.reasons
            for i, row in recs.iterrows():
                mean, worst = diff(
                    batch.pixels[i], expected_tile(row.latitude, row.longitude, size)
                )
                assert mean <= 1.0 and worst <= 4, (size, i, mean, worst)


def test_an_off_centre_tile_would_fail_the_tolerance(imagery: Path) -> None:
    """The check above can fail: the truth one tile pixel east is far outside tolerance."""
    recs = houses_at([(E0 + 150, N0 - 150), (E0 + 151.1, N0 - 150)])
    with OrthophotoTiles([imagery], tile_meters=TILE_M) as ortho:
        batch = ortho.read(recs, 64)
    mean, _ = diff(batch.pixels[1], expected_tile(recs.latitude[0], recs.longitude[0], 64))
    assert mean > 5


def test_overviews_are_used_for_small_tiles_and_agree(tmp_path: Path, imagery: Path) -> None:
    cog = write_imagery(tmp_path / "ovr.tif", overviews=True)
    r = open_raster(cog)
    assert r.factors == [2, 4, 8] and r.level_for(TILE_M / 16) >= 1 and r.level_for(0.1) == -1
    recs = houses_at([(E0 + 200, N0 - 200)])
    with OrthophotoTiles([cog]) as a, OrthophotoTiles([imagery]) as b:
        small_a, small_b = a.read(recs, 24).pixels[0], b.read(recs, 24).pixels[0]
    assert diff(small_a, small_b)[0] <= 4


def test_partly_and_mostly_outside_and_fully_outside(imagery: Path) -> None:
    # raster spans E0..E0+600 (ground metres); tiles are 70 m wide
    recs = houses_at([(E0 + 20, N0 - 300), (E0 - 10, N0 - 300), (E0 - 500, N0 - 300)])
    with OrthophotoTiles([imagery]) as ortho:
        batch = ortho.read(recs, 32, warn=False)
        assert ortho.available(recs).tolist() == [True, True, False]
        assert ortho.describe(recs) == ["ortho_3857.tif", "ortho_3857.tif", None]
    assert batch.ok.tolist() == [True, False, False]
    assert batch.pixels[0][:, :5].max() == 0  # the part outside is black
    assert "outside the imagery or nodata (more than 50%)" in batch.reasons[1]
    assert "no file covers this house" in batch.reasons[2]
    with pytest.warns(UserWarning, match="2 of 3 houses have no usable tile"):
        OrthophotoTiles([imagery]).read(recs, 32)


def test_nodata_pixels_count_as_missing(tmp_path: Path) -> None:
    path = write_imagery(tmp_path / "nd.tif", crs="EPSG:32615", nodata=0)
    with rasterio.open(path, "r+") as ds:
        ds.write(np.zeros((3, 200, ds.width), dtype=np.uint8), window=((0, 200), (0, ds.width)))
    recs = houses_at([(E0 + 300, N0 - 60), (E0 + 300, N0 - 300)])  # first tile ~ 80% nodata
    batch = OrthophotoTiles([path]).read(recs, 32, warn=False)
    assert batch.ok.tolist() == [False, True] and "nodata" in batch.reasons[0]


def solid(path: Path, colour: tuple[int, int, int], left: float, width_m: float) -> Path:
    a = np.broadcast_to(np.array(colour, np.uint8)[:, None, None], (3, 100, int(width_m))).copy()
    with rasterio.open(
        path, "w", driver="GTiff", width=a.shape[2], height=100, count=3, dtype="uint8",
        crs="EPSG:32615", transform=from_origin(left, N0, 1.0, 1.0),
    ) as dst:  # fmt: skip
        dst.write(a)
    return path


def test_first_file_wins_per_pixel_and_later_files_fill_gaps(tmp_path: Path) -> None:
    red = solid(tmp_path / "red.tif", (200, 0, 0), E0, 200)  # E0 .. E0+200
    blue = solid(tmp_path / "blue.tif", (0, 0, 200), E0 + 100, 300)  # E0+100 .. E0+400
    recs = houses_at([(E0 + 150, N0 - 50), (E0 + 300, N0 - 50), (E0 + 200, N0 - 50)])
    batch = OrthophotoTiles([red, blue], tile_meters=60).read(recs, 30)
    assert batch.ok.all()
    assert (batch.pixels[0][..., 0] == 200).all()  # inside both: the first file only
    assert (batch.pixels[1][..., 2] == 200).all()  # only in the second
    seam = batch.pixels[2]  # red west of E0+200, blue east of it
    assert (seam[:, :14, 0] == 200).all() and (seam[:, 16:, 2] == 200).all()
    flipped = OrthophotoTiles([blue, red], tile_meters=60).read(recs, 30)
    assert (flipped.pixels[0][..., 2] == 200).all()  # order decides


def write_raw(path: Path, **kw: object) -> Path:
    args = {"driver": "GTiff", "width": 64, "height": 64, "count": 3, "dtype": "uint8", **kw}
    with rasterio.open(path, "w", **args) as dst:
        dst.write(np.ones((args["count"], 64, 64), dtype=args["dtype"]))
    return path


def test_bad_rasters_are_user_errors_naming_the_file(tmp_path: Path, imagery: Path) -> None:
    tr = from_origin(E0, N0, 1, 1)
    no_crs = write_raw(tmp_path / "no_crs.tif", transform=tr)
    no_gt = write_raw(tmp_path / "no_gt.tif", crs="EPSG:32615", transform=Affine.identity())
    wide = write_raw(tmp_path / "u16.tif", crs="EPSG:32615", transform=tr, dtype="uint16")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a tiff" * 100)
    cut = tmp_path / "truncated.tif"
    data = write_imagery(tmp_path / "whole.tif", crs="EPSG:32615", extent_m=300).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    cases = {
        no_crs: "the raster has no CRS",
        no_gt: "no geotransform",
        wide: "expected 8-bit imagery",
        junk: "not a readable GeoTIFF",
        cut: "corrupt or truncated raster",
        tmp_path / "missing.tif": "no such imagery file",
    }
    for path, message in cases.items():
        with pytest.raises(UserInputError, match=message) as ei:
            OrthophotoTiles([imagery, path])
        assert str(path) in str(ei.value)


def test_imagery_covering_no_house_hints_at_the_crs(tmp_path: Path, imagery: Path) -> None:
    recs = houses_at([(E0 + 100, N0 - 100)])
    recs[["latitude", "longitude"]] = [[10.0, 20.0]]  # e.g. records in the wrong CRS
    with pytest.raises(UserInputError, match=r"covers none of .*Check the CRS") as ei:
        cut_tiles(recs, [imagery], tmp_path / "tiles")
    assert str(imagery) in str(ei.value)


def test_cut_tiles_writes_safe_names_and_returns_image_values(
    tmp_path: Path, imagery: Path
) -> None:
    recs = houses_at([(E0 + 100, N0 - 100), (E0 + 200, N0 - 200), (E0 - 900, N0)])
    recs["house_id"] = ["A-1", "../evil/x", "far"]
    files = cut_tiles(recs, [imagery], tmp_path / "tiles", tile_px=32)
    names = tile_names(recs["house_id"].tolist())
    assert files.images[0] == "tiles/A-1.png" and files.images[2] is None
    assert files.images[1] == f"tiles/{names[1]}.png" and "/" not in names[1]
    assert sorted(p.name for p in (tmp_path / "tiles").iterdir()) == sorted(
        [f"{names[0]}.png", f"{names[1]}.png"]
    )
    with Image.open(tmp_path / "tiles" / "A-1.png") as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    assert 2 in files.reasons


def test_tile_names_are_unique_and_safe() -> None:
    names = tile_names(["a", "A", "ok_1.2", "x/y", ".hidden", "é", "", "z" * 200])
    assert names[2] == "ok_1.2" and len(set(n.lower() for n in names)) == len(names)
    assert all(
        set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for n in names
    )
    assert not any(n.startswith(".") for n in names) and max(map(len, names)) <= 100


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(p.name.encode() + (p.read_bytes() if p.is_file() else b"/"))
        h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


def test_tile_folder_is_checked_linked_and_never_modified(tmp_path: Path) -> None:
    user = tmp_path / "my_tiles"
    user.mkdir()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(user / "H1.png")
    Image.new("RGB", (40, 30)).save(user / "H2.jpg")  # not square
    (user / "H3.png").write_bytes(b"broken")
    Image.new("RGB", (40, 40)).save(user / "OTHER.png")  # no such house
    before = folder_digest(user)
    ids = ["H1", "H2", "H3", "H4"]
    linked = link_tile_folder(ids, user)  # no copy: names relative to the folder
    assert linked.images == ["H1.png", None, None, None] and linked.unmatched == 1
    assert "must be square" in linked.reasons[1] and "not a readable image" in linked.reasons[2]
    assert "no image named H4" in linked.reasons[3]
    copied = link_tile_folder(ids, user, tmp_path / "out" / "tiles")
    assert copied.images[0] == "tiles/H1.png" and copied.sizes == {40}
    assert (tmp_path / "out" / "tiles" / "H1.png").read_bytes() == (user / "H1.png").read_bytes()
    assert folder_digest(user) == before
    with pytest.raises(UserInputError, match="no usable tile for any house"):
        link_tile_folder(["H2", "H9"], user)
    with pytest.raises(UserInputError, match="no such tiles folder"):
        link_tile_folder(ids, tmp_path / "nope")


def test_cut_tiles_output_does_not_depend_on_threads(tmp_path: Path, imagery: Path) -> None:
    rng = np.random.default_rng(5)
    recs = houses_at([(E0 + x, N0 - y) for x, y in rng.uniform(40, 560, (40, 2))])
    one = cut_tiles(recs, [imagery], tmp_path / "a", tile_px=16, workers=1, chunk=7)
    two = cut_tiles(recs, [imagery], tmp_path / "b", tile_px=16, workers=2, chunk=5)
    assert one.images == two.images and one.reasons == two.reasons
    for name in one.images:
        assert name is not None
        stem = name.removeprefix("tiles/")
        assert (tmp_path / "a" / stem).read_bytes() == (tmp_path / "b" / stem).read_bytes()
