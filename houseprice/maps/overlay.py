"""Heatmap overlays: blend a relevance heatmap onto its tile and save it as a PNG.

This module owns the picture of an explanation: ``heatmap_overlay`` returns the blended RGB
array, ``overlay_figure`` draws it with a colour bar labelled "relevance", and
``save_overlay_png`` writes either the pixel-aligned blend (same size as the tile, what the
map places at the tile's ground footprint) or the annotated figure. Matplotlib is used
through its object API on the Agg canvas, so no global pyplot state or display is involved.

Signed explanations (values in ``[-1, 1]``: positive raises the price, negative lowers it) are
drawn in two colours by ``signed_overlay`` (:data:`RAISES_RGB` / :data:`LOWERS_RGB`, opacity
growing with the magnitude, so the tile shows where nothing moved the price); the annotated
PNG (``save_overlay_png(..., signed=True)``) carries a legend "raises price" / "lowers price".
:data:`SIGNED_CMAP` is the same diverging scale as a matplotlib colormap (for colour bars).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from PIL import Image

from houseprice.artifacts import atomic_write_bytes

__all__ = [
    "LOWERS_RGB",
    "RAISES_RGB",
    "SIGNED_CMAP",
    "heatmap_overlay",
    "overlay_figure",
    "save_overlay_png",
    "signed_overlay",
]

_RANGE_TOLERANCE = 1e-6
RAISES_RGB = (215, 48, 39)  # "raises price" (ColorBrewer RdYlBu red)
LOWERS_RGB = (49, 130, 189)  # "lowers price" (ColorBrewer blue)
#: Name of the registered diverging colormap: LOWERS_RGB at 0, white at 0.5, RAISES_RGB at 1.
SIGNED_CMAP = "houseprice_signed"
if SIGNED_CMAP not in colormaps:
    colormaps.register(
        LinearSegmentedColormap.from_list(
            SIGNED_CMAP,
            [
                tuple(c / 255 for c in LOWERS_RGB),
                (1.0, 1.0, 1.0),
                tuple(c / 255 for c in RAISES_RGB),
            ],
        )
    )


def _colormap(cmap: str) -> Colormap:
    try:
        return colormaps[cmap]
    except KeyError as err:
        raise ValueError(
            f"unknown matplotlib colormap {cmap!r}; try 'jet', 'viridis' or 'inferno'"
        ) from err


def _check_inputs(tile_rgb: np.ndarray, heatmap: np.ndarray, alpha: float) -> np.ndarray:
    """Validate shapes, dtypes and ranges; return the heatmap as float64 clipped to [0, 1]."""
    if not isinstance(tile_rgb, np.ndarray) or tile_rgb.ndim != 3 or tile_rgb.shape[2] != 3:
        shape = getattr(tile_rgb, "shape", type(tile_rgb).__name__)
        raise ValueError(f"tile_rgb must be a (H, W, 3) array, got {shape}")
    if tile_rgb.dtype != np.uint8:
        raise ValueError(f"tile_rgb must be uint8 in [0, 255], got dtype {tile_rgb.dtype}")
    if not isinstance(heatmap, np.ndarray) or heatmap.shape != tile_rgb.shape[:2]:
        shape = getattr(heatmap, "shape", type(heatmap).__name__)
        raise ValueError(
            f"heatmap must be a (H, W) array matching the tile {tile_rgb.shape[:2]}, "
            f"got {shape}; resize the heatmap to the tile first"
        )
    values = heatmap.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("heatmap contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < -_RANGE_TOLERANCE or high > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(
            f"heatmap values must lie in [0, 1], got [{low:.4g}, {high:.4g}]; normalise it first"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return np.clip(values, 0.0, 1.0)


def _check_signed(tile_rgb: np.ndarray, signed: np.ndarray, alpha: float) -> np.ndarray:
    """Validate like :func:`_check_inputs` for a signed map in ``[-1, 1]``."""
    if not isinstance(signed, np.ndarray):
        raise ValueError(f"signed heatmap must be an array, got {type(signed).__name__}")
    if np.isfinite(signed).all() and np.abs(signed).max(initial=0.0) > 1.0 + _RANGE_TOLERANCE:
        raise ValueError(
            f"signed heatmap values must lie in [-1, 1], got [{signed.min():.4g}, "
            f"{signed.max():.4g}]; divide by the largest magnitude first"
        )
    _check_inputs(tile_rgb, np.abs(signed), alpha)  # shape, dtype, finite
    return np.clip(signed.astype(np.float64), -1.0, 1.0)


def signed_overlay(tile_rgb: np.ndarray, signed: np.ndarray, *, alpha: float = 0.7) -> np.ndarray:
    """Two-colour blend of a signed map ``(H, W)`` in ``[-1, 1]`` over the tile.

    Pixel colour ``(1 - a) * tile + a * c`` with ``a = alpha * |v|`` and ``c`` =
    :data:`RAISES_RGB` where ``v > 0`` (raises the price), :data:`LOWERS_RGB` where ``v < 0``.
    """
    values = _check_signed(tile_rgb, signed, alpha)
    colour = np.where(values[..., None] >= 0, RAISES_RGB, LOWERS_RGB) / 255.0  # (H, W, 3)
    a = alpha * np.abs(values)[..., None]
    tile = tile_rgb.astype(np.float64) / 255.0
    blended = (1.0 - a) * tile + a * colour
    return np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)


def heatmap_overlay(
    tile_rgb: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blend ``cmap(heatmap)`` over the tile: ``(1 - alpha) * tile + alpha * colour``.

    Args:
        tile_rgb: (H, W, 3) uint8 tile.
        heatmap: (H, W) relevance in [0, 1].
        alpha: weight of the heatmap colour (0 = tile only, 1 = heatmap only).
        cmap: matplotlib colormap name.

    Returns:
        (H, W, 3) uint8 blended image.
    """
    values = _check_inputs(tile_rgb, heatmap, alpha)
    colours = _colormap(cmap)(values)[..., :3]  # (H, W, 3) floats in [0, 1]
    tile = tile_rgb.astype(np.float64) / 255.0  # (H, W, 3)
    blended = (1.0 - alpha) * tile + alpha * colours  # (H, W, 3)
    return np.clip(np.rint(blended * 255.0), 0, 255).astype(np.uint8)


