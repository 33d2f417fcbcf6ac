"""Offline valuation map: one self-contained HTML file showing predictions on a folium map.

This module owns ``render_valuation_map``: markers coloured by outcome (prediction within
+/-10% of the sold price, over, under, or predicted only), a popup with the tile and its
heatmap side by side plus prices, error and attributes, the heatmaps as image overlays at each
tile's ground footprint in a toggleable layer, a legend, a view fitted to the data and marker
clustering for large inputs.

Offline by construction: folium's CDN links are removed, Leaflet and Leaflet.markercluster are
inlined from their PyPI packages (see ``houseprice.maps.assets``), thumbnails are embedded as
``data:`` URIs, and no base tile layer is added unless ``base_tiles_url`` is given.

Light by construction: houses, thumbnails and labels travel as one JSON block that a small
inlined script (``valuation_map.js``) turns into markers; popups are built on first click and
heatmap overlays only for houses near the current view, so 2,000 houses cost one marker
object each at load. Every text from the input is escaped with ``html.escape`` in Python and
the JSON block has ``<``, ``>`` and ``&`` escaped, so no input can end the script element.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import folium
import numpy as np
import pandas as pd
from branca.element import Element, Figure, MacroElement
from folium.map import Layer
from jinja2 import Template
from matplotlib import colormaps
from matplotlib.colors import to_hex
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from houseprice.artifacts import atomic_write_bytes
from houseprice.maps.assets import offline_assets

__all__ = [
    "OUTCOMES",
    "MapStyle",
    "Outcome",
    "classify_outcome",
    "render_valuation_map",
    "tile_footprint_bounds",
]

# IUGG mean Earth radius (m): ground metres -> degrees on a sphere; within 0.5% of WGS84
# everywhere, i.e. a few centimetres over one tile.
EARTH_RADIUS_M = 6_371_008.8
REQUIRED_COLUMNS = ("house_id", "latitude", "longitude", "predicted_price")
OPTIONAL_COLUMNS = ("price", "image", "heatmap", "used_visual")
# Columns never listed as attributes in the popup (geometry/mask are machine data).
_NOT_ATTRIBUTES = frozenset((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "geometry", "mask"))
_DATA_ELEMENT_ID = "hp-valuations-data"
_MAX_REPORTED_PROBLEMS = 25
_MISSING_TEXT = "—"


@dataclass(frozen=True)
class Outcome:
    """One marker class: key (CSS class suffix), legend label, popup badge and fill colour."""

    key: str
    label: str
    badge: str
    color: str


OUTCOMES: tuple[Outcome, ...] = (
    Outcome("within", "within ±10% of sold price", "within ±10%", "#1a9850"),
    Outcome("over", "over-predicted (> +10%)", "over-predicted", "#d7301f"),
    Outcome("under", "under-predicted (< −10%)", "under-predicted", "#2166ac"),
    Outcome("unknown", "predicted only (no sold price)", "no sold price", "#8c8c8c"),
)
_OUTCOME_INDEX = {outcome.key: i for i, outcome in enumerate(OUTCOMES)}


@dataclass(frozen=True)
class MapStyle:
    """Rendering knobs that are not part of the public call (defaults suit 10-10,000 houses)."""

    tolerance: float = 0.10  # |predicted / sold - 1| <= tolerance counts as "within"
    jpeg_quality: int = 80  # thumbnails without alpha are JPEG, with alpha PNG
    heatmap_opacity: float = 0.8  # opacity of ground-footprint heatmap overlays
    max_zoom: int = 20  # map max zoom (needed by markercluster when there is no tile layer)
    fit_max_zoom: int = 18  # fitting the view to one house does not zoom past this
    disable_clustering_at_zoom: int = 18  # individual markers from this zoom on
    max_cluster_radius: int = 50  # pixels
    colorbar_stops: int = 11  # colour stops of the legend's relevance colour bar


def classify_outcome(predicted: float, price: float | None, *, tolerance: float = 0.10) -> str:
    """Outcome key of one prediction: "within", "over", "under" or "unknown" (no price).

    The relative error is ``predicted / price - 1``; within means ``|error| <= tolerance``.
    """
    if price is None or not math.isfinite(price):
        return "unknown"
    error = predicted / price - 1.0
    if abs(error) <= tolerance + 1e-12:
        return "within"
    return "over" if error > 0 else "under"


def tile_footprint_bounds(
    latitude: np.ndarray | float, longitude: np.ndarray | float, tile_meters: float
) -> np.ndarray:
    """Lat/lon bounds of a square tile of ``tile_meters`` ground width centred on each house.

    Returns:
        (N, 4) array of [south, west, north, east] degrees. The longitude half-width is the
        latitude half-width divided by cos(latitude), so the square is square on the ground.
    """
    if not (math.isfinite(tile_meters) and tile_meters > 0):
        raise ValueError(f"tile_meters must be a positive number of metres, got {tile_meters}")
    lat = np.atleast_1d(np.asarray(latitude, dtype=np.float64))  # (N,)
    lon = np.atleast_1d(np.asarray(longitude, dtype=np.float64))  # (N,)
    if np.any(np.abs(lat) >= 89.0):
        raise ValueError("tile footprints are undefined within 1 degree of the poles")
    half_lat = np.degrees(tile_meters / 2.0 / EARTH_RADIUS_M)  # scalar degrees
    half_lon = half_lat / np.cos(np.radians(lat))  # (N,)
    return np.stack([lat - half_lat, lon - half_lon, lat + half_lat, lon + half_lon], axis=1)


# --------------------------------------------------------------------------------------------
# input checking


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class _Problems:
    """Collects every bad cell so one error can report them all."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, row: int, house_id: Any, column: str, message: str) -> None:
        self.items.append(f"row {row} (house_id={house_id!r}), column {column!r}: {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:_MAX_REPORTED_PROBLEMS]
        more = len(self.items) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise ValueError(
            f"valuations: {len(self.items)} problem(s):\n  " + "\n  ".join(shown) + tail
        )


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)


