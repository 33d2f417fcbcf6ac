"""Reading satellite tiles (and label masks) from a dataset folder into arrays.

Tiles are RGB PNG/JPEG squares (data_specs/houses.md). ``load_tiles`` returns a uint8 array
``(N, H, W, 3)`` plus a boolean ``ok`` vector: a missing, unreadable, non-square or
wrong-size tile is reported (never silently dropped) so callers can fall back to the
no-visual model for that row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


@dataclass
class TileBatch:
    """Tiles of a table in row order; ``ok[i]`` is False where row i has no usable tile."""

    pixels: np.ndarray  # (N, S, S, 3) uint8; zeros where not ok
    ok: np.ndarray  # (N,) bool
    reasons: dict[int, str] = field(default_factory=dict)  # row index -> why not ok


def read_tile(path: Path, size: int | None = None) -> np.ndarray:
    """Read one tile as ``(S, S, 3)`` uint8; raises ValueError with the reason if unusable."""
    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except FileNotFoundError as e:
        raise ValueError(f"tile {path} does not exist") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"tile {path} is not a readable image ({e})") from e
    w, h = rgb.size
    if w != h:
        raise ValueError(f"tile {path} is {w}x{h}; tiles must be square")
    if size is not None and w != size:
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def load_tiles(
    paths: list[Path | None], size: int, *, progress: bool = False, warn: bool = True
) -> TileBatch:
    """Read every tile (resized to ``size``); rows without a usable tile are flagged."""
    from tqdm.auto import tqdm

    n = len(paths)
    pixels = np.zeros((n, size, size, 3), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    for i, p in enumerate(tqdm(paths, desc="tiles", disable=not progress, leave=False)):
        if p is None:
            reasons[i] = "no tile listed"
            continue
        try:
            pixels[i] = read_tile(Path(p), size)
            ok[i] = True
        except ValueError as e:
            reasons[i] = str(e)
    if warn:
        bad = [i for i in reasons if reasons[i] != "no tile listed"]
        if bad:
            first = reasons[bad[0]]
            warnings.warn(
                f"{len(bad)} of {n} tiles could not be used (first: {first}); those "
                "rows use the no-visual model",
                stacklevel=2,
            )
    return TileBatch(pixels=pixels, ok=ok, reasons=reasons)


def read_mask(path: Path, size: int | None = None) -> np.ndarray:
    """Read a single-channel label/evidence mask as ``(S, S)`` uint8 (nearest resize)."""
    with Image.open(path) as im:
        m = im.convert("L")
        if size is not None and m.size[0] != size:
            m = m.resize((size, size), Image.NEAREST)
        return np.asarray(m, dtype=np.uint8)
