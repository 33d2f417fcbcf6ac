"""Per-house tile files in a dataset folder: cut from orthophotos, or linked from a folder.

This module owns :func:`cut_tiles` (every house's tile cut by
:class:`~houseprice.data.houses.imagery.OrthophotoTiles` and written as
``tiles/<name>.png``, for ``houseprice data import --imagery`` and ``houseprice data tiles``),
:func:`link_tile_folder` (a user's folder of per-house images checked and copied, for
``--tiles``), :func:`tile_names` (safe file names from house ids) and :class:`TileFiles`, the
``image`` values they return (data_specs/import.md, "Tiles").
"""

from __future__ import annotations

import hashlib
import math
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from houseprice.data.houses.imagery import GDAL_CACHE_BYTES, OrthophotoTiles, spatial_order
from houseprice.data.houses.tiles import read_tile
from houseprice.errors import UserInputError

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def tile_names(house_ids: Sequence[str]) -> list[str]:
    """File stems for tiles: the house_id itself when it is a safe, distinct file name.

    Anything else (characters outside ``[A-Za-z0-9._-]``, a leading dot, more than 100
    characters, or two ids that differ only in case) gets ``<cleaned>-<sha256[:10]>``.
    """
    ids = [str(h) for h in house_ids]
    lower: dict[str, int] = {}
    for h in ids:
        lower[h.lower()] = lower.get(h.lower(), 0) + 1
    out = []
    for h in ids:
        cleaned = "".join(c if c in _SAFE else "_" for c in h)[:80].lstrip(".") or "house"
        if cleaned == h and len(h) <= 100 and lower[h.lower()] == 1:
            out.append(h)
        else:
            out.append(f"{cleaned}-{hashlib.sha256(h.encode()).hexdigest()[:10]}")
    return out


@dataclass
class TileFiles:
    """Result of :func:`cut_tiles` / :func:`link_tile_folder`: per row an ``image`` value."""

    images: list[str | None]  # relative to the dataset folder; None = no usable tile
    reasons: dict[int, str]  # row position -> why there is no tile
    sizes: set[int] = field(default_factory=set)  # tile widths in pixels
    unmatched: int = 0  # files in a --tiles folder that match no house


def cut_tiles(
    records: pd.DataFrame,
    imagery: OrthophotoTiles | Sequence[str | Path],
    out_dir: str | Path,
    *,
    tile_meters: float = 70.0,
    tile_px: int = 64,
    prefix: str = "tiles/",
    progress: bool = False,
    chunk: int = 256,
    workers: int = 2,
) -> TileFiles:
    """Cut every house's tile into ``out_dir/<name>.png``; return the ``image`` values.

    The values are ``prefix + <name>.png`` (``out_dir`` is ``tiles/`` of the dataset folder
    being written; names from :func:`tile_names`). ``records`` needs ``house_id``,
    ``latitude``, ``longitude`` (WGS84). Houses without a usable tile get ``None`` and a
    reason. Raises :class:`UserInputError` when the imagery covers none of the houses
    (usually a CRS mistake). ``workers`` threads each read spatially contiguous chunks of
    ``chunk`` houses with their own raster handles (GDAL releases the GIL while warping);
    the output does not depend on ``workers``.
    """
    from tqdm.auto import tqdm

    if tile_px < 8:
        raise UserInputError(f"tile_px must be >= 8, got {tile_px}")
    own = not isinstance(imagery, OrthophotoTiles)
    ortho = OrthophotoTiles(imagery, tile_meters=tile_meters) if own else imagery
    if not math.isclose(ortho.tile_meters, tile_meters):
        raise UserInputError(f"imagery tile_meters {ortho.tile_meters} != {tile_meters}")
    local = threading.local()
    clones: list[OrthophotoTiles] = []
    folder = Path(out_dir)
    names = tile_names(records["house_id"].astype(str).tolist())

    def cut(rows: np.ndarray) -> dict[int, str]:
        if not hasattr(local, "ortho"):
            local.ortho = ortho.clone()
            clones.append(local.ortho)
        batch = local.ortho.read(records.iloc[rows], tile_px, warn=False)
        for k, i in enumerate(rows):
            if batch.ok[k]:
                _save_png(folder / f"{names[i]}.png", batch.pixels[k])
        return {int(rows[k]): why for k, why in batch.reasons.items()}

    try:
        ortho.check_coverage(records)
        ortho.check_scale(tile_px)  # refuses before the threads start
        folder.mkdir(parents=True, exist_ok=True)
        lat, lon = records["latitude"].to_numpy(float), records["longitude"].to_numpy(float)
        order = spatial_order(lat, lon)
        chunks = [order[s : s + chunk] for s in range(0, len(order), chunk)]
        reasons: dict[int, str] = {}
        with (
            tqdm(total=len(records), desc="cutting tiles", disable=not progress) as bar,
            ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
            rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        ):
            for rows, why in zip(chunks, pool.map(cut, chunks), strict=True):
                reasons.update(why)
                bar.update(len(rows))
    finally:
        for c in clones:
            c.close()
        if own:
            ortho.close()
    images = [None if i in reasons else f"{prefix}{n}.png" for i, n in enumerate(names)]
    return TileFiles(images=images, reasons=reasons, sizes={tile_px} if any(images) else set())


