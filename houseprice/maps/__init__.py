"""Offline folium maps of valuations and heatmap overlays of explanations."""

from houseprice.maps.overlay import heatmap_overlay, overlay_figure, save_overlay_png
from houseprice.maps.valuation_map import (
    OUTCOMES,
    MapStyle,
    Outcome,
    classify_outcome,
    render_valuation_map,
    tile_footprint_bounds,
)

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