def _checked_frame(valuations: pd.DataFrame) -> pd.DataFrame:
    """Validate the table; return a copy with numeric columns parsed and optional ones added."""
    if not isinstance(valuations, pd.DataFrame):
        raise TypeError(f"valuations must be a pandas DataFrame, got {type(valuations).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in valuations.columns]
    if missing:
        raise ValueError(
            f"valuations is missing column(s) {missing}; it has "
            f"{list(map(str, valuations.columns))}"
        )
    if len(valuations) == 0:
        raise ValueError("valuations has no rows: nothing to put on the map")

    frame = valuations.reset_index(drop=True).copy()
    for column in ("price", "image", "heatmap"):
        if column not in frame.columns:
            frame[column] = None
    problems = _Problems()
    ids = frame["house_id"].tolist()
    raw = {c: frame[c].tolist() for c in ("latitude", "longitude", "predicted_price", "price")}
    parsed = {c: _numeric(frame, c) for c in raw}
    for row, house_id in enumerate(ids):
        if _is_missing(house_id):
            problems.add(row, house_id, "house_id", "is empty; every house needs an id")
        # Leaflet's Web Mercator view ends at about +/-85 degrees latitude
        for column, low, high in (("latitude", -85.0, 85.0), ("longitude", -180.0, 180.0)):
            value = parsed[column][row]
            if not (math.isfinite(value) and low <= value <= high):
                problems.add(
                    row,
                    house_id,
                    column,
                    f"value {raw[column][row]!r} is not a number in [{low:g}, {high:g}]",
                )
        if not math.isfinite(parsed["predicted_price"][row]):
            problems.add(
                row,
                house_id,
                "predicted_price",
                f"value {raw['predicted_price'][row]!r} is not a finite number",
            )
        price_raw = raw["price"][row]
        price = parsed["price"][row]
        if not _is_missing(price_raw) and not (math.isfinite(price) and price > 0):
            problems.add(
                row,
                house_id,
                "price",
                f"value {price_raw!r} is not a positive number (use NaN for unknown)",
            )
    seen: dict[str, int] = {}
    for row, house_id in enumerate(ids):
        if _is_missing(house_id):
            continue
        key = str(house_id)
        if key in seen:
            problems.add(row, house_id, "house_id", f"duplicates row {seen[key]}")
        else:
            seen[key] = row
    problems.raise_if_any()
    for column, values in parsed.items():
        frame[column] = values
    frame["house_id"] = [str(v) for v in ids]
    return frame


# --------------------------------------------------------------------------------------------
# thumbnails


@dataclass(frozen=True)
class _Thumbnail:
    uri: str  # data URI
    width: int
    height: int
    source_size: tuple[int, int]


def _thumbnail(path: Path, thumb_px: int, jpeg_quality: int) -> _Thumbnail:
    """Downscale an image to fit in thumb_px x thumb_px and encode it as a data URI."""
    with Image.open(path) as opened:
        source_size = opened.size
        opened.draft("RGB", (thumb_px, thumb_px))  # JPEG: decode at reduced scale; else no-op
        has_alpha = opened.mode in ("RGBA", "LA", "PA") or (
            opened.mode == "P" and "transparency" in opened.info
        )
        image = opened.convert("RGBA" if has_alpha else "RGB")
    image.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if has_alpha:
        image.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality, optimize=True)
        mime = "image/jpeg"
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return _Thumbnail(f"data:{mime};base64,{encoded}", image.width, image.height, source_size)


