"""Benchmark: size, load time, memory and popup time of the offline valuation map at city scale.

Run: python benchmarks/map_size.py [--houses 2000 20000 100000] [--pool 2000] [--repeat 3]
Generates a pool of synthetic textured tiles (grass, road, roof, trees, sometimes a pool) and
Gaussian heatmaps, written as pixel-aligned overlays with ``save_overlay_png``; house ``i``
uses pool image ``i % pool`` (so 2,000 houses have unique images, larger maps share them: the
thumbnails are deduplicated per file, which only affects the image bytes, reported apart).
Every house has money contributions (``base_price`` + ``contrib_*``). For each size the map
is rendered with ``render_valuation_map`` defaults (a single file up to 5,000 houses, a folder
of spatial chunks above; 2,000 houses are also rendered as a folder for comparison) and
opened from disk in headless Chromium (Debian's chromium through Playwright) ``--repeat``
times, each in a fresh context. Measured: page + data bytes per house (thumbnail images
excluded), time until the first markers or cluster/overview rings are in the DOM, time until
house markers show after jumping to street level (zoom 18) on a house, time from clicking
that house to its popup with both thumbnails (tile, heatmap) decoded, the JS heap (CDP
``Runtime.getHeapUsage``) after all that, and any network request or console error.
Writes benchmarks/results/map_size.{json,md}. ``--imagery`` draws a synthetic 1 m orthophoto of
the whole city under every map (houseprice.maps.basemap: one embedded image, or a tile pyramid
in a folder map) and writes benchmarks/results/map_size_imagery.{json,md} instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from houseprice.artifacts import atomic_write_json, atomic_write_text
from houseprice.data.houses.imagery import open_raster
from houseprice.maps import render_valuation_map, save_overlay_png
from houseprice.maps.browser import find_chromium, headless_chromium, open_page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "maps"))
from map_synthetic import with_contributions

RESULTS = Path(__file__).resolve().parent / "results"
TILE_METERS = 60.0
CITY_CENTRE = (42.0308, -93.6319)  # Ames, Iowa
CITY_HALF_WIDTH_DEG = 0.03  # ~5 km across
GOALS = {"kib_per_house": 1.5, "first_markers_ms": 2000, "heap_mb": 300, "popup_ms": 200}

# Records when the first marker or cluster icon enters the DOM (performance.now(), ms).
_MARKER_OBSERVER = """
(() => {
  const seen = () => document.querySelector('path.hp-marker, .hp-cluster-icon');
  const observer = new MutationObserver(() => {
    if (window.__hpMarkersAt === undefined && seen()) {
      window.__hpMarkersAt = performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true });
})();
"""
_LOAD_EVENT_MS = "performance.getEntriesByType('navigation')[0].loadEventEnd"
_POPUP_READY = """() => {
  const images = [...document.querySelectorAll('.leaflet-popup-content img')];
  return images.length === 2 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""
# Jump to street level on a house (lat, lon), no animation; returns performance.now(). The
# Leaflet map: a folder map exposes it, a single-file map has folium's global map_<id>.
_JUMP = """([lat, lon]) => {
  const map = window.houseprice.chunked ? window.houseprice.chunked.map
    : window[Object.keys(window).find((k) => /^map_[0-9a-f]+$/.test(k))];
  map.setView([lat, lon], 18, { animate: false });
  return performance.now();
}"""
# Page coordinates of the house marker nearest the centre of the view.
_CENTRE_MARKER = """() => {
  const paths = [...document.querySelectorAll('path.hp-marker')];
  const cx = innerWidth / 2, cy = innerHeight / 2;
  let best = null;
  for (const p of paths) {
    const r = p.getBoundingClientRect();
    if (r.width === 0) continue;
    const x = r.left + r.width / 2, y = r.top + r.height / 2, d = Math.hypot(x - cx, y - cy);
    if (!best || d < best.d) best = { d, x, y };
  }
  return best;
}"""


def synthetic_tile(rng: np.random.Generator, px: int) -> np.ndarray:
    """(px, px, 3) uint8 aerial-looking tile with texture (so JPEG sizes are realistic)."""
    tile = np.empty((px, px, 3), dtype=np.float64)
    tile[:] = rng.normal((78, 118, 64), 6, size=3)  # grass
    tile[: px // 7] = (96, 96, 100)  # road
    tile[px // 14, np.arange(px) % 24 < 12] = (230, 230, 230)  # dashed centre line
    lo, hi = int(px * rng.uniform(0.3, 0.38)), int(px * rng.uniform(0.62, 0.7))
    tile[lo:hi, lo:hi] = rng.integers(110, 210, size=3)  # roof
    tile[lo:hi, (lo + hi) // 2 - 1 : (lo + hi) // 2 + 1] *= 0.8  # ridge
    yy, xx = np.mgrid[0:px, 0:px]
    for _ in range(rng.integers(2, 7)):  # trees
        cy, cx = rng.integers(px // 6, px, size=2)
        radius = rng.integers(4, max(px // 10, 5))
        tile[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = (40, 80, 40)
    if rng.random() < 0.25:  # pool
        tile[hi + 4 : hi + px // 8, lo : lo + px // 6] = (60, 160, 210)
    texture = ndimage.gaussian_filter(rng.normal(0, 14, size=(px, px, 3)), sigma=(0.8, 0.8, 0))
    return np.clip(tile + texture, 0, 255).astype(np.uint8)


def synthetic_heatmap(rng: np.random.Generator, px: int) -> np.ndarray:
    """(px, px) relevance in [0, 1]: a blob near the centre plus a weaker one elsewhere."""
    yy, xx = np.mgrid[0:px, 0:px].astype(np.float64)
    heat = np.zeros((px, px))
    for weight, (cy, cx), sigma in (
        (1.0, rng.normal(px / 2, px / 16, size=2), px / 7),
        (0.5, rng.uniform(0, px, size=2), px / 10),
    ):
        heat += weight * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return heat / heat.max()


def image_pool(out_dir: Path, size: int, tile_px: int, seed: int, progress: bool) -> list:
    """``size`` synthetic (tile, heatmap overlay) file pairs."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in tqdm(range(size), desc="synthetic tiles", disable=not progress):
        tile = synthetic_tile(rng, tile_px)
        image = out_dir / f"tile_{i:05d}.png"
        Image.fromarray(tile).save(image, compress_level=1)
        heatmap = save_overlay_png(
            tile, synthetic_heatmap(rng, tile_px), out_dir / f"heat_{i:05d}.png", colorbar=False
        )
        pairs.append((str(image), str(heatmap)))
    return pairs


def synthetic_orthophoto(path: Path, seed: int, metres_per_px: float = 1.0) -> Path:
    """A textured RGB GeoTIFF (UTM 15N, overviews) over the whole city, written in strips."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    to_utm = Transformer.from_crs(4326, 32615, always_xy=True)
    lat, lon = CITY_CENTRE
    half = CITY_HALF_WIDTH_DEG * 1.05
    x0, y0 = to_utm.transform(lon - half, lat - half)
    x1, y1 = to_utm.transform(lon + half, lat + half)
    width, height = int((x1 - x0) / metres_per_px), int((y1 - y0) / metres_per_px)
    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32615", "transform": from_origin(x0, y1, metres_per_px, metres_per_px),
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, height, 512):
            rows = min(512, height - top)
            yy, xx = np.mgrid[top : top + rows, 0:width]
            base = np.stack([78 + 20 * np.sin(xx / 37.0), 118 + 15 * np.cos(yy / 53.0),
                             64 + 0 * xx], axis=0)  # fmt: skip
            block = base + rng.normal(0, 12, size=(3, rows, width))
            block[:, (yy % 120) < 8] = 96  # streets
            block[:, (xx % 150) < 8] = 96
            window = rasterio.windows.Window(0, top, width, rows)
            dst.write(np.clip(block, 0, 255).astype(np.uint8), window=window)
        dst.build_overviews([2, 4, 8, 16, 32])
    return path


def synthetic_valuations(n_houses: int, pool: list, seed: int) -> pd.DataFrame:
    """A valuations table with contributions for ``n_houses`` random houses in one city."""
    rng = np.random.default_rng(seed)
    price = np.exp(rng.normal(np.log(230_000), 0.35, size=n_houses))
    predicted = price * np.exp(rng.normal(0.0, 0.12, size=n_houses))
    price[rng.random(n_houses) < 0.1] = np.nan  # predicted only
    frame = pd.DataFrame(
        {
            "house_id": [f"H{i:06d}" for i in range(n_houses)],
            "latitude": CITY_CENTRE[0] + rng.uniform(-1, 1, n_houses) * CITY_HALF_WIDTH_DEG,
            "longitude": CITY_CENTRE[1] + rng.uniform(-1, 1, n_houses) * CITY_HALF_WIDTH_DEG,
            "predicted_price": predicted,
            "price": price,
            "image": [pool[i % len(pool)][0] for i in range(n_houses)],
            "heatmap": [pool[i % len(pool)][1] for i in range(n_houses)],
            "used_visual": True,
            "bedrooms": rng.integers(1, 6, n_houses),
            "bathrooms": rng.integers(2, 8, n_houses) / 2,
            "area_sqft": np.round(rng.uniform(700, 4200, n_houses)),
            "sold_date": pd.Timestamp("2018-01-01")
            + pd.to_timedelta(rng.integers(0, 1800, n_houses), unit="D"),
        }
    )
    return with_contributions(frame, seed=seed)


def _page_sizes(page: Path) -> dict[str, int]:
    """Bytes of the page + data (images excluded) and of the thumbnail images."""
    if page.name != "index.html":  # single file: the thumbnails are inlined data: URIs
        text = page.read_text(encoding="utf-8")
        found = re.findall(r"data:image/(?:jpeg|png|webp);base64,[^\"]*", text)
        images = sum(len(m) for m in found)
        return {"data_bytes": len(text.encode("utf-8")) - images, "image_bytes": images}
    files = [p for p in page.parent.rglob("*") if p.is_file()]
    imagery = page.parent / "imagery"  # the orthophoto's tiles (--imagery) are images too
    images = sum(p.stat().st_size for p in files if p.parent.name == "img" or imagery in p.parents)
    return {"data_bytes": sum(p.stat().st_size for p in files) - images, "image_bytes": images}


def measure_page(page_path: Path, house: tuple[float, float], repeat: int) -> dict[str, Any]:
    """Open the map ``repeat`` times: first markers, street-level markers, popup, heap."""
    keys = ("load_event_ms", "first_markers_ms", "street_markers_ms", "popup_ms", "heap_mb")
    runs: dict[str, list[float]] = {k: [] for k in keys}
    problems: list[str] = []
    with headless_chromium() as browser:
        version = browser.version
        for _ in range(repeat):
            page, log = open_page(
                browser,
                page_path,
                viewport=(1280, 800),
                init_script=_MARKER_OBSERVER,
                timeout_ms=180_000,
            )
            try:
                page.wait_for_function("window.__hpMarkersAt !== undefined")
                runs["load_event_ms"].append(float(page.evaluate(_LOAD_EVENT_MS)))
                runs["first_markers_ms"].append(float(page.evaluate("window.__hpMarkersAt")))
                page.wait_for_timeout(800)  # let the fit-view animation settle
                start = page.evaluate(_JUMP, list(house))
                page.wait_for_function(f"({_CENTRE_MARKER})() !== null", polling=20)
                runs["street_markers_ms"].append(float(page.evaluate("performance.now()")) - start)
                page.wait_for_timeout(300)
                point = page.evaluate(_CENTRE_MARKER)
                start = float(page.evaluate("performance.now()"))
                page.mouse.click(point["x"], point["y"])
                page.wait_for_function(_POPUP_READY, polling=5)
                runs["popup_ms"].append(float(page.evaluate("performance.now()")) - start)
                cdp = page.context.new_cdp_session(page)
                heap = cdp.send("Runtime.getHeapUsage")
                runs["heap_mb"].append(float(heap["usedSize"]) / 2**20)
            finally:
                page.context.close()
            problems.extend(log.problems())
    summary: dict[str, Any] = {
        k: {"median": statistics.median(v), "runs": v} for k, v in runs.items()
    }
    summary["chromium"] = version
    summary["problems"] = sorted(set(problems))
    return summary


def benchmark_size(
    n_houses: int,
    pool: list,
    root: Path,
    *,
    thumb_px: int,
    repeat: int,
    seed: int,
    folder: bool,
    progress: bool,
    imagery: Path | None = None,
) -> dict[str, Any]:
    """Render and measure one map of ``n_houses`` (``folder`` forces a folder map)."""
    frame = synthetic_valuations(n_houses, pool, seed)
    t0 = time.perf_counter()
    page = render_valuation_map(
        frame,
        root / f"map_{n_houses}{'_folder' if folder else ''}.html",
        tile_meters=TILE_METERS,
        title=f"{n_houses:,} synthetic houses",
        thumb_px=thumb_px,
        progress=progress,
        folder_threshold=1 if folder else 5000,
        overwrite=True,
        imagery=[open_raster(imagery)] if imagery is not None else None,
    )
    render_seconds = time.perf_counter() - t0
    sizes = _page_sizes(page)
    house = (float(frame["latitude"].iloc[0]), float(frame["longitude"].iloc[0]))
    return {
        "n_houses": n_houses,
        "layout": "folder" if page.name == "index.html" else "single file",
        **sizes,
        "kib_per_house": sizes["data_bytes"] / 1024 / n_houses,
        "image_kib_per_unique_house": sizes["image_bytes"] / 1024 / min(n_houses, len(pool)),
        "render_seconds": render_seconds,
        "load": measure_page(page, house, repeat),
    }


def benchmark_map_size(
    sizes: tuple[int, ...] = (2000, 20_000, 100_000),
    *,
    pool_size: int = 2000,
    tile_px: int = 224,
    thumb_px: int = 96,
    repeat: int = 3,
    seed: int = 0,
    work_dir: Path | None = None,
    progress: bool = True,
    imagery: bool = False,
) -> dict[str, Any]:
    """Measure every map size (plus the smallest as a folder) in one run; ``imagery``: with a
    synthetic orthophoto of the city under every map."""
    if find_chromium() is None:
        raise SystemExit("chromium is not installed: run `bash .ci/install_browser.sh`")
    with tempfile.TemporaryDirectory(prefix="hp_map_bench_") as tmp:
        root = work_dir or Path(tmp)
        t0 = time.perf_counter()
        pool = image_pool(root / "tiles", pool_size, tile_px, seed, progress)
        pool_seconds = time.perf_counter() - t0
        ortho = synthetic_orthophoto(root / "ortho.tif", seed) if imagery else None
        load_average = os.getloadavg()[0]  # the machine is shared: context for the timings
        results = []
        for n, folder in [(sizes[0], True), *((n, False) for n in sizes)]:
            results.append(
                benchmark_size(
                    n,
                    pool,
                    root,
                    thumb_px=thumb_px,
                    repeat=repeat,
                    seed=seed,
                    folder=folder,
                    progress=progress,
                    imagery=ortho,
                )
            )
    largest = max(results, key=lambda r: r["n_houses"])
    return {
        # the largest map's figures at the top level (read by houseprice.jobs.docs)
        "n_houses": largest["n_houses"],
        "kib_per_house": largest["kib_per_house"],
        "pool_size": pool_size,
        "tile_px": tile_px,
        "thumb_px": thumb_px,
        "tile_meters": TILE_METERS,
        "synthetic_pool_seconds": pool_seconds,
        "imagery": "synthetic 1 m orthophoto of the whole city" if imagery else None,
        "load_average_1m_before": load_average,
        "goals": GOALS,
        "results": sorted(results, key=lambda r: (r["n_houses"], r["layout"] == "folder")),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    rows = []
    for r in result["results"]:
        load = r["load"]

        def ms(key: str, load: dict[str, Any] = load) -> str:
            runs = ", ".join(f"{v:.0f}" for v in load[key]["runs"])
            return f"{load[key]['median']:.0f} ({runs})"

        problems = "; ".join(load["problems"]) if load["problems"] else "none"
        rows.append(
            f"| {r['n_houses']:,} | {r['layout']} | {r['kib_per_house']:.2f} | "
            f"{r['data_bytes'] / 2**20:.1f} / {r['image_bytes'] / 2**20:.1f} | "
            f"{r['render_seconds']:.0f} | {ms('first_markers_ms')} | {ms('street_markers_ms')} | "
            f"{ms('popup_ms')} | {load['heap_mb']['median']:.0f} | {problems} |"
        )
    goals = result["goals"]
    chromium = result["results"][0]["load"]["chromium"]
    return "\n".join(
        [
            "# Offline valuation map: size, load time, memory and popup time",
            "",
            f"Synthetic houses in one ~5 km city with money contributions; {result['pool_size']:,}"
            f" distinct {result['tile_px']} px tiles + heatmaps shared round-robin, "
            f"{result['thumb_px']} px thumbnails; headless Chromium {chromium}, "
            f"{result['machine']['cpus']} CPUs (shared; 1-min load average "
            f"{result['load_average_1m_before']:.1f} at the start). Times in ms: median "
            "(runs), each run a fresh page. All figures from one run."
            + (
                f" Under every map: a {result['imagery']} (an embedded image in a single "
                "file, a tile pyramid in a folder map; its bytes count as images)."
                if result.get("imagery")
                else ""
            ),
            "",
            "| houses | layout | KiB/house (page + data, no images) | MiB data / images | "
            "render s | first markers | street-level markers | popup + heatmap | JS heap MB | "
            "network / console errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Goals: ≤ {goals['kib_per_house']} KiB/house, first markers ≤ "
            f"{goals['first_markers_ms']} ms and heap ≤ {goals['heap_mb']} MB at 100k, popup ≤ "
            f"{goals['popup_ms']} ms. *First markers*: the first marker, cluster or overview "
            "ring in the DOM (a folder map starts with one ring per group of chunks). "
            "*Street-level markers*: jump to zoom 18 on a house until its marker is drawn (a "
            "folder map loads the chunks in view then). *Popup + heatmap*: click → popup with "
            "both thumbnails decoded. *JS heap*: CDP Runtime.getHeapUsage after all that.",
            "",
            "Command: `python benchmarks/map_size.py"
            + (" --imagery --houses 2000 100000`" if result.get("imagery") else "`"),
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--houses", type=int, nargs="+", default=[2000, 20_000, 100_000])
    ap.add_argument("--pool", type=int, default=2000, help="distinct tiles (shared round-robin)")
    ap.add_argument("--tile-px", type=int, default=224)
    ap.add_argument("--thumb-px", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the tiles and maps in this folder instead of a temp folder",
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--imagery", action="store_true", help="a synthetic orthophoto under every map")
    args = ap.parse_args()
    result = benchmark_map_size(
        tuple(args.houses),
        pool_size=args.pool,
        tile_px=args.tile_px,
        thumb_px=args.thumb_px,
        repeat=args.repeat,
        seed=args.seed,
        work_dir=args.keep,
        progress=not args.no_progress,
        imagery=args.imagery,
    )
    name = "map_size_imagery" if args.imagery else "map_size"
    atomic_write_json(RESULTS / f"{name}.json", result)
    markdown = to_markdown(result)
    atomic_write_text(RESULTS / f"{name}.md", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
