"""Bad-input suite, round two (issue 26): 16 more ways a careless or hostile user broke houseprice.

Same rules and machinery as :mod:`test_bad_inputs` (its :func:`check_row` runs each row): exit
code, the message, no traceback, protected files unchanged by digest. Rows are named
``<case>-<what>`` after the issue's numbered list. Rasters are written next to the session's
tiny city (same CRS as its ``orthophoto.tif``); nothing touches the network.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_bad_inputs import (
    EVIL_ID,
    REPO,
    Case,
    Ctx,
    Spec,
    _png_chunk,
    check_row,
    invoke,
    predict_args,
    read_pred,
)

CASES: list[Case] = []
_CHILDREN: list[subprocess.Popen[bytes]] = []  # processes a row started; stopped after it


def case(
    case_id: str, *needles: str, code: int | tuple[int, ...] = 2, timeout: int = 120
) -> Callable[[Callable[[Ctx], Spec]], Callable[[Ctx], Spec]]:
    def register(build: Callable[[Ctx], Spec]) -> Callable[[Ctx], Spec]:
        codes = code if isinstance(code, tuple) else (code,)
        CASES.append(Case(case_id, build, codes, needles, timeout))
        return build

    return register


def _houses(c: Ctx, n: int = 12, mutate: Callable[[pd.DataFrame], None] | None = None) -> Path:
    """The first ``n`` houses of the city as a user's table outside it (no tiles, no price)."""
    df = pd.read_csv(c.city / "houses.csv", dtype=str, keep_default_na=False).head(n)
    df = df.drop(columns=["price", "image", "mask"]).reset_index(drop=True)
    if mutate is not None:
        mutate(df)
    path = c.tmp / "t.csv"
    df.to_csv(path, index=False)
    return path


def _import(c: Ctx, table: Path, *extra: object) -> list[object]:
    return ["data", "import", "--records", table, "--out", c.tmp / "o", "--quiet", *extra]


def _ortho(c: Ctx) -> Path:
    return c.city / "orthophoto.tif"