def overlay_figure(
    tile_rgb: np.ndarray,
    heatmap: np.ndarray,
    *,
    colorbar: bool = True,
    title: str | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    dpi: int = 100,
) -> Figure:
    """Matplotlib figure of the overlay, optionally with a "relevance" colour bar and a title."""
    blended = heatmap_overlay(tile_rgb, heatmap, alpha=alpha, cmap=cmap)
    height, width = blended.shape[:2]
    # Figure sized so the image keeps roughly its own resolution, plus room for the bar.
    fig_w = max(width / dpi, 2.0) + (1.1 if colorbar else 0.0)
    fig_h = max(height / dpi, 2.0) + (0.4 if title else 0.0)
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(blended, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    if colorbar:
        mappable = ScalarMappable(norm=Normalize(vmin=0.0, vmax=1.0), cmap=_colormap(cmap))
        bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("relevance")
    fig.tight_layout()
    return fig


def save_overlay_png(
    tile_rgb: np.ndarray,
    heatmap: np.ndarray,
    path: str | Path,
    *,
    colorbar: bool = True,
    title: str | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    signed: bool = False,
) -> Path:
    """Write the overlay as a PNG (atomically) and return its path.

    With ``colorbar=False`` and no title the PNG is the blended array itself, pixel-aligned
    with the tile (same H x W): this is the form ``render_valuation_map`` needs, since it
    places the image at the tile's ground footprint. Otherwise the enlarged overlay with the
    colour bar labelled "relevance" and the title is written. ``signed``: ``heatmap`` is in
    ``[-1, 1]`` and drawn by :func:`signed_overlay` (``alpha`` is its opacity at ``|v| = 1``),
    with a "raises price" / "lowers price" legend instead of the colour bar.
    """
    out = Path(path)
    buffer = io.BytesIO()
    if signed:
        blended = signed_overlay(tile_rgb, heatmap, alpha=alpha)
    else:
        blended = heatmap_overlay(tile_rgb, heatmap, alpha=alpha, cmap=cmap)
    if not colorbar and not title:
        Image.fromarray(blended).save(buffer, format="PNG")
    elif signed:
        _signed_panel(blended, legend=colorbar, title=title).save(buffer, "PNG")
    else:
        _overlay_panel(blended, colorbar=colorbar, title=title, cmap=cmap).save(buffer, "PNG")
    atomic_write_bytes(out, buffer.getvalue())
    return out


def _overlay_panel(
    blended: np.ndarray, *, colorbar: bool, title: str | None, cmap: str, min_px: int = 256
) -> Image.Image:
    """The overlay enlarged to at least ``min_px``, a "relevance" colour bar and a title.

    Drawn with PIL (about 30x faster than a matplotlib figure; an explanation run writes one
    per house).
    """
    from PIL import ImageDraw, ImageFont

    h, w = blended.shape[:2]
    scale = max(1, -(-min_px // max(h, w)))
    img = Image.fromarray(blended).resize((w * scale, h * scale), Image.NEAREST)
    font = ImageFont.load_default()
    top = 18 if title else 6
    bar_w, right = 14, (64 if colorbar else 6)
    canvas = Image.new("RGB", (img.width + 6 + right, img.height + top + 6), "white")
    canvas.paste(img, (6, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 3), title[:60], fill="black", font=font)
    if colorbar:
        x0, y0, y1 = img.width + 14, top, top + img.height
        lut = (_colormap(cmap)(np.linspace(1.0, 0.0, y1 - y0))[:, :3] * 255).astype(np.uint8)
        bar = np.repeat(lut[:, None, :], bar_w, axis=1)  # (H, bar_w, 3), top = 1.0
        canvas.paste(Image.fromarray(bar), (x0, y0))
        draw.rectangle((x0, y0, x0 + bar_w - 1, y1 - 1), outline="black")
        for value, y in ((1.0, y0), (0.5, (y0 + y1) // 2), (0.0, y1 - 10)):
            draw.text((x0 + bar_w + 3, y), f"{value:g}", fill="black", font=font)
        label = Image.new("RGB", (img.height, 12), "white")
        ImageDraw.Draw(label).text((img.height // 2 - 24, 0), "relevance", fill="black", font=font)
        canvas.paste(label.rotate(90, expand=True), (x0 + bar_w + 26, y0))
    return canvas


def _signed_panel(
    blended: np.ndarray, *, legend: bool, title: str | None, min_px: int = 256
) -> Image.Image:
    """The signed overlay enlarged to at least ``min_px``, a title and a two-colour legend."""
    from PIL import ImageDraw, ImageFont

    h, w = blended.shape[:2]
    scale = max(1, -(-min_px // max(h, w)))
    img = Image.fromarray(blended).resize((w * scale, h * scale), Image.NEAREST)
    font = ImageFont.load_default()
    top, right = (18 if title else 6), (96 if legend else 6)
    canvas = Image.new("RGB", (img.width + 6 + right, img.height + top + 6), "white")
    canvas.paste(img, (6, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 3), title[:60], fill="black", font=font)
    if legend:
        x0 = img.width + 14
        for k, (rgb, label) in enumerate(
            ((RAISES_RGB, "raises price"), (LOWERS_RGB, "lowers price"))
        ):
            y = top + 4 + 20 * k
            draw.rectangle((x0, y, x0 + 12, y + 12), fill=rgb, outline="black")
            draw.text((x0 + 17, y + 1), label, fill="black", font=font)
        draw.text((x0, top + 48), "opacity = |effect|", fill="black", font=font)
    return canvas
