"""Benchmark: size and load time of the offline valuation map for 2,000 houses.

Run: python benchmarks/map_size.py [--houses 2000] [--tile-px 224] [--thumb-px 96] [--repeat 3]
Generates synthetic textured tiles (grass, road, roof, trees, sometimes a pool) and centred
Gaussian heatmaps, writes pixel-aligned overlays with ``save_overlay_png``, renders the map
with ``render_valuation_map`` and opens it from disk in headless Chromium (Debian's chromium
through Playwright) ``--repeat`` times, each in a fresh browser context. Reports the HTML size,
the time to the ``load`` event, the time until markers/clusters are in the DOM, the time to
draw every heatmap overlay at the fitted view, and any network request or console error.
Writes benchmarks/results/map_size.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
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
from houseprice.maps import render_valuation_map, save_overlay_png
from houseprice.maps.browser import find_chromium, headless_chromium, open_page

RESULTS = Path(__file__).resolve().parent / "results"
TILE_METERS = 60.0
CITY_CENTRE = (42.0308, -93.6319)  # Ames, Iowa
CITY_HALF_WIDTH_DEG = 0.03  # ~5 km across

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
_HEATMAPS_READY = """(n) => {
  const images = [...document.querySelectorAll('img.hp-heatmap')];
  return images.length === n && images.every((img) => img.complete && img.naturalWidth > 0);
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


def synthetic_valuations(
    out_dir: Path, n_houses: int, tile_px: int, seed: int, progress: bool = True
) -> pd.DataFrame:
    """Tiles, overlays and a valuations table for ``n_houses`` random houses in one city."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    price = np.exp(rng.normal(np.log(230_000), 0.35, size=n_houses))
    predicted = price * np.exp(rng.normal(0.0, 0.12, size=n_houses))
    price[rng.random(n_houses) < 0.1] = np.nan  # predicted only
    rows = []
    for i in tqdm(range(n_houses), desc="synthetic tiles", disable=not progress):
        tile = synthetic_tile(rng, tile_px)
        image = out_dir / f"tile_{i:05d}.png"
        Image.fromarray(tile).save(image, compress_level=1)
        heatmap = save_overlay_png(
            tile, synthetic_heatmap(rng, tile_px), out_dir / f"heat_{i:05d}.png", colorbar=False
        )
        rows.append(
            {
                "house_id": f"H{i:05d}",
                "latitude": CITY_CENTRE[0] + rng.uniform(-1, 1) * CITY_HALF_WIDTH_DEG,
                "longitude": CITY_CENTRE[1] + rng.uniform(-1, 1) * CITY_HALF_WIDTH_DEG,
                "predicted_price": float(predicted[i]),
                "price": float(price[i]),
                "image": str(image),
                "heatmap": str(heatmap),
                "used_visual": True,
                "bedrooms": int(rng.integers(1, 6)),
                "bathrooms": float(rng.integers(2, 8)) / 2,
                "area_sqft": float(np.round(rng.uniform(700, 4200))),
                "sold_date": pd.Timestamp("2018-01-01")
                + pd.Timedelta(days=int(rng.integers(0, 1800))),
            }
        )
    return pd.DataFrame(rows)


def measure_load(html_path: Path, n_houses: int, repeat: int) -> dict[str, Any]:
    """Open the map ``repeat`` times in headless Chromium; timings in ms (median and runs)."""
    runs: dict[str, list[float]] = {
        "load_event_ms": [],
        "markers_in_dom_ms": [],
        "heatmap_layer_ms": [],
        "js_heap_mb": [],
    }
    problems: list[str] = []
    load_average = os.getloadavg()[0]  # the machine is shared: context for the timings
    with headless_chromium() as browser:
        version = browser.version
        for _ in range(repeat):
            page, log = open_page(
                browser,
                html_path,
                viewport=(1280, 800),
                init_script=_MARKER_OBSERVER,
                timeout_ms=120_000,
            )
            try:
                page.wait_for_function("window.__hpMarkersAt !== undefined")
                runs["load_event_ms"].append(float(page.evaluate(_LOAD_EVENT_MS)))
                runs["markers_in_dom_ms"].append(float(page.evaluate("window.__hpMarkersAt")))
                page.wait_for_timeout(500)  # let the fit-view animation settle
                start = float(page.evaluate("performance.now()"))
                page.get_by_label("relevance heatmaps").check()
                page.wait_for_function(f"({_HEATMAPS_READY})({n_houses})", polling=50)
                runs["heatmap_layer_ms"].append(float(page.evaluate("performance.now()")) - start)
                heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
                runs["js_heap_mb"].append(float(heap) / 2**20)
            finally:
                page.context.close()
            problems.extend(log.problems())
    summary: dict[str, Any] = {
        k: {"median": statistics.median(v), "runs": v} for k, v in runs.items()
    }
    summary["chromium"] = version
    summary["load_average_1m_before"] = load_average
    summary["problems"] = sorted(set(problems))
    return summary


def benchmark_map_size(
    n_houses: int = 2000,
    *,
    tile_px: int = 224,
    thumb_px: int = 96,
    repeat: int = 3,
    seed: int = 0,
    work_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the map for ``n_houses`` synthetic houses and measure its size and load time."""
    if find_chromium() is None:
        raise SystemExit("chromium is not installed: run `bash .ci/install_browser.sh`")
    with tempfile.TemporaryDirectory(prefix="hp_map_bench_") as tmp:
        root = work_dir or Path(tmp)
        t0 = time.perf_counter()
        frame = synthetic_valuations(root / "tiles", n_houses, tile_px, seed, progress)
        data_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        html_path = render_valuation_map(
            frame,
            root / "map.html",
            tile_meters=TILE_METERS,
            title=f"{n_houses:,} synthetic houses",
            thumb_px=thumb_px,
            progress=progress,
        )
        render_seconds = time.perf_counter() - t0
        html_bytes = html_path.stat().st_size
        load = measure_load(html_path, n_houses, repeat)
    return {
        "n_houses": n_houses,
        "tile_px": tile_px,
        "thumb_px": thumb_px,
        "tile_meters": TILE_METERS,
        "html_bytes": html_bytes,
        "html_mib": html_bytes / 2**20,
        "kib_per_house": html_bytes / 1024 / n_houses,
        "render_seconds": render_seconds,
        "synthetic_data_seconds": data_seconds,
        "load": load,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    load = result["load"]

    def ms(key: str) -> str:
        runs = ", ".join(f"{v:.0f}" for v in load[key]["runs"])
        return f"{load[key]['median']:.0f} ms (runs: {runs})"

    problems = "; ".join(load["problems"]) if load["problems"] else "none"
    return "\n".join(
        [
            "# Offline valuation map: size and load time",
            "",
            f"{result['n_houses']:,} synthetic houses, {result['tile_px']} px tiles, "
            f"{result['thumb_px']} px thumbnails (tile + heatmap per house), headless Chromium "
            f"{load['chromium']}, {result['machine']['cpus']} CPUs (shared; 1-min load average "
            f"{load['load_average_1m_before']:.1f} when the browser runs started).",
            "",
            "| measure | value |",
            "|---|---|",
            f"| HTML size | {result['html_mib']:.2f} MiB "
            f"({result['kib_per_house']:.1f} KiB/house) |",
            f"| render (Python, thumbnails + HTML) | {result['render_seconds']:.1f} s |",
            f"| time to `load` event | {ms('load_event_ms')} |",
            f"| time until markers/clusters are in the DOM | {ms('markers_in_dom_ms')} |",
            f"| tick heatmap layer → all overlays drawn | {ms('heatmap_layer_ms')} |",
            f"| JS heap after heatmaps | {load['js_heap_mb']['median']:.0f} MB |",
            f"| network requests / console errors | {problems} |",
            "",
            "Command: `python benchmarks/map_size.py`",
            "",
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--houses", type=int, default=2000)
    ap.add_argument("--tile-px", type=int, default=224)
    ap.add_argument("--thumb-px", type=int, default=96)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the tiles and map.html in this folder instead of a temp folder",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    result = benchmark_map_size(
        args.houses,
        tile_px=args.tile_px,
        thumb_px=args.thumb_px,
        repeat=args.repeat,
        seed=args.seed,
        work_dir=args.keep,
        progress=not args.no_progress,
    )
    atomic_write_json(RESULTS / "map_size.json", result)
    markdown = to_markdown(result)
    atomic_write_text(RESULTS / "map_size.md", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
