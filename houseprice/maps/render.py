"""Offline valuation map: one self-contained HTML file showing predictions on a folium map.

This module owns ``render_valuation_map`` (checking its arguments and putting the pieces
together) and the legend. The map shows markers coloured by outcome (prediction within
+/-10% of the sold price, over, under, or predicted only), a popup with the tile and its
heatmap side by side plus prices, error and attributes, the heatmaps as image overlays at each
tile's ground footprint in a toggleable layer, a legend, a view fitted to the data and marker
clustering for large inputs.

Offline by construction: folium's CDN links are removed, Leaflet and Leaflet.markercluster are
inlined from their PyPI packages (``houseprice.maps.assets``, ``houseprice.maps.layers``),
thumbnails are embedded as ``data:`` URIs, and no base tile layer is added unless
``base_tiles_url`` is given.

Light by construction: houses, thumbnails and labels travel as one JSON block
(``houseprice.maps.payload``) that a small inlined script (``valuation_map.js``) turns into
markers; popups are built on first click and heatmap overlays only for houses near the current
view, so 2,000 houses cost one marker object each at load. Every text from the input is
escaped with ``html.escape`` in Python and the JSON block has ``<``, ``>`` and ``&`` escaped,
so no input can end the script element. See docs/maps.md.
"""

from __future__ import annotations

import html
import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex

from houseprice.artifacts import atomic_write_bytes
from houseprice.errors import UserInputError
from houseprice.maps.layers import (
    add_data_block,
    add_house_layers,
    base_tile_layer,
    offline_map,
    render_page,
)
from houseprice.maps.payload import OUTCOMES, MapStyle, collect_houses, page_data, script_json
from houseprice.maps.table import checked_frame

__all__ = ["legend_html", "render_valuation_map"]


def legend_html(
    title: str,
    counts: list[int],
    tile_meters: float,
    heatmap_cmap: str,
    style: MapStyle,
    n_heatmaps: int,
) -> str:
    """The legend: title, houses per outcome, the relevance colour bar and how to show it."""
    cmap = colormaps[heatmap_cmap]
    positions = np.linspace(0.0, 1.0, style.colorbar_stops)
    gradient = ", ".join(f"{to_hex(cmap(p))} {100 * p:.0f}%" for p in positions)
    items = "".join(
        f'<li><span class="hp-swatch" style="background:{o.color}"></span>'
        f"{html.escape(o.label)} ({count:,})</li>"
        for o, count in zip(OUTCOMES, counts, strict=True)
    )
    total = sum(counts)
    return (
        f'<div class="hp-legend-title">{html.escape(title)}</div>'
        f'<div class="hp-legend-sub">{total:,} houses · error = predicted / sold − 1</div>'
        f"<ul>{items}</ul>"
        f'<div class="hp-legend-sub">relevance heatmap ({n_heatmaps:,} houses)</div>'
        f'<div class="hp-colorbar" style="background: linear-gradient(to right, {gradient})">'
        '</div><div class="hp-colorbar-ticks"><span>low</span><span>high</span></div>'
        '<div class="hp-legend-note">Tick “relevance heatmaps” in the layer control to draw '
        "each heatmap over its tile’s ground footprint "
        f"({html.escape(f'{tile_meters:g}')} m square).</div>"
    )