def _save_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)


_IMAGE_EXT = (".png", ".jpg", ".jpeg")


def _check_image(path: Path) -> tuple[int | None, str]:
    """(width, "") for a readable square image, else (None, reason).

    Read as a dataset's tiles are read (:func:`~houseprice.data.houses.tiles.read_tile`):
    image bombs (a header claiming a huge size, a text chunk inflating to megabytes) and
    undecodable files are a reason for that house, never an exception.
    """
    try:
        w = read_tile(path).shape[1]
    except ValueError as e:
        return None, str(e).replace(str(path), path.name)
    if w < 8:
        return None, f"tile {path.name} is {w}x{w}; tiles must be at least 8x8"
    return w, ""


def link_tile_folder(
    house_ids: Sequence[str],
    tiles_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    prefix: str = "tiles/",
) -> TileFiles:
    """Find each house's image in ``tiles_dir`` (``<house_id>.png|.jpg|.jpeg``), check it, link it.

    With ``out_dir`` the good images are *copied* into it (the user's folder is only read)
    and the values are ``prefix + <name>``; without it the values are file names relative to
    ``tiles_dir`` (nothing is copied). Unreadable or non-square images leave the house without a
    tile (with the reason).
    """
    tiles_dir = Path(tiles_dir)
    if not tiles_dir.is_dir():
        raise UserInputError(f"{tiles_dir}: no such tiles folder")
    index: dict[str, Path] = {}
    for p in sorted(tiles_dir.iterdir()):
        if p.suffix.lower() in _IMAGE_EXT and p.is_file():
            index.setdefault(p.name, p)
            index.setdefault(p.name.lower(), p)
    names = tile_names([str(h) for h in house_ids])
    images: list[str | None] = [None] * len(house_ids)
    reasons: dict[int, str] = {}
    sizes: set[int] = set()
    used: set[Path] = set()
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for i, (hid, safe) in enumerate(zip(map(str, house_ids), names, strict=True)):
        cands = [f"{stem}{ext}" for stem in dict.fromkeys((hid, safe)) for ext in _IMAGE_EXT]
        found = next((index[c] for c in cands if c in index), None)
        found = found or next((index[c.lower()] for c in cands if c.lower() in index), None)
        if found is None:
            reasons[i] = f"no image named {hid}.png/.jpg in {tiles_dir}"
            continue
        used.add(found)
        width, why = _check_image(found)
        if width is None:
            reasons[i] = why
            continue
        sizes.add(width)
        if out_dir is None:
            images[i] = found.name
        else:
            name = f"{safe}{found.suffix.lower()}"
            shutil.copyfile(found, Path(out_dir) / name)
            images[i] = prefix + name
    unmatched = len(set(index.values()) - used)
    if not any(images):
        first = reasons[min(reasons)] if reasons else "no houses"
        raise UserInputError(
            f"{tiles_dir}: no usable tile for any house (first: {first}); tiles must be named "
            "by house_id, e.g. H001.png"
        )
    return TileFiles(images=images, reasons=reasons, sizes=sizes, unmatched=unmatched)


__all__ = ["TileFiles", "cut_tiles", "link_tile_folder", "tile_names"]
