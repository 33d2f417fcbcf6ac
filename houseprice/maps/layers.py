"""The folium side of a valuation map: an offline page and the elements that script it.

This module owns the folium/branca objects of the page: a ``folium.Map`` with no CDN link
whose head inlines Leaflet, Leaflet.markercluster (``houseprice.maps.assets``) and this
package's ``valuation_map.css``/``valuation_map.js`` (plus, only for pages that use them,
``valuation_map_extras.css``, ``valuation_map_areas.js`` and ``valuation_map_chunks.js``); the
JSON data blocks; the optional base tile layer; the house marker (single-file or chunked),
heatmap overlay, area overlay and fit-view elements, whose only code is a call into
``window.houseprice``; and rendering the page with reproducible element ids. What goes into
the data blocks is ``houseprice.maps.payload``'s (and ``areas``/``folder``'s) job.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

import folium
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from jinja2 import Template

from houseprice.maps.assets import offline_assets

__all__ = [
    "AREA_ELEMENT_ID",
    "DATA_ELEMENT_ID",
    "AreaOverlay",
    "ChunkedHouseMarkers",
    "FitView",
    "HeatmapOverlays",
    "HouseMarkers",
    "ImageryUnderlay",
    "add_data_block",
    "add_extras",
    "add_house_layers",
    "base_tile_layer",
    "offline_map",
    "render_page",
]

DATA_ELEMENT_ID = "hp-valuations-data"  # id of the <script type="application/json"> block
AREA_ELEMENT_ID = "hp-area-data"  # id of the area layers' JSON block


class _OfflineMap(folium.Map):
    """folium.Map without any CDN script or stylesheet (Leaflet is inlined instead)."""

    default_js: list[tuple[str, str]] = []  # noqa: RUF012 - overrides folium's class attribute
    default_css: list[tuple[str, str]] = []  # noqa: RUF012


class HouseMarkers(Layer):
    """The marker layer; its script also builds the heatmap layer and the legend."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_all = window.houseprice.houseLayers(
            {{ this._parent.get_name() }}, {{ this.data_id|tojson }});
        var {{ this.get_name() }} = {{ this.get_name() }}_all.markers;
        {% endmacro %}
    """)

    def __init__(self, data_id: str, name: str) -> None:
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "HouseMarkers"
        self.data_id = data_id


class ChunkedHouseMarkers(HouseMarkers):
    """The marker layer of a folder map: chunk overviews, and houses of the chunks in view."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }}_all = window.houseprice.chunkedLayers(
            {{ this._parent.get_name() }}, {{ this.data_id|tojson }});
        var {{ this.get_name() }} = {{ this.get_name() }}_all.markers;
        {% endmacro %}
    """)


class AreaOverlay(Layer):
    """One area layer (grid cells coloured by a statistic) with its legend while shown."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = window.houseprice.areaLayer(
            {{ this._parent.get_name() }}, {{ this.data_id|tojson }}, {{ this.key|tojson }});
        {% endmacro %}
    """)

    def __init__(self, data_id: str, key: str, name: str) -> None:
        super().__init__(name=name, overlay=True, control=True, show=False)
        self._name = "AreaOverlay"
        self.data_id = data_id
        self.key = key


IMAGERY_PANE = "hp-imagery"  # between Leaflet's tile pane (200) and overlay pane (400)


class ImageryUnderlay(Layer):
    """The orthophotos under the houses (``houseprice.maps.basemap.ImageryLayer``): one
    overlay image or a relative tile pyramid, in its own pane below every overlay so that
    ticking it off and on never draws it over the heatmaps or area cells."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        if (!{{ this._parent.get_name() }}.getPane({{ this.pane|tojson }})) {
            var pane = {{ this._parent.get_name() }}.createPane({{ this.pane|tojson }});
            pane.style.zIndex = 250;
            pane.style.pointerEvents = "none";
        }
        {%- if this.spec.tiled %}
        var {{ this.get_name() }} = L.tileLayer({{ this.spec.url|tojson }}, {
            pane: {{ this.pane|tojson }}, bounds: {{ this.spec.bounds|tojson }},
            minNativeZoom: {{ this.spec.min_zoom }}, maxNativeZoom: {{ this.spec.max_zoom }},
            maxZoom: {{ this.max_zoom }}, attribution: {{ this.spec.attribution|tojson }}
        }).addTo({{ this._parent.get_name() }});
        {%- else %}
        var {{ this.get_name() }} = L.imageOverlay({{ this.spec.url|tojson }},
            {{ this.spec.bounds|tojson }}, {pane: {{ this.pane|tojson }}, interactive: false,
            attribution: {{ this.spec.attribution|tojson }}}).addTo({{ this._parent.get_name() }});
        {%- endif %}
        {% endmacro %}
    """)

    def __init__(self, spec: Any, *, name: str, max_zoom: int) -> None:
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "ImageryUnderlay"
        self.spec = spec
        self.pane = IMAGERY_PANE
        self.max_zoom = max_zoom


class FitView(MacroElement):
    """Fits the view to the houses once the controls exist (their width is padded away)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        window.houseprice.fitView({{ this._parent.get_name() }},
            {{ this.markers.get_name() }}_all.extent, {{ this.max_zoom|tojson }});
        {% endmacro %}
    """)

    def __init__(self, markers: HouseMarkers, max_zoom: int) -> None:
        super().__init__()
        self._name = "FitView"
        self.markers = markers
        self.max_zoom = max_zoom


class HeatmapOverlays(Layer):
    """Ground-footprint heatmap overlays (created by the marker layer's script)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = {{ this.markers.get_name() }}_all.heatmaps;
        {% endmacro %}
    """)

    def __init__(self, markers: HouseMarkers, name: str, show: bool) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "HeatmapOverlays"
        self.markers = markers


def _inline(figure: Figure, name: str, tag: str, text: str) -> None:
    figure.header.add_child(Element(f"<{tag}>\n{text}\n</{tag}>"), name=name)


def _package_text(name: str) -> str:
    return resources.files("houseprice.maps").joinpath(name).read_text(encoding="utf-8")


def offline_map(
    extent: tuple[float, float, float, float], *, title: str, max_zoom: int
) -> folium.Map:
    """A map centred on ``extent`` (south, west, north, east) with every asset inlined.

    No base tile layer is added (``tiles=None``): see ``base_tile_layer``.
    """
    south, west, north, east = extent
    fmap = _OfflineMap(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=None,
        zoom_start=15,
        control_scale=True,
        maxZoom=max_zoom,
    )
    figure = fmap.get_root()
    figure.title = html.escape(title)
    assets = offline_assets()
    versions = ", ".join(f"{k} {v}" for k, v in assets.versions.items())
    figure.header.add_child(
        Element(f"<!-- offline map: {html.escape(versions)} inlined -->"), name="hp_versions"
    )
    _inline(figure, "hp_leaflet_css", "style", assets.css)
    _inline(figure, "hp_map_css", "style", _package_text("valuation_map.css"))
    _inline(figure, "hp_leaflet_js", "script", assets.javascript)
    _inline(figure, "hp_map_js", "script", _package_text("valuation_map.js"))
    return fmap


def add_extras(fmap: folium.Map, scripts: tuple[str, ...]) -> None:
    """Inline ``valuation_map_extras.css`` and the named extra scripts of this package."""
    figure = fmap.get_root()
    _inline(figure, "hp_extras_css", "style", _package_text("valuation_map_extras.css"))
    for name in scripts:
        _inline(figure, f"hp_{name.replace('.', '_')}", "script", _package_text(name))


def add_data_block(
    fmap: folium.Map, payload_json: str, element_id: str = DATA_ELEMENT_ID, name: str = "hp_data"
) -> None:
    """Add a JSON data block; ``payload_json`` must already be script-safe."""
    fmap.get_root().html.add_child(
        Element(f'<script type="application/json" id="{element_id}">{payload_json}</script>'),
        name=name,
    )


def base_tile_layer(url: str, attribution: str | None, *, max_zoom: int) -> folium.TileLayer:
    """An XYZ base map for users who are online (attribution defaults to the host name)."""
    attribution = attribution or "base map: " + url.split("/")[2]
    return folium.TileLayer(
        tiles=url,
        attr=html.escape(attribution),
        name="base map",
        max_zoom=max_zoom,
        max_native_zoom=19,
        overlay=False,
        control=True,
    )


def add_house_layers(
    fmap: folium.Map,
    *,
    show_heatmaps: bool,
    fit_max_zoom: int,
    areas: tuple[tuple[str, str], ...] = (),
    chunked: bool = False,
) -> None:
    """Add the house markers, the heatmap overlays, area overlays (``(key, name)`` each), the
    layer control and the fitted view; ``chunked`` for a folder map's markers.

    Order matters: the fit runs last so that the controls it pads away already exist.
    """
    kind = ChunkedHouseMarkers if chunked else HouseMarkers
    markers = kind(DATA_ELEMENT_ID, name="houses")
    markers.add_to(fmap)
    HeatmapOverlays(markers, name="relevance heatmaps", show=show_heatmaps).add_to(fmap)
    for key, name in areas:
        AreaOverlay(AREA_ELEMENT_ID, key, name).add_to(fmap)
    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    FitView(markers, fit_max_zoom).add_to(fmap)


def _stable_ids(root: Element) -> None:
    """Replace branca's random element ids with sequential ones so the HTML is reproducible.

    branca names every element ``<kind>_<random hex>`` (``Element._id``) and those names end up
    in the page's JavaScript; numbering them in tree order gives byte-identical output for
    identical input.
    """
    stack = [root]
    counter = 0
    while stack:
        element = stack.pop(0)
        element._id = f"{counter:04d}"
        counter += 1
        stack.extend(element._children.values())


def render_page(fmap: folium.Map) -> str:
    """The whole page as HTML text, with reproducible element ids."""
    figure = fmap.get_root()
    _stable_ids(figure)
    return figure.render()
