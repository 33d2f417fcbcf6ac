"""Reading satellite tiles (and label masks) from a dataset folder into arrays.

Tiles are RGB PNG/JPEG squares (data_specs/houses.md). ``load_tiles`` returns a uint8 array
``(N, H, W, 3)`` plus a boolean ``ok`` vector: a missing, unreadable, non-square or
wrong-size tile is reported (never silently dropped) so callers can fall back to the
no-visual model for that row.
"""

from __future__ import annotations

import stat
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


#: Largest tile accepted, in pixels (a 4096 x 4096 tile; tiles are usually 64-512 px). A
#: larger image is refused for its row before it is decoded (image bombs, wrong files).
MAX_TILE_PIXELS = 4096 * 4096


def _open_checked(path: Path) -> Image.Image:
    """Open a tile lazily after checking it is a regular file of acceptable pixel count."""
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise ValueError(f"tile {path} does not exist") from e
    except OSError as e:
        raise ValueError(f"tile {path} cannot be read ({e.strerror})") from e
    if not stat.S_ISREG(st.st_mode):  # FIFOs, devices, sockets, folders: never opened
        raise ValueError(f"tile {path} is not a regular file")
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        # ValueError: a text chunk that inflates past Pillow's limit ("Decompressed data too large")
        raise ValueError(f"tile {path} is not a readable image ({e})") from e
    w, h = im.size
    if w * h > MAX_TILE_PIXELS:
        im.close()
        raise ValueError(
            f"tile {path} claims {w}x{h} pixels, more than the {MAX_TILE_PIXELS:,} accepted"
        )
    return im


def _to_rgb(im: Image.Image, path: Path) -> Image.Image:
    """RGB from any common mode; 16-bit and float greys are rescaled, not clipped to white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            a = a / 65535.0
        elif im.mode == "I":
            a = a / 65535.0 if a.max(initial=0) > 255 else a / 255.0
        elif a.max(initial=0) > 1.0:  # float image not in [0, 1]
            raise ValueError(f"tile {path} is a float image with values outside [0, 1]")
        grey = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if im.mode in ("RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1", "LAB", "HSV"):
        return im.convert("RGB")
    raise ValueError(f"tile {path} has unsupported image mode {im.mode!r}")


def read_tile(path: Path, size: int | None = None) -> np.ndarray:
    """Read one tile as ``(S, S, 3)`` uint8; raises ValueError with the reason if unusable.

    Refused (per row, by the caller): missing files, anything but a regular file, images over
    :data:`MAX_TILE_PIXELS`, undecodable or truncated files, non-square images and unsupported
    modes. 16-bit tiles are scaled to 8 bits.
    """
    path = Path(path)
    with _open_checked(path) as im:
        try:
            im.load()
        except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as e:
            raise ValueError(f"tile {path} is not a readable image ({e})") from e
        try:
            rgb = _to_rgb(im, path)
        except OSError as e:
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
    with _open_checked(Path(path)) as im:
        m = im.convert("L")
        if size is not None and m.size[0] != size:
            m = m.resize((size, size), Image.NEAREST)
        return np.asarray(m, dtype=np.uint8)