class _ImageTable:
    """Thumbnails stored once each (two houses sharing a file share one data URI)."""

    def __init__(self, thumb_px: int, jpeg_quality: int) -> None:
        self.thumb_px = thumb_px
        self.jpeg_quality = jpeg_quality
        self.entries: list[list[Any]] = []  # [uri, width, height]
        self._index: dict[Path, tuple[int, _Thumbnail]] = {}

    def add(
        self, value: Any, row: int, house_id: str, column: str, problems: _Problems
    ) -> tuple[int, _Thumbnail | None]:
        """Index of the thumbnail of ``value`` (-1 if no image), reporting unreadable files."""
        if _is_missing(value):
            return -1, None
        path = Path(str(value)).expanduser().resolve()
        if path in self._index:
            index, thumb = self._index[path]
            return index, thumb
        if not path.is_file():
            problems.add(row, house_id, column, f"image file not found: {path}")
            return -1, None
        try:
            thumb = _thumbnail(path, self.thumb_px, self.jpeg_quality)
        except (UnidentifiedImageError, OSError) as err:
            problems.add(row, house_id, column, f"cannot read {path} as an image ({err})")
            return -1, None
        self.entries.append([thumb.uri, thumb.width, thumb.height])
        self._index[path] = (len(self.entries) - 1, thumb)
        return len(self.entries) - 1, thumb


# --------------------------------------------------------------------------------------------
# text (everything from the data goes through html.escape)


def _format_value(value: Any) -> str:
    """Human text for an attribute value (not yet escaped)."""
    if _is_missing(value):
        return _MISSING_TEXT
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:,.6g}"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    return str(value)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _row(label: str, value: str) -> str:
    return f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"


def _info_html(record: dict[str, Any], attributes: Iterable[str], outcome: Outcome) -> str:
    predicted = float(record["predicted_price"])
    price = float(record["price"])
    known = math.isfinite(price)
    rows = [
        _row("predicted", _money(predicted)),
        _row("sold", _money(price) if known else "unknown"),
        _row("error", f"{predicted / price - 1.0:+.1%}" if known else _MISSING_TEXT),
    ]
    used = record.get("used_visual")
    if not _is_missing(used):
        rows.append(_row("visual features", "used" if bool(used) else "not used"))
    rows.extend(_row(str(column), _format_value(record[column])) for column in attributes)
    head = (
        f'<div class="hp-head"><b>{html.escape(record["house_id"])}</b>'
        f'<span class="hp-badge" style="background:{outcome.color}">'
        f"{html.escape(outcome.badge)}"
        "</span></div>"
    )
    return f'{head}<table class="hp-table"><tbody>{"".join(rows)}</tbody></table>'


