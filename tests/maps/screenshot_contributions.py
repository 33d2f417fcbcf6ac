"""Write docs/img/map_contributions.png: a popup with its contribution chart, area layer on.

Run: python tests/maps/screenshot_contributions.py [--out docs/img/map_contributions.png]
1,200 synthetic houses (tests/maps/map_synthetic.py) over ~2 km with 96 px tiles and
heatmaps, not clustered, 200 m area cells with the "area: image contribution" layer ticked,
one house clicked.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from map_synthetic import city_valuations, synthetic_heatmap, synthetic_tile
from PIL import Image

from houseprice.maps import render_valuation_map, save_overlay_png
from houseprice.maps.browser import headless_chromium, open_page

_REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=_REPO / "docs" / "img" / "map_contributions.png")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, heatmaps = [], []
        for i in range(40):  # 40 distinct tiles, shared round-robin
            tile = synthetic_tile(rng, 96)
            Image.fromarray(tile).save(root / f"t{i}.png")
            images.append(str(root / f"t{i}.png"))
            heat = save_overlay_png(tile, synthetic_heatmap(96), root / f"h{i}.png", colorbar=False)
            heatmaps.append(str(heat))
        frame = city_valuations(1200, seed=5, image=Path(images[0]))
        centre = frame[["latitude", "longitude"]].mean()
        frame["latitude"] = centre["latitude"] + (frame["latitude"] - centre["latitude"]) / 3
        frame["longitude"] = centre["longitude"] + (frame["longitude"] - centre["longitude"]) / 3
        frame["image"] = [images[i % 40] for i in range(len(frame))]
        frame["heatmap"] = [heatmaps[i % 40] for i in range(len(frame))]
        frame["used_visual"] = True
        page_path = render_valuation_map(
            frame,
            root / "map.html",
            tile_meters=60.0,
            title="Ames (synthetic): valuations",
            cluster_threshold=5000,
            area_cell_meters=200.0,
        )
        nearest = int(
            np.argmin(
                (frame["latitude"] - centre["latitude"] + 0.002) ** 2
                + (frame["longitude"] - centre["longitude"] + 0.003) ** 2
            )
        )
        lat, lon = frame.loc[nearest, ["latitude", "longitude"]]
        with headless_chromium() as browser:
            page, log = open_page(browser, page_path, viewport=(1280, 820))
            try:
                page.wait_for_selector(".hp-cluster-icon, path.hp-marker")
                page.get_by_label("area: image contribution").check()
                page.wait_for_timeout(800)
                map_name = page.evaluate("Object.keys(window).find((k) => k.startsWith('map_'))")
                page.evaluate(
                    f"window['{map_name}'].setView([{lat}, {lon}], 16, {{animate: false}})"
                )
                page.wait_for_timeout(800)
                point = page.evaluate(
                    f"window['{map_name}'].latLngToContainerPoint([{lat}, {lon}])"
                )
                page.mouse.click(point["x"], point["y"])
                page.wait_for_selector(".leaflet-popup .hp-contrib")
                page.wait_for_timeout(900)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
            finally:
                page.context.close()
            assert log.problems() == [], log.problems()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
