"""Contact sheet of a synthetic-city folder: tiles, label masks and evidence masks side by side.

This module owns :func:`contact_sheet` (the picture ``docs/img/synth_city_tiles.png``); it
reads only the written folder, so it works on any synthetic-city dataset.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from houseprice.artifacts import atomic_write_bytes
from houseprice.synth.city import render

CLASS_COLOURS = {
    0: (150, 130, 100), 1: (230, 40, 40), 2: (240, 160, 160), 3: (90, 90, 90), 4: (30, 30, 30),
    5: (200, 190, 120), 6: (40, 200, 240), 7: (20, 110, 20), 8: (30, 60, 200), 9: (140, 220, 110),
}  # fmt: skip


def _panel(
    root: Path,
    hid: str,
    drivers: pd.DataFrame,
    scale: int,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> np.ndarray:
    """Tile, label mask and evidence overlay of one house, enlarged, with a caption."""
    tile = np.asarray(Image.open(root / "tiles" / f"{hid}.png").convert("RGB"))
    mask = np.asarray(Image.open(root / "masks" / f"{hid}.png"))
    ev = np.asarray(Image.open(root / "truth" / "evidence" / f"{hid}.png")) > 0
    lut = np.array([CLASS_COLOURS[i] for i in range(10)], np.uint8)
    over = tile.astype(np.float32) * 0.25  # evidence keeps its colours, with a red tint
    over[ev] = tile[ev] * 0.5 + np.array([255, 40, 40]) * 0.5
    trio = np.concatenate([tile, lut[mask], over.astype(np.uint8)], axis=1)
    big = Image.fromarray(trio).resize(
        (trio.shape[1] * scale, trio.shape[0] * scale), Image.NEAREST
    )
    row = drivers.loc[drivers["house_id"] == hid].iloc[0]
    flags = {"pool": "has_pool", "water": "water_front", "park": "park_adjacent"}
    flags["highway"] = "highway_adjacent"
    tags = " ".join(k for k, c in flags.items() if bool(row[c]))
    caption = f"{hid}  lot {row['lot_area_m2']:.0f} m2  trees {row['tree_cover']:.2f}  {tags}"
    canvas = Image.new("RGB", (big.width, big.height + 14), (255, 255, 255))
    canvas.paste(big, (0, 14))
    ImageDraw.Draw(canvas).text((2, 1), caption, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _showcase(drivers: pd.DataFrame, n: int) -> list[str]:
    """``n`` house ids: one showing each visual driver first (pool, water, park, highway, most
    trees, biggest and smallest lot), then the rest in house_id order."""
    picks: list[str] = []
    showcase = [
        ("has_pool", False),
        ("water_front", False),
        ("park_adjacent", False),
        ("highway_adjacent", False),
        ("tree_cover", False),
        ("lot_area_m2", False),
        ("lot_area_m2", True),
    ]
    for col, ascending in showcase:
        order = drivers.sort_values([col, "house_id"], ascending=[ascending, True], kind="stable")
        hid = next((h for h in order["house_id"] if h not in picks), None)
        if hid is not None:
            picks.append(hid)
    picks += [h for h in drivers["house_id"] if h not in picks][: max(0, n - len(picks))]
    return picks[:n]


def contact_sheet(dataset_dir: str | Path, out_png: str | Path, n: int = 8, scale: int = 3) -> Path:
    """Save a picture of ``n`` tiles with their label and evidence masks side by side.

    Houses are picked to show each visual driver (pool, water, park, highway, big and small
    lot, tree cover) before the rest, in house_id order.
    """
    root = Path(dataset_dir)
    drivers = pd.read_csv(root / "truth" / "drivers.csv", dtype={"house_id": str})
    picks = _showcase(drivers, n)
    font = ImageFont.load_default()
    panels = [_panel(root, hid, drivers, scale, font) for hid in picks]
    cols = 2
    while len(panels) % cols:
        panels.append(np.full_like(panels[0], 255))
    padded = [np.pad(p, ((4, 4), (4, 4), (0, 0)), constant_values=255) for p in panels]
    rows = [np.concatenate(padded[i : i + cols], axis=1) for i in range(0, len(padded), cols)]
    grid = np.concatenate(rows, axis=0)
    legend = Image.new("RGB", (grid.shape[1], 18), (255, 255, 255))
    d = ImageDraw.Draw(legend)
    x = 4
    for i, name in render.MASK_CLASSES.items():
        d.rectangle([x, 4, x + 10, 14], fill=CLASS_COLOURS[i])
        d.text((x + 13, 3), name, fill=(0, 0, 0), font=font)
        x += 16 + int(d.textlength(name, font=font)) + 8
    sheet = np.concatenate([grid, np.asarray(legend)], axis=0)
    buf = io.BytesIO()
    Image.fromarray(sheet).save(buf, format="PNG")
    return atomic_write_bytes(out_png, buf.getvalue())


__all__ = ["CLASS_COLOURS", "contact_sheet"]