def _legend_html(
    title: str,
    counts: list[int],
    tile_meters: float,
    heatmap_cmap: str,
    style: MapStyle,
    n_heatmaps: int,
) -> str:
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


def _script_json(payload: dict[str, Any]) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survives, so nothing can close the tag."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


# --------------------------------------------------------------------------------------------
# folium glue


class _OfflineMap(folium.Map):
    """folium.Map without any CDN script or stylesheet (Leaflet is inlined instead)."""

    default_js: list[tuple[str, str]] = []  # noqa: RUF012 - overrides folium's class attribute
    default_css: list[tuple[str, str]] = []  # noqa: RUF012


class _HouseMarkers(Layer):
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


class _FitView(MacroElement):
    """Fits the view to the houses once the controls exist (their width is padded away)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        window.houseprice.fitView({{ this._parent.get_name() }},
            {{ this.markers.get_name() }}_all.extent, {{ this.max_zoom|tojson }});
        {% endmacro %}
    """)

    def __init__(self, markers: _HouseMarkers, max_zoom: int) -> None:
        super().__init__()
        self._name = "FitView"
        self.markers = markers
        self.max_zoom = max_zoom


class _HeatmapOverlays(Layer):
    """Ground-footprint heatmap overlays (created by the marker layer's script)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = {{ this.markers.get_name() }}_all.heatmaps;
        {% endmacro %}
    """)

    def __init__(self, markers: _HouseMarkers, name: str, show: bool) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "HeatmapOverlays"
        self.markers = markers


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


def _inline(figure: Figure, name: str, tag: str, text: str) -> None:
    figure.header.add_child(Element(f"<{tag}>\n{text}\n</{tag}>"), name=name)


def _package_text(name: str) -> str:
    return resources.files("houseprice.maps").joinpath(name).read_text(encoding="utf-8")