# ---------------------------------------------------------------------------- rasters
def _raster(
    c: Ctx,
    name: str,
    *,
    res: float,
    px: int,
    count: int = 3,
    fill: Callable[[object], None] | None = None,
    **options: object,
) -> Path:
    """A GeoTIFF in the city orthophoto's CRS, ``px`` x ``px`` pixels of ``res`` metres,
    centred on the city's first house; ``fill(dataset)`` writes it (else nothing is written:
    a sparse file)."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    with rasterio.open(_ortho(c)) as src:
        crs = src.crs
    first = pd.read_csv(c.city / "houses.csv").iloc[0]
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        first["longitude"], first["latitude"]
    )
    half = res * px / 2
    profile = {
        "driver": "GTiff", "width": px, "height": px, "count": count, "dtype": "uint8",
        "crs": crs, "transform": from_origin(x - half, y + half, res, res), **options,
    }  # fmt: skip
    path = c.tmp / name
    with rasterio.open(path, "w", **profile) as dst:
        if fill is not None:
            fill(dst)
    return path


def _alpha_only(dst: object) -> None:
    from rasterio.enums import ColorInterp

    dst.write(np.full((1, dst.height, dst.width), 255, dtype=np.uint8))  # type: ignore[attr-defined]
    dst.colorinterp = [ColorInterp.alpha]  # type: ignore[attr-defined]


def _palette(dst: object) -> None:
    rng = np.random.default_rng(0)
    dst.write(rng.integers(0, 2, (1, dst.height, dst.width), dtype=np.uint8))  # type: ignore[attr-defined]
    dst.write_colormap(1, {0: (200, 30, 30, 255), 1: (30, 30, 200, 255)})  # type: ignore[attr-defined]


def _grey_rgb(dst: object) -> None:
    dst.write(np.full((3, dst.height, dst.width), 90, dtype=np.uint8))  # type: ignore[attr-defined]


@case("05-imagery-single-band-alpha", r"alpha\.tif: .*alpha.*no colour band")
def _(c: Ctx) -> Spec:
    tif = _raster(c, "alpha.tif", res=1.0, px=3000, count=1, fill=_alpha_only)
    return Spec(_import(c, _houses(c), "--imagery", tif), protect=[tif])


@case("10-imagery-1cm-pixels-without-overviews", r"fine\.tif: .*gdaladdo", timeout=180)
def _(c: Ctx) -> Spec:
    # 20,000 x 20,000 pixels of 1 cm: a 70 m tile reads 7,000 x 7,000 of them (no overviews).
    tif = _raster(
        c, "fine.tif", res=0.01, px=20_000, tiled=True, blockxsize=512, blockysize=512,
        SPARSE_OK=True,
    )  # fmt: skip
    out = c.tmp / "o"

    def check(text: str) -> None:
        assert not out.exists()

    return Spec(_import(c, _houses(c, 3), "--imagery", tif), protect=[tif], check=check)


@case("13-imagery-palette-geotiff", r"palette\.tif: .*(colour map|palette).*-expand rgb")
def _(c: Ctx) -> Spec:
    tif = _raster(c, "palette.tif", res=1.0, px=3000, count=1, fill=_palette)
    return Spec(_import(c, _houses(c), "--imagery", tif), protect=[tif])


@case("14-imagery-10-km-pixels-warns", r"warning: .*coarse\.tif.*coarser than", code=0)
def _(c: Ctx) -> Spec:
    tif = _raster(c, "coarse.tif", res=10_000.0, px=3, fill=_grey_rgb)
    return Spec(_import(c, _houses(c), "--imagery", tif), protect=[tif])


@case("16-imagery-no-matmul-warning", code=0)
def _(c: Ctx) -> Spec:
    def check(text: str) -> None:
        assert "matmul" not in text, text
        assert len(read_pred(c.tmp / "p.csv")) == 12

    table = _houses(c)
    return Spec(predict_args(c.model, table, c.tmp / "p.csv", "--imagery", _ortho(c)), check=check)


# ---------------------------------------------------------------------------- 1, 2: data loss
def _refused_first_row(df: pd.DataFrame) -> None:
    df.loc[0, "bedrooms"] = "many"


@case("01-predict-keeps-users-rejected-csv", r"prices\.rejected\.csv.*not written by houseprice")
def _(c: Ctx) -> Spec:
    mine = c.tmp / "prices.rejected.csv"
    mine.write_text("my,own\nnotes,here\n")
    table = _houses(c, mutate=_refused_first_row)
    argv = predict_args(c.model, table, c.tmp / "prices.csv", "--imagery", _ortho(c))
    return Spec([*argv, "--overwrite"], protect=[mine])


@case("01-predict-replaces-its-own-rejected-csv", r"1 problem\(s\)", code=0)
def _(c: Ctx) -> Spec:
    table = _houses(c, mutate=_refused_first_row)
    out = c.tmp / "prices.csv"
    argv = predict_args(c.model, table, out, "--imagery", _ortho(c))
    first = invoke([str(a) for a in argv], timeout=120)
    assert first.code == 0 and first.crash is None, first.output + (first.crash or "")
    old = (c.tmp / "prices.rejected.csv").read_text()

    def check(text: str) -> None:
        assert (c.tmp / "prices.rejected.csv").read_text() == old
        assert len(read_pred(out)) == 11

    return Spec([*argv, "--overwrite"], check=check)


def _explain_map(c: Ctx, where: str, *extra: str, option: str = "--map") -> Spec:
    city2, model2 = c.copy_city(), c.copy_model()
    table = c.table(city2, n=6)
    target = {"table": city2 / "houses.csv", "manifest": model2 / "manifest.json"}.get(
        where, model2 / ("map.html" if option == "--map" else "layers.gpkg")
    )
    argv = ["explain", "--model", model2, "--input", table, "--out", c.tmp / "e", "--quiet"]
    return Spec([*argv, option, target, *extra], protect=[city2, model2])


@case("02-explain-map-over-a-file-of-the-input-folder", r"inside the input .*choose another --map")
def _(c: Ctx) -> Spec:
    return _explain_map(c, "table", "--overwrite")


@case("02-explain-map-over-the-model-manifest", r"inside the input .*choose another --map")
def _(c: Ctx) -> Spec:
    return _explain_map(c, "manifest", "--overwrite")


@case("02-explain-map-into-the-model-folder", r"inside the input .*choose another --map")
def _(c: Ctx) -> Spec:
    return _explain_map(c, "new")


@case("02-explain-gpkg-into-the-model-folder", r"inside the input .*choose another --gpkg")
def _(c: Ctx) -> Spec:
    return _explain_map(c, "new", option="--gpkg")


# ---------------------------------------------------------------------------- 3, 4, 15: runs
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_server() -> int:
    """A plain HTTP server (not a Dask scheduler) on a free local port."""
    port = _free_port()
    cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _CHILDREN.append(proc)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return port
        time.sleep(0.05)
    raise AssertionError("the HTTP server did not start")


@case("03-dask-scheduler-is-an-http-server", r"--scheduler .*not a Dask scheduler", timeout=60)
def _(c: Ctx) -> Spec:
    port = _http_server()
    out = c.tmp / "p.parquet"
    argv = predict_args(c.model, c.city_table, out, "--engine", "dask")
    t0 = time.monotonic()

    def check(text: str) -> None:
        assert time.monotonic() - t0 < 15, f"took {time.monotonic() - t0:.1f} s"
        assert sorted(p.name for p in c.tmp.iterdir()) == [], "left files or folders behind"

    return Spec([*argv, "--scheduler", f"tcp://127.0.0.1:{port}"], check=check)


@case("15-scheduler-empty", r"--scheduler '': .*address")
def _(c: Ctx) -> Spec:
    argv = predict_args(c.model, c.city_table, c.tmp / "p.csv", "--engine", "dask")
    return Spec([*argv, "--scheduler", "", "--workers", "1"])


@case("15-scheduler-without-engine-dask", r"--scheduler: only with --engine dask")
def _(c: Ctx) -> Spec:
    argv = predict_args(c.model, c.city_table, c.tmp / "p.csv")
    return Spec([*argv, "--scheduler", "tcp://127.0.0.1:1"])


def _wait_for(pred: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 600  # interpreter start-up on a loaded machine: minutes
    while time.monotonic() < deadline:
        if pred():
            return
        assert proc.poll() is None, f"the first run ended before {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@case("04-second-predict-on-a-running-output", r"another houseprice run .*p\.parquet")
def _(c: Ctx) -> Spec:
    out = c.tmp / "p.parquet"
    argv = [str(a) for a in predict_args(c.model, c.city_table, out, "--chunk-size", "8")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import main; main()", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _CHILDREN.append(first)
    lock = c.tmp / ".p.parquet.lock"

    def started() -> bool:  # holds the lock (or, without one, has begun writing the output)
        held = lock.is_file() and lock.read_text().strip() == str(first.pid)
        return held or (out / "_job.json").exists()

    _wait_for(started, first, "the first run started")
    first.send_signal(signal.SIGSTOP)  # hold it there, mid-run, while the second one starts

    def check(text: str) -> None:
        first.send_signal(signal.SIGCONT)
        log, _ = first.communicate(timeout=300)
        assert first.returncode == 0, log.decode()
        pred = pd.read_parquet(sorted(out.glob("part-*.parquet")))
        assert len(pred) == 160 and pred["house_id"].is_unique
        assert (out / "manifest.json").exists() and not lock.exists()

    return Spec([*argv, "--resume"], check=check)


# ---------------------------------------------------------------------------- 6: tile folders
def _png(size: int = 16) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (40, 120, 60)).save(buf, format="PNG")
    return buf.getvalue()


def _header_bomb() -> bytes:
    """A PNG whose header claims 100,000 x 100,000 pixels (Pillow: DecompressionBombError)."""
    import struct

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    return png + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4)) + _png_chunk(b"IEND", b"")


def _text_bomb() -> bytes:
    """A 16 px PNG with a zTXt chunk that inflates to 64 MB (Pillow: 'Decompressed data too
    large'; the issue's file had 200 MB, the same refusal)."""
    good = _png(16)
    ztxt = b"Comment\x00\x00" + zlib.compress(b"\x00" * (64 << 20), 9)
    return good[:33] + _png_chunk(b"zTXt", ztxt) + good[33:]


def _tiles_case(c: Ctx, bomb: bytes) -> Spec:
    tiles = c.tmp / "tiles"
    tiles.mkdir()
    table = _houses(c)
    ids = pd.read_csv(table, dtype=str)["house_id"].tolist()
    for i, hid in enumerate(ids):
        (tiles / f"{hid}.png").write_bytes(bomb if i == 0 else _png(16))
    out = c.tmp / "o"

    def check(text: str) -> None:
        problems = pd.read_csv(out / "tile_problems.csv", dtype=str)
        assert problems["house_id"].tolist() == [ids[0]], problems
        assert "not a readable image" in problems["reason"].iloc[0]
        assert len(list((out / "tiles").iterdir())) == len(ids) - 1

    return Spec(_import(c, table, "--tiles", tiles), protect=[tiles], check=check)


@case("06-tiles-png-claiming-100000x100000", code=0)
def _(c: Ctx) -> Spec:
    return _tiles_case(c, _header_bomb())


@case("06-tiles-png-with-huge-ztxt-chunk", code=0)
def _(c: Ctx) -> Spec:
    return _tiles_case(c, _text_bomb())


# ---------------------------------------------------------------------------- 7, 8: values
def _huge_bedrooms(df: pd.DataFrame) -> None:
    df["bedrooms"] = df["bedrooms"].astype(object)
    df.loc[0, "bedrooms"] = "1e20"
    df.loc[1, "bedrooms"] = str(2**63)


BEDROOMS = r"row 1, column 'bedrooms', value '1e20': .*whole number"


@case("07-validate-bedrooms-1e20-and-2-63", BEDROOMS, r"row 2, column 'bedrooms'")
def _(c: Ctx) -> Spec:
    table = _houses(c, mutate=_huge_bedrooms)
    return Spec(["data", "validate", table], protect=[table])


@case("07-import-bedrooms-1e20-and-2-63", r"refused 2 row\(s\)", code=0)
def _(c: Ctx) -> Spec:
    table = _houses(c, mutate=_huge_bedrooms)

    def check(text: str) -> None:
        rejected = pd.read_csv(c.tmp / "o" / "rejected.csv", dtype=str)
        assert rejected["source_row"].tolist() == ["1", "2"]
        assert set(rejected["column"]) == {"bedrooms"}
        assert len(pd.read_csv(c.tmp / "o" / "houses.csv")) == 10

    return Spec(_import(c, table), protect=[table], check=check)


@case("07-predict-bedrooms-1e20-and-2-63", BEDROOMS)
def _(c: Ctx) -> Spec:
    city2 = c.copy_city()
    table = c.table(city2, mutate=_huge_bedrooms)
    return Spec(predict_args(c.model, table, c.tmp / "p.csv"), protect=[city2])


@case("08-predict-imagery-sold-in-year-1", r"training period.*extrapolation", code=0)
def _(c: Ctx) -> Spec:
    def year_one(df: pd.DataFrame) -> None:
        df.loc[0, "sold_date"] = "0001-01-01"

    out = c.tmp / "p.csv"

    def check(text: str) -> None:
        pred = read_pred(out)
        assert len(pred) == 12 and np.isfinite(pred["predicted_price"]).all()
        assert pred["sold_date"].iloc[0] == "0001-01-01"

    argv = predict_args(c.model, _houses(c, mutate=year_one), out, "--imagery", _ortho(c))
    return Spec(argv, check=check)


# ---------------------------------------------------------------------------- 9, 11: size
def _wide_table(c: Ctx, extra: int, rows: int = 20) -> Path:
    head = pd.read_csv(c.city / "houses.csv", dtype=str).head(rows)
    lines = [",".join(["house_id", "latitude", "longitude", *(f"c{i}" for i in range(extra))])]
    ones = ",1" * extra
    for _, r in head.iterrows():
        lines.append(f"{r['house_id']},{r['latitude']},{r['longitude']}{ones}")
    path = c.tmp / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


WIDE = r"wide\.csv: 100,003 columns; houseprice reads at most 2,000"


@case("09-import-100000-columns", WIDE, timeout=60)
def _(c: Ctx) -> Spec:
    table = _wide_table(c, 100_000)
    return Spec(_import(c, table), protect=[table])


@case("09-predict-100000-columns", WIDE, timeout=60)
def _(c: Ctx) -> Spec:
    table = _wide_table(c, 100_000)
    return Spec(predict_args(c.model, table, c.tmp / "p.csv"), protect=[table])


@case("09-import-2000-columns-is-accepted", r"kept 20 of 20 rows", code=0, timeout=300)
def _(c: Ctx) -> Spec:
    table = _wide_table(c, 1_997)  # at the limit (timing is not asserted: shared CPUs)

    def check(text: str) -> None:
        assert len(pd.read_csv(c.tmp / "o" / "houses.csv").columns) == 2_000

    return Spec(_import(c, table), protect=[table], check=check)


def _short(limit: int) -> Callable[[str], None]:
    def check(text: str) -> None:
        assert len(text) < limit, f"the message has {len(text):,} characters"
        assert "more characters]" in text

    return check


def _long_header(c: Ctx) -> Path:
    """A 5 MB header line (one column name of 5 million characters), no coordinates."""
    path = c.tmp / "long.csv"
    path.write_text("house_id," + "x" * 5_000_000 + "\nA,1\n")
    return path


@case(
    "11-validate-5-mb-header-line",
    r"long\.csv: \d problem\(s\)",
    r"required column 'latitude' is missing \(columns found: house_id, xxxx",
)
def _(c: Ctx) -> Spec:
    table = _long_header(c)
    return Spec(["data", "validate", table], protect=[table], check=_short(3_000))


@case("11-import-5-mb-header-line", r"long\.csv: no coordinates")
def _(c: Ctx) -> Spec:
    table = _long_header(c)
    return Spec(_import(c, table), protect=[table], check=_short(3_000))


@case("11-validate-1-mb-cell", r"row 1, column 'bedrooms', value 'yyyy")
def _(c: Ctx) -> Spec:
    def long_cell(df: pd.DataFrame) -> None:
        df.loc[0, "bedrooms"] = "y" * 1_000_000

    table = _houses(c, mutate=long_cell)
    return Spec(["data", "validate", table], protect=[table], check=_short(5_000))


# ---------------------------------------------------------------------------- 12: CSV cells
@case("12-import-rejected-csv-is-neutralised", r"refused 1 row", code=0)
def _(c: Ctx) -> Spec:
    def evil(df: pd.DataFrame) -> None:
        df.loc[0, "house_id"] = "@SUM(1+1)"
        df.loc[0, "bedrooms"] = EVIL_ID

    def check(text: str) -> None:
        rejected = pd.read_csv(c.tmp / "o" / "rejected.csv", dtype=str)
        assert rejected["value"].tolist() == ["'" + EVIL_ID]
        assert rejected["house_id"].tolist() == ["'@SUM(1+1)"]

    return Spec(_import(c, _houses(c, mutate=evil)), check=check)


# ============================================================================ the test
@pytest.fixture(autouse=True)
def _stop_children() -> Iterator[None]:
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()


@pytest.mark.parametrize("row", CASES, ids=[c.id for c in CASES])
def test_hardening_row(
    row: Case,
    tmp_path: Path,
    tiny_city: Path,
    city_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    ctx = Ctx(tmp=work, city=tiny_city, model=city_model, small=tiny_city)
    check_row(row, ctx, monkeypatch)
