"""Offline folium maps of valuations and heatmap overlays of explanations.

Modules: ``table`` (the input table and its checks), ``payload`` (outcomes, popup text, the
page's JSON), ``images`` (thumbnails), ``contributions`` (the popup's price chart), ``areas``
(grid-cell overlays), ``folder`` (large maps as a folder of spatial chunks), ``layers`` (the
folium elements), ``render`` (``render_valuation_map`` and the legend), ``assets`` (inlined
Leaflet), ``overlay`` (heatmap-on-tile images), ``basemap`` (the orthophotos under the map),
``gis`` (house points and area cells as GeoDataFrames for GIS files), ``browser`` (headless
Chromium checks).
"""

from houseprice.maps.overlay import (
    SIGNED_CMAP,
    heatmap_overlay,
    overlay_figure,
    save_overlay_png,
    signed_overlay,
)
from houseprice.maps.payload import (
    OUTCOMES,
    MapStyle,
    Outcome,
    classify_outcome,
    tile_footprint_bounds,
)
from houseprice.maps.render import MAP_FOLDER_KIND, folder_for, render_valuation_map

__all__ = [
    "MAP_FOLDER_KIND",
    "OUTCOMES",
    "SIGNED_CMAP",
    "MapStyle",
    "Outcome",
    "classify_outcome",
    "folder_for",
    "heatmap_overlay",
    "overlay_figure",
    "render_valuation_map",
    "save_overlay_png",
    "signed_overlay",
    "tile_footprint_bounds",
]
