"""Benchmark: cutting per-house tiles from a large orthophoto (COG) — speed and memory.

Run: python benchmarks/tile_cutting.py [--houses 10000] [--sizes 8000,16000] [--res 0.5]
For each raster size (pixels per side at ``--res`` m/px) it writes a synthetic orthophoto in
UTM 15N (EPSG:32615): texture noise + a 40 m block grid + 200 m roads, as a tiled (512 px)
JPEG COG with overviews, places ``--houses`` random houses over it, and cuts every house's
tile with ``houseprice.data.houses.tilefiles.cut_tiles`` (70 m, 64 px PNG tiles) in a fresh
subprocess, so its peak RSS (``VmHWM``; psutil sampling too when installed) measures the
cutting alone. Writes benchmarks/results/tile_cutting.{json,md}.
Goal: >= 500 tiles/s on 2 cores, peak memory flat in raster size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
E0, N0 = 440_000.0, 4_650_000.0  # UTM 15N origin of the synthetic raster
TILE_METERS, TILE_PX = 70.0, 64


def write_cog(path: Path, size: int, res: float, seed: int = 0) -> float:
    """Write the synthetic orthophoto as a COG; return seconds taken."""
    import rasterio
    import rasterio.shutil
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".strip.tif")
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32615", "transform": from_origin(E0, N0, res, res), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(tmp, "w", **profile) as dst:
        for r in range(0, size, 512):
            h = min(512, size - r)
            yy, xx = np.mgrid[r : r + h, 0:size]
            xm, ym = xx * res, yy * res
            base = (((xm // 40 + ym // 40) % 2) * 50 + 70).astype(np.int16)
            road = ((xm % 200) < 8) | ((ym % 200) < 8)
            img = np.stack([base, base + 30, base - 10]).astype(np.int16)
            img[:, road] = 150
            img += rng.integers(0, 40, img.shape, dtype=np.int16)
            dst.write(np.clip(img, 0, 255).astype(np.uint8), window=Window(0, r, size, h))
    rasterio.shutil.copy(
        tmp, path, driver="COG", compress="JPEG", quality=85, blocksize=512,
        overview_resampling="average",
    )  # fmt: skip
    tmp.unlink()
    return time.perf_counter() - t0


def houses(n: int, size: int, res: float, seed: int = 1) -> pd.DataFrame:
    from pyproj import Transformer

    rng = np.random.default_rng(seed)
    extent = size * res
    x = E0 + rng.uniform(TILE_METERS, extent - TILE_METERS, n)
    y = N0 - rng.uniform(TILE_METERS, extent - TILE_METERS, n)
    lon, lat = Transformer.from_crs("EPSG:32615", "EPSG:4326", always_xy=True).transform(x, y)
    return pd.DataFrame(
        {"house_id": [f"H{i:05d}" for i in range(n)], "latitude": lat, "longitude": lon}
    )


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (Linux; ru_maxrss survives exec, so it would include
    the parent's peak), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cut(cog: str, table: str, out: str) -> None:
    """Child process: cut all tiles, print JSON with timings and peak memory."""
    from houseprice.data.houses.imagery import OrthophotoTiles
    from houseprice.data.houses.tilefiles import cut_tiles

    peak = {"rss": 0}
    stop = threading.Event()

    def sample() -> None:
        try:
            import psutil
        except ImportError:
            return
        proc = psutil.Process()
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], proc.memory_info().rss)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    recs = pd.read_csv(table)
    rss_start = peak_rss_mb()
    with OrthophotoTiles([cog], tile_meters=TILE_METERS) as ortho:
        t0 = time.perf_counter()
        batch = ortho.read(recs.iloc[:2000], TILE_PX, warn=False)  # in-memory read only
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        files = cut_tiles(recs, ortho, Path(out), tile_meters=TILE_METERS, tile_px=TILE_PX)
        t_cut = time.perf_counter() - t0
    stop.set()
    print(
        json.dumps(
            {
                "tiles": sum(v is not None for v in files.images),
                "houses": len(recs),
                "cut_seconds": t_cut,
                "tiles_per_s": len(recs) / t_cut,
                "read_only_tiles_per_s": 2000 / t_read,
                "read_ok": int(batch.ok.sum()),
                "peak_rss_mb_after_imports": rss_start,
                "peak_rss_mb": peak_rss_mb(),
                "psutil_peak_rss_mb": peak["rss"] / 2**20 or None,
            }
        )
    )


def run(n: int, sizes: list[int], res: float) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tilebench-") as tmpd:
        tmp = Path(tmpd)
        for size in sizes:
            cog = tmp / f"ortho_{size}.tif"
            gen_s = write_cog(cog, size, res)
            table = tmp / f"houses_{size}.csv"
            houses(n, size, res).to_csv(table, index=False)
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            out = subprocess.run(
                [sys.executable, __file__, "--_cut", str(cog), str(table), str(tmp / f"t{size}")],
                check=True, capture_output=True, text=True, env=env,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(
                raster_px=size, raster_km=size * res / 1000, res_m=res,
                cog_mb=cog.stat().st_size / 2**20, raw_mb=3 * size * size / 2**20,
                generate_seconds=gen_s,
            )  # fmt: skip
            rows.append(r)
            print(json.dumps(r))
    return rows


def write_results(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    env = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "command": "python benchmarks/tile_cutting.py " + " ".join(sys.argv[1:]),
    }
    import rasterio

    env["gdal"] = rasterio.__gdal_version__
    env["rasterio"] = rasterio.__version__
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tile_cutting.json").write_text(
        json.dumps({"env": env, "runs": rows}, indent=2) + "\n"
    )
    lines = [
        "# Tile cutting from a COG orthophoto",
        "",
        f"{args.houses:,} houses, {TILE_METERS:g} m / {TILE_PX} px PNG tiles cut with "
        "`cut_tiles` (one process, 2 worker threads), synthetic JPEG COG (512 px blocks, "
        f"overviews) in EPSG:32615 at {args.res} m/px. {env['cpus']} CPUs shared with other work "
        f"(1-min load {env['load_average_1min']:.1f}); GDAL {env['gdal']}.",
        "",
        "| raster | COG size (raw) | tiles cut | tiles/s (cut + PNG, 2 threads) "
        "| tiles/s (read only, 1 thread) | peak RSS (after imports) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['raster_px']:,}² px ({r['raster_km']:g} km)² | {r['cog_mb']:.0f} MiB "
            f"({r['raw_mb']:.0f} MiB) | {r['tiles']:,} | {r['tiles_per_s']:.0f} | "
            f"{r['read_only_tiles_per_s']:.0f} | {r['peak_rss_mb']:.0f} MiB "
            f"({r['peak_rss_mb_after_imports']:.0f} MiB) |"
        )
    lines += ["", f"Command: `{env['command']}`", ""]
    (RESULTS / "tile_cutting.md").write_text("\n".join(lines))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--_cut":
        _cut(*sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--houses", type=int, default=10_000)
    p.add_argument("--sizes", default="8000,16000", help="raster sizes (pixels per side)")
    p.add_argument("--res", type=float, default=0.5, help="raster resolution (m/px)")
    args = p.parse_args()
    rows = run(args.houses, [int(s) for s in args.sizes.split(",")], args.res)
    write_results(rows, args)


if __name__ == "__main__":
    main()
