"""Offline valuation map: an HTML file (or, for large inputs, a folder) of predictions on a map.

This module owns ``render_valuation_map`` (checking its arguments and putting the pieces
together, as one self-contained file or as a folder of spatial chunks) and the legend. The map
shows markers coloured by outcome (prediction within +/-10% of the sold price, over, under, or
predicted only), a popup with the tile and its heatmap side by side plus prices, error,
attributes and (with contribution columns) a chart of the price split
(``houseprice.maps.contributions``), the heatmaps as image overlays at each tile's ground
footprint in a toggleable layer, area overlays (``houseprice.maps.areas``), a legend, a view
fitted to the data and marker clustering for large inputs.

Offline by construction: folium's CDN links are removed, Leaflet and Leaflet.markercluster are
inlined from their PyPI packages (``houseprice.maps.assets``, ``houseprice.maps.layers``),
thumbnails are embedded as ``data:`` URIs (a folder map: relative image files), and no base
tile layer is added unless ``base_tiles_url`` is given.

Light by construction: houses, thumbnails and labels travel as one JSON block
(``houseprice.maps.payload``) that a small inlined script (``valuation_map.js``) turns into
markers; popups are built on first click and heatmap overlays only for houses near the current
view, so 2,000 houses cost one marker object each at load. Above ``folder_threshold`` houses
the map is a folder (``houseprice.maps.folder``): ``index.html`` carries one summary per
spatial chunk, the houses come in chunk scripts loaded when in view (``valuation_map_chunks.js``)
and the thumbnails are files loaded when a popup opens. Every text from the input is escaped
with ``html.escape`` in Python and the JSON block has ``<``, ``>`` and ``&`` escaped, so no
input can end the script element. See docs/maps.md.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex

from houseprice.artifacts import atomic_directory, atomic_write_bytes
from houseprice.errors import UserInputError
from houseprice.maps.areas import AreaLayer
from houseprice.maps.areas import area_layers as compute_area_layers
from houseprice.maps.basemap import (
    ImageryLayer,
    ImageryRaster,
    imagery_overlay,
    write_tile_pyramid,
)
from houseprice.maps.folder import folder_page_data, spatial_chunks, write_chunks
from houseprice.maps.layers import (
    AREA_ELEMENT_ID,
    ImageryUnderlay,
    add_data_block,
    add_extras,
    add_house_layers,
    base_tile_layer,
    offline_map,
    render_page,
)
from houseprice.maps.overlay import SIGNED_CMAP
from houseprice.maps.payload import (
    OUTCOMES,
    MapStyle,
    ValuationHouses,
    collect_houses,
    page_data,
    script_json,
)
from houseprice.maps.table import checked_frame, contribution_columns

__all__ = ["MAP_FOLDER_KIND", "folder_for", "legend_html", "render_valuation_map"]

MAP_FOLDER_KIND = "houseprice-map"  # manifest format of a folder map
IMAGERY_NAME = "imagery (orthophoto)"  # the layer control's name of the imagery underlay


def legend_html(
    title: str,
    counts: list[int],
    tile_meters: float,
    heatmap_cmap: str,
    style: MapStyle,
    n_heatmaps: int,
) -> str:
    """The legend: title, houses per outcome, the heatmap colour bar and how to show it.

    A signed heatmap (``heatmap_cmap == SIGNED_CMAP``) reads "lowers price … raises price".
    """
    cmap = colormaps[heatmap_cmap]
    signed = heatmap_cmap == SIGNED_CMAP
    kind, low, high = (
        ("signed heatmap", "lowers price", "raises price")
        if signed
        else ("relevance heatmap", "low", "high")
    )
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
        f'<div class="hp-legend-sub">{kind} ({n_heatmaps:,} houses)</div>'
        f'<div class="hp-colorbar" style="background: linear-gradient(to right, {gradient})">'
        f'</div><div class="hp-colorbar-ticks"><span>{low}</span><span>{high}</span></div>'
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
    folder_threshold: int,
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
    if not (isinstance(folder_threshold, Integral) and folder_threshold >= 1):
        raise UserInputError(
            f"folder_threshold must be a positive integer, got {folder_threshold!r}"
        )
    if heatmap_cmap not in colormaps:
        raise UserInputError(f"unknown matplotlib colormap {heatmap_cmap!r} for heatmap_cmap")


def folder_for(out_html: str | Path) -> Path:
    """The folder a large map is written to: ``out/map.html`` -> ``out/map/``."""
    out = Path(out_html)
    return out.with_suffix("") if out.suffix.lower() in (".html", ".htm") else out


def _area_block(layers: list[AreaLayer], style: MapStyle) -> str:
    return script_json(
        {
            "opacity": style.area_opacity,
            "layers": {a.key: {"cells": a.cells, "legend": a.legend_html} for a in layers},
        }
    )


def _page(
    houses: ValuationHouses,
    data: dict[str, Any],
    areas: list[AreaLayer],
    *,
    title: str,
    style: MapStyle,
    base_tiles: tuple[str | None, str | None],
    show_heatmaps: bool,
    chunked: bool,
    extras: bool,
    imagery: ImageryLayer | None = None,
) -> bytes:
    """The HTML page; with no extras it is exactly the page of a plain single-file map."""
    fmap = offline_map(houses.extent, title=title, max_zoom=style.max_zoom)
    if extras:
        scripts = ("valuation_map_areas.js",) + (("valuation_map_chunks.js",) if chunked else ())
        add_extras(fmap, scripts)
    add_data_block(fmap, script_json(data))
    if areas:
        add_data_block(fmap, _area_block(areas, style), AREA_ELEMENT_ID, "hp_area_data")
    url, attribution = base_tiles
    if url is not None:
        base_tile_layer(url, attribution, max_zoom=style.max_zoom).add_to(fmap)
    if imagery is not None:
        ImageryUnderlay(imagery, name=IMAGERY_NAME, max_zoom=style.max_zoom).add_to(fmap)
    add_house_layers(
        fmap,
        show_heatmaps=show_heatmaps,
        fit_max_zoom=style.fit_max_zoom,
        areas=tuple((a.key, a.name) for a in areas),
        chunked=chunked,
    )
    return render_page(fmap).encode("utf-8")


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
    area_layers: bool | None = None,
    area_cell_meters: float | None = None,
    folder_threshold: int = 5000,
    overwrite: bool = False,
    imagery: Sequence[ImageryRaster] | None = None,
    imagery_max_px: int = 2048,
) -> Path:
    """Write an offline HTML map of house valuations and return the path of its page.

    Up to ``folder_threshold`` houses the map is one self-contained file, ``out_html``.
    Above, it is a folder ``folder_for(out_html)`` (``out/map.html`` -> ``out/map/``) holding
    ``index.html`` (the page to open; returned), ``data/chunk_*.js`` and ``img/*``, written
    with ``houseprice.artifacts.atomic_directory`` (format ``houseprice-map``).

    Args:
        valuations: one row per house with ``house_id``, ``latitude``, ``longitude``,
            ``predicted_price``; optional ``price`` (NaN when unknown), ``image`` and
            ``heatmap`` (paths of the tile and of its pixel-aligned heatmap overlay, see
            ``save_overlay_png(..., colorbar=False)``; None/NaN when absent), ``used_visual``,
            ``base_price`` and ``contrib_<group>`` (money that adds up to the prediction, shown
            as the popup's chart; NaN when a group was not used); every other column is
            listed in the popup as an attribute.
        out_html: output file, written atomically (parent folders are created).
        tile_meters: ground width of a tile in metres; sets the heatmap overlay footprint.
        title: page title and legend heading.
        thumb_px: longest side of the thumbnails, in pixels.
        cluster_threshold: markers are clustered when there are more houses than this.
        base_tiles_url: optional XYZ tile URL template for users who are online; no base map
            (and no network request) when None.
        base_tiles_attribution: attribution text for ``base_tiles_url``.
        show_heatmaps: whether the heatmap overlay layer is ticked when the page opens.
        heatmap_cmap: colormap the heatmap PNGs were drawn with (for the legend's colour bar).
        progress: show a progress bar while thumbnails are encoded.
        style: rendering constants (tolerance, JPEG quality, zoom limits, chunk size...).
        area_layers: draw the area overlays (median error, within ±10%, image
            contribution); by default (None) they are drawn when the table has contribution
            columns or the map is a folder, so a plain small map is unchanged.
        area_cell_meters: side of an area cell in metres; default from the data extent.
        folder_threshold: above this many houses the map is written as a folder.
        overwrite: a folder map may replace an existing folder (only one houseprice wrote and
            nobody changed since, see ``atomic_directory``); a single file is always replaced.
        imagery: open orthophotos (``houseprice.data.houses.imagery.open_raster``; the
            caller closes them) drawn under the houses (a layer ticked on in the
            layer control; ``houseprice.maps.basemap``): one embedded image of at most
            ``imagery_max_px`` pixels for a single file, a tile pyramid in ``imagery/`` for a
            folder map. Offline either way.
        imagery_max_px: longest side of a single-file map's imagery image.

    Raises:
        TypeError: ``valuations`` is not a DataFrame.
        UserInputError: (a ValueError) bad arguments, or bad rows (every problem listed with
            row, house_id and column), including missing or unreadable image files and
            heatmap PNGs that are not pixel-aligned squares.
        OutputExistsError: the folder of a folder map exists and may not be replaced.
    """
    style = style or MapStyle()
    _check_arguments(
        tile_meters, thumb_px, cluster_threshold, base_tiles_url, heatmap_cmap, folder_threshold
    )
    frame = checked_frame(valuations)
    chunked = len(frame) > folder_threshold
    contributions = bool(contribution_columns(frame))
    if area_layers is None:
        area_layers = contributions or chunked
    areas = (
        compute_area_layers(frame, cell_meters=area_cell_meters, style=style) if area_layers else []
    )
    options = {
        "title": title,
        "style": style,
        "base_tiles": (base_tiles_url, base_tiles_attribution),
        "show_heatmaps": show_heatmaps,
        "chunked": chunked,
        "extras": chunked or contributions or bool(areas),
    }

    def legend(houses: ValuationHouses) -> str:
        text = legend_html(
            title, houses.counts, tile_meters, heatmap_cmap, style, houses.n_heatmaps
        )
        if chunked:  # a folder map shows each chunk as one ring until it is zoomed into
            text += (
                '<div class="hp-legend-note">Large map: each ring is an area of up to '
                f"{style.chunk_houses:,} houses; zoom in (or click a ring) to show its "
                "houses.</div>"
            )
        return text

    def collect(image_folder: Path | None) -> ValuationHouses:
        return collect_houses(
            frame,
            tile_meters=tile_meters,
            thumb_px=thumb_px,
            style=style,
            progress=progress,
            image_folder=image_folder,
        )

    if not chunked:
        houses = collect(None)
        if imagery:
            options["imagery"] = imagery_overlay(imagery, houses.extent, max_px=imagery_max_px)
        data = page_data(
            houses,
            legend_html=legend(houses),
            cluster_threshold=cluster_threshold,
            thumb_px=thumb_px,
            style=style,
        )
        page = _page(houses, data, areas, **options)
        return atomic_write_bytes(Path(out_html), page)

    folder = folder_for(out_html)
    with atomic_directory(folder, overwrite=overwrite, kind=MAP_FOLDER_KIND) as tmp:
        houses = collect(tmp)
        if imagery:
            options["imagery"] = write_tile_pyramid(
                imagery, houses.extent, tmp / "imagery", max_zoom=style.max_zoom
            )
        chunks = spatial_chunks(
            frame["latitude"].to_numpy(), frame["longitude"].to_numpy(), style.chunk_houses
        )
        write_chunks(tmp, houses, chunks)
        data = page_data(
            houses,
            legend_html=legend(houses),
            cluster_threshold=cluster_threshold,
            thumb_px=thumb_px,
            style=style,
        )
        data = folder_page_data(data, houses, chunks, tile_meters=tile_meters, style=style)
        atomic_write_bytes(tmp / "index.html", _page(houses, data, areas, **options))
    return folder / "index.html"
