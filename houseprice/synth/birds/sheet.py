"""Contact sheet of a birds folder (synthetic or real CUB): first image per class, box and mask.

This module owns :func:`contact_sheet` (the picture ``docs/img/synth_birds.png``); it reads the
folder through :func:`houseprice.data.cub.read_cub_index`.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from houseprice.artifacts import atomic_write_bytes
from houseprice.errors import UserInputError


def _tile(
    row: Any, label: str, scale: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> Image.Image:
    """One image enlarged ``scale`` times, mask outline (cyan), box (red) and caption below."""
    with Image.open(row.path) as im:
        img = im.convert("RGB")
    w, h = img.size
    tile = img.resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    if row.seg_path is not None:
        with Image.open(row.seg_path) as sm:
            seg = np.asarray(sm.convert("L")) >= 128
        seg_big = np.kron(seg, np.ones((scale, scale), dtype=bool))
        edge = seg_big & ~ndimage.binary_erosion(seg_big, iterations=max(1, scale // 2))
        arr = np.asarray(tile).copy()
        arr[edge] = (0, 255, 255)
        tile = Image.fromarray(arr)
    draw = ImageDraw.Draw(tile)
    x0, y0 = row.x * scale, row.y * scale
    x1, y1 = (row.x + row.w) * scale - 1, (row.y + row.h) * scale - 1
    draw.rectangle([x0, y0, x1, y1], outline=(255, 0, 0), width=max(1, scale // 2))
    framed = Image.new("RGB", (tile.width, tile.height + 16), (255, 255, 255))
    framed.paste(tile, (0, 0))
    ImageDraw.Draw(framed).text((3, tile.height + 2), label, fill=(0, 0, 0), font=font)
    return framed


def contact_sheet(
    root: str | Path, out_png: str | Path, *, n_images: int = 12, columns: int = 4, scale: int = 2
) -> Path:
    """Draw the first ``n_images`` classes' first image with box (red) and mask outline (cyan).

    Consecutive classes form sibling groups, so the sheet shows one-part differences side by
    side; each caption gives the class id and what it changes relative to its group's base.
    """
    from houseprice.data.cub import read_cub_index  # local: the cub package imports torch

    root = Path(root)
    frame = read_cub_index(root)
    meta_path = root / "dataset.json"
    captions: dict[int, str] = {}
    if meta_path.is_file():
        for c in json.loads(meta_path.read_text(encoding="utf-8")).get("classes", []):
            captions[int(c["class_id"])] = c["differs_in"] or "base"
    first = frame.groupby("class_id", sort=True).head(1).head(n_images)
    font = ImageFont.load_default()
    tiles = [
        _tile(row, f"{row.class_id:03d} {captions.get(int(row.class_id), '')}".strip(), scale, font)
        for row in first.itertuples()
    ]
    if not tiles:
        raise UserInputError(f"{root} has no images to draw")
    rows = math.ceil(len(tiles) / columns)
    tw, th = tiles[0].size
    pad = 4
    sheet = Image.new("RGB", (columns * (tw + pad) + pad, rows * (th + pad) + pad), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (pad + (i % columns) * (tw + pad), pad + (i // columns) * (th + pad)))
    # 256 colours keep the flat drawings (and the exact box/outline colours) at a quarter size
    paletted = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    paletted.save(buf, format="PNG", optimize=True)
    return atomic_write_bytes(out_png, buf.getvalue())


__all__ = ["contact_sheet"]