def _check_arguments(
    tile_meters: float,
    thumb_px: int,
    cluster_threshold: int,
    base_tiles_url: str | None,
    heatmap_cmap: str,
) -> None:
    if not (isinstance(tile_meters, Real) and math.isfinite(tile_meters) and tile_meters > 0):
        raise ValueError(
            f"tile_meters must be a positive number of metres (the tile's ground "
            f"width from dataset.json), got {tile_meters!r}"
        )
    if not (isinstance(thumb_px, Integral) and 16 <= thumb_px <= 1024):
        raise ValueError(f"thumb_px must be an integer in [16, 1024], got {thumb_px!r}")
    if not (isinstance(cluster_threshold, Integral) and cluster_threshold >= 0):
        raise ValueError(
            f"cluster_threshold must be a non-negative integer, got {cluster_threshold!r}"
        )
    if base_tiles_url is not None:
        placeholders = all(p in base_tiles_url for p in ("{z}", "{x}", "{y}"))
        if not (base_tiles_url.startswith(("https://", "http://")) and placeholders):
            raise ValueError(
                "base_tiles_url must be an http(s) URL template with {z}, {x} and "
                f"{{y}} placeholders, got {base_tiles_url!r}"
            )
    if heatmap_cmap not in colormaps:
        raise ValueError(f"unknown matplotlib colormap {heatmap_cmap!r} for heatmap_cmap")


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
        ValueError: bad arguments, or bad rows (every problem listed with row, house_id and
            column), including missing or unreadable image files and heatmap PNGs that are
            not pixel-aligned squares.
    """
    style = style or MapStyle()
    _check_arguments(tile_meters, thumb_px, cluster_threshold, base_tiles_url, heatmap_cmap)
    frame = _checked_frame(valuations)
    attributes = [c for c in frame.columns if c not in _NOT_ATTRIBUTES]
    bounds = tile_footprint_bounds(
        frame["latitude"].to_numpy(), frame["longitude"].to_numpy(), tile_meters
    )  # (N, 4) south, west, north, east

    problems = _Problems()
    images = _ImageTable(thumb_px, style.jpeg_quality)
    houses: list[dict[str, Any]] = []
    counts = [0] * len(OUTCOMES)
    records = frame.to_dict(orient="records")
    for row, record in enumerate(tqdm(records, desc="map thumbnails", disable=not progress)):
        house_id = record["house_id"]
        outcome_key = classify_outcome(
            record["predicted_price"], record["price"], tolerance=style.tolerance
        )
        outcome_index = _OUTCOME_INDEX[outcome_key]
        counts[outcome_index] += 1
        tile_index, _ = images.add(record["image"], row, house_id, "image", problems)
        heat_index, heat = images.add(record["heatmap"], row, house_id, "heatmap", problems)
        if heat is not None and heat.source_size[0] != heat.source_size[1]:
            width, height = heat.source_size
            problems.add(
                row,
                house_id,
                "heatmap",
                f"{record['heatmap']} is {width}x{height}, not a square pixel-aligned "
                "tile overlay; write it with save_overlay_png(..., colorbar=False)",
            )
        houses.append(
            {
                "lat": round(float(record["latitude"]), 7),
                "lon": round(float(record["longitude"]), 7),
                "o": outcome_index,
                "t": tile_index,
                "h": heat_index,
                "b": [round(float(v), 7) for v in bounds[row]],
                "label": html.escape(f"{house_id} · {OUTCOMES[outcome_index].label}"),
                "info": _info_html(record, attributes, OUTCOMES[outcome_index]),
            }
        )
    problems.raise_if_any()

    payload = {
        "cluster": len(houses) > cluster_threshold,
        "clusterOptions": {
            "disableClusteringAtZoom": style.disable_clustering_at_zoom,
            "maxClusterRadius": style.max_cluster_radius,
            "showCoverageOnHover": False,
            "chunkedLoading": True,
        },
        "outcomes": [{"key": o.key, "color": o.color} for o in OUTCOMES],
        "images": images.entries,
        "houses": houses,
        "thumbPx": thumb_px,
        "heatmapOpacity": style.heatmap_opacity,
        "legend": _legend_html(
            title, counts, tile_meters, heatmap_cmap, style, sum(1 for h in houses if h["h"] >= 0)
        ),
    }

    south, west = float(bounds[:, 0].min()), float(bounds[:, 1].min())
    north, east = float(bounds[:, 2].max()), float(bounds[:, 3].max())
    fmap = _OfflineMap(
        location=[(south + north) / 2, (west + east) / 2],
        tiles=None,
        zoom_start=15,
        control_scale=True,
        maxZoom=style.max_zoom,
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
    figure.html.add_child(
        Element(
            f'<script type="application/json" id="{_DATA_ELEMENT_ID}">{_script_json(payload)}'
            "</script>"
        ),
        name="hp_data",
    )

    if base_tiles_url is not None:
        attribution = base_tiles_attribution or "base map: " + base_tiles_url.split("/")[2]
        folium.TileLayer(
            tiles=base_tiles_url,
            attr=html.escape(attribution),
            name="base map",
            max_zoom=style.max_zoom,
            max_native_zoom=19,
            overlay=False,
            control=True,
        ).add_to(fmap)
    markers = _HouseMarkers(_DATA_ELEMENT_ID, name="houses")
    markers.add_to(fmap)
    _HeatmapOverlays(markers, name="relevance heatmaps", show=show_heatmaps).add_to(fmap)
    folium.LayerControl(position="topright", collapsed=False).add_to(fmap)
    _FitView(markers, style.fit_max_zoom).add_to(fmap)

    _stable_ids(figure)
    page = figure.render()
    return atomic_write_bytes(Path(out_html), page.encode("utf-8"))
