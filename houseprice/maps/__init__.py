"""Offline folium maps of valuations and heatmap overlays of explanations.

Modules: ``payload`` (checked input table, outcomes, thumbnails, the page's JSON), ``layers``
(the folium elements), ``render`` (``render_valuation_map`` and the legend), ``assets``
(inlined Leaflet), ``overlay`` (heatmap-on-tile images), ``browser`` (headless Chromium checks).
"""

from houseprice.maps.overlay import heatmap_overlay, overlay_figure, save_overlay_png
from houseprice.maps.payload import (
    OUTCOMES,
    MapStyle,
    Outcome,
    classify_outcome,
    tile_footprint_bounds,
)
from houseprice.maps.render import render_valuation_map

__all__ = [
    "OUTCOMES",
    "MapStyle",
    "Outcome",
    "classify_outcome",
    "heatmap_overlay",
    "overlay_figure",
    "render_valuation_map",
    "save_overlay_png",
    "tile_footprint_bounds",
]