def _check_arguments(
    tile_meters: float,
    thumb_px: int,
    cluster_threshold: int,
    base_tiles_url: str | None,
    heatmap_cmap: str,
) -> None:
    if not (isinstance(tile_meters, Real) and math.isfinite(tile_meters) and tile_meters > 0):
        raise UserInputError(
            f"tile_meters must be a positive number of metres (the tile's ground "
            f"width from dataset.json), got {tile_meters!r}"
        )
    if not (isinstance(thumb_px, Integral) and 16 <= thumb_px <= 1024):
        raise UserInputError(f"thumb_px must be an integer in [16, 1024], got {thumb_px!r}")
    if not (isinstance(cluster_threshold, Integral) and cluster_threshold >= 0):
        raise UserInputError(
            f"cluster_threshold must be a non-negative integer, got {cluster_threshold!r}"
        )
    if base_tiles_url is not None:
        placeholders = all(p in base_tiles_url for p in ("{z}", "{x}", "{y}"))
        if not (base_tiles_url.startswith(("https://", "http://")) and placeholders):
            raise UserInputError(
                "base_tiles_url must be an http(s) URL template with {z}, {x} and "
                f"{{y}} placeholders, got {base_tiles_url!r}"
            )
    if heatmap_cmap not in colormaps:
        raise UserInputError(f"unknown matplotlib colormap {heatmap_cmap!r} for heatmap_cmap")


def render_valuation_map(
    valuations: pd.DataFrame,
    out_html: str | Path,
    *,
    tile_meters: float,
    title: str = "houseprice valuations",
    thumb_px: int = 96,
    cluster_threshold: int = 200,
    base_tiles_url: str | None = None,
    base_tiles_attribution: str | None = None,
    show_heatmaps: bool = False,
    heatmap_cmap: str = "jet",
    progress: bool = False,
    style: MapStyle | None = None,
) -> Path:
    """Write a self-contained, offline HTML map of house valuations and return its path.

    Args:
        valuations: one row per house with ``house_id``, ``latitude``, ``longitude``,
            ``predicted_price``; optional ``price`` (NaN when unknown), ``image`` and
            ``heatmap`` (paths of the tile and of its pixel-aligned heatmap overlay, see
            ``save_overlay_png(..., colorbar=False)``; None/NaN when absent), ``used_visual``;
            every other column is listed in the popup as an attribute.
        out_html: output file, written atomically (parent folders are created).
        tile_meters: ground width of a tile in metres; sets the heatmap overlay footprint.
        title: page title and legend heading.
        thumb_px: longest side of the embedded thumbnails, in pixels.
        cluster_threshold: markers are clustered when there are more houses than this.
        base_tiles_url: optional XYZ tile URL template for users who are online; no base map
            (and no network request) when None.
        base_tiles_attribution: attribution text for ``base_tiles_url``.
        show_heatmaps: whether the heatmap overlay layer is ticked when the page opens.
        heatmap_cmap: colormap the heatmap PNGs were drawn with (for the legend's colour bar).
        progress: show a progress bar while thumbnails are encoded.
        style: rendering constants (tolerance, JPEG quality, zoom limits...).

    Raises:
        TypeError: ``valuations`` is not a DataFrame.
        UserInputError: (a ValueError) bad arguments, or bad rows (every problem listed with
            row, house_id and column), including missing or unreadable image files and
            heatmap PNGs that are not pixel-aligned squares.
    """
    style = style or MapStyle()
    _check_arguments(tile_meters, thumb_px, cluster_threshold, base_tiles_url, heatmap_cmap)
    frame = checked_frame(valuations)
    houses = collect_houses(
        frame, tile_meters=tile_meters, thumb_px=thumb_px, style=style, progress=progress
    )
    legend = legend_html(title, houses.counts, tile_meters, heatmap_cmap, style, houses.n_heatmaps)
    data = page_data(
        houses,
        legend_html=legend,
        cluster_threshold=cluster_threshold,
        thumb_px=thumb_px,
        style=style,
    )

    fmap = offline_map(houses.extent, title=title, max_zoom=style.max_zoom)
    add_data_block(fmap, script_json(data))
    if base_tiles_url is not None:
        base = base_tile_layer(base_tiles_url, base_tiles_attribution, max_zoom=style.max_zoom)
        base.add_to(fmap)
    add_house_layers(fmap, show_heatmaps=show_heatmaps, fit_max_zoom=style.fit_max_zoom)
    return atomic_write_bytes(Path(out_html), render_page(fmap).encode("utf-8"))
