"""What a valuation map shows, as data: outcomes, thumbnails, popups and the page's JSON.

This module owns everything between a checked valuations table (``houseprice.maps.table``)
and the JSON block the page script (``valuation_map.js``) reads: classifying each
prediction's outcome, the tile footprint of each house, downscaling thumbnails into a shared
image table (``houseprice.maps.images``), formatting the popup text
(everything from the input goes through ``html.escape``; the contribution chart comes from
``houseprice.maps.contributions``) and encoding the payload so that it is safe inside a
``<script>`` element.
It knows nothing about folium: ``houseprice.maps.layers`` and ``houseprice.maps.render`` do.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from houseprice.errors import UserInputError
from houseprice.maps.contributions import contribution_html
from houseprice.maps.images import ImageTable
from houseprice.maps.table import Problems, attribute_columns, contribution_columns, is_missing

__all__ = [
    "OUTCOMES",
    "MapStyle",
    "Outcome",
    "ValuationHouses",
    "classify_outcome",
    "collect_houses",
    "page_data",
    "script_json",
    "tile_footprint_bounds",
]

# IUGG mean Earth radius (m): ground metres -> degrees on a sphere; within 0.5% of WGS84
# everywhere, i.e. a few centimetres over one tile.
EARTH_RADIUS_M = 6_371_008.8
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
    area_min_houses: int = 5  # area cells with fewer houses (with a value) are not drawn
    area_cells_across: int = 30  # default area cell size: the data extent / this
    area_opacity: float = 0.55  # fill opacity of the area cells
    chunk_houses: int = 1000  # a folder map's spatial chunks hold at most this many houses
    view_budget: int = 15_000  # a folder map loads chunks once at most this many are in view


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
        raise UserInputError(f"tile_meters must be a positive number of metres, got {tile_meters}")
    lat = np.atleast_1d(np.asarray(latitude, dtype=np.float64))  # (N,)
    lon = np.atleast_1d(np.asarray(longitude, dtype=np.float64))  # (N,)
    if np.any(np.abs(lat) >= 89.0):
        raise UserInputError("tile footprints are undefined within 1 degree of the poles")
    half_lat = np.degrees(tile_meters / 2.0 / EARTH_RADIUS_M)  # scalar degrees
    half_lon = half_lat / np.cos(np.radians(lat))  # (N,)
    return np.stack([lat - half_lat, lon - half_lon, lat + half_lat, lon + half_lon], axis=1)


# --------------------------------------------------------------------------------------------
# popup text (everything from the data goes through html.escape)


def _format_value(value: Any) -> str:
    """Human text for an attribute value (not yet escaped)."""
    if is_missing(value):
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


def range_html(record: dict[str, Any]) -> str:
    """The calibrated price range as a bar (valuation and sale marked), or "" without one."""
    values = [record.get(k) for k in ("price_low", "price_high", "predicted_price")]
    if any(is_missing(v) for v in values):
        return ""
    low, high, predicted = (float(v) for v in values)
    sold = record.get("price")
    marks = [predicted] + ([float(sold)] if not is_missing(sold) else [])
    lo, hi = min(low, *marks), max(high, *marks)
    span = (hi - lo) or 1.0

    def at(v: float) -> str:
        return f"{100 * (v - lo) / span:.1f}%"

    level = record.get("interval_level")
    label = "range" if is_missing(level) else f"{100 * float(level):.0f}% range"
    grade = record.get("confidence")
    fsd = record.get("fsd")
    extra = "" if is_missing(fsd) else f" · FSD {float(fsd):.2f}"
    extra += "" if is_missing(grade) else f" · confidence {grade}"
    sold_mark = (
        f'<b class="hp-r-sold" style="left:{at(marks[1])}" title="sold"></b>'
        if len(marks) > 1
        else ""
    )
    return (
        f'<div class="hp-range"><div>{html.escape(label)} {_money(low)} – {_money(high)}'
        f"{html.escape(extra)}</div>"
        f'<div class="hp-r-bar"><i style="left:{at(low)};width:{at(lo + high - low)}"></i>'
        f'<b class="hp-r-pred" style="left:{at(predicted)}" title="valuation"></b>'
        f"{sold_mark}</div></div>"
    )


def _info_html(
    record: dict[str, Any],
    attributes: Iterable[str],
    outcome: Outcome,
    contributions: list[str],
) -> str:
    """The popup's text: id, outcome badge, prices, error, visual features, attributes, chart."""
    predicted = float(record["predicted_price"])
    price = float(record["price"])
    known = math.isfinite(price)
    rows = [
        _row("predicted", _money(predicted)),
        _row("sold", _money(price) if known else "unknown"),
        _row("error", f"{predicted / price - 1.0:+.1%}" if known else _MISSING_TEXT),
    ]
    used = record.get("used_visual")
    if not is_missing(used):
        rows.append(_row("visual features", "used" if bool(used) else "not used"))
    rows.extend(_row(str(column), _format_value(record[column])) for column in attributes)
    head = (
        f'<div class="hp-head"><b>{html.escape(record["house_id"])}</b>'
        f'<span class="hp-badge" style="background:{outcome.color}">'
        f"{html.escape(outcome.badge)}"
        "</span></div>"
    )
    chart = contribution_html(record, contributions)
    bar = range_html(record)
    return f'{head}<table class="hp-table"><tbody>{"".join(rows)}</tbody></table>{bar}{chart}'


# --------------------------------------------------------------------------------------------
# the payload


@dataclass(frozen=True)
class ValuationHouses:
    """The houses of a checked frame as the page script reads them, plus their summary."""

    houses: list[dict[str, Any]]  # one JSON record per house (keys documented in _house)
    images: list[list[Any]]  # image table: [data URI or relative URL, width, height]
    counts: list[int]  # houses per outcome, in OUTCOMES order
    bounds: np.ndarray  # (N, 4) tile footprints: south, west, north, east
    outcomes: np.ndarray | None = None  # (N,) index into OUTCOMES of each house

    @property
    def n_heatmaps(self) -> int:
        """Number of houses with a heatmap overlay."""
        return sum(1 for house in self.houses if house["h"] >= 0)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """South, west, north, east of all footprints together."""
        south, west = float(self.bounds[:, 0].min()), float(self.bounds[:, 1].min())
        north, east = float(self.bounds[:, 2].max()), float(self.bounds[:, 3].max())
        return south, west, north, east


def _house(
    record: dict[str, Any],
    outcome_index: int,
    tile_index: int,
    heat_index: int,
    bounds: np.ndarray,
    attributes: list[str],
    contributions: list[str],
) -> dict[str, Any]:
    """One house's JSON record: position, outcome, image indices, footprint, label, popup."""
    outcome = OUTCOMES[outcome_index]
    return {
        "lat": round(float(record["latitude"]), 7),
        "lon": round(float(record["longitude"]), 7),
        "o": outcome_index,  # index into OUTCOMES
        "t": tile_index,  # index into the image table, -1 when there is no tile
        "h": heat_index,  # same for the heatmap overlay
        "b": [round(float(v), 7) for v in bounds],  # footprint: south, west, north, east
        "label": html.escape(f"{record['house_id']} · {outcome.label}"),
        "info": _info_html(record, attributes, outcome, contributions),
    }


def collect_houses(
    frame: pd.DataFrame,
    *,
    tile_meters: float,
    thumb_px: int,
    style: MapStyle,
    progress: bool,
    image_folder: Path | None = None,
) -> ValuationHouses:
    """Classify, thumbnail and describe every house of a ``checked_frame``.

    Thumbnails become ``data:`` URIs, or files under ``image_folder`` (``images.ImageTable``).

    Raises:
        UserInputError: missing or unreadable image files and heatmap PNGs that are not
            pixel-aligned squares (all listed at once, with row, house_id and column).
    """
    attributes = attribute_columns(frame)
    contributions = contribution_columns(frame)
    bounds = tile_footprint_bounds(
        frame["latitude"].to_numpy(), frame["longitude"].to_numpy(), tile_meters
    )  # (N, 4) south, west, north, east
    problems = Problems()
    images = ImageTable(thumb_px, style.jpeg_quality, image_folder)
    houses: list[dict[str, Any]] = []
    counts = [0] * len(OUTCOMES)
    outcomes = np.zeros(len(frame), dtype=np.int64)
    records = frame.to_dict(orient="records")
    for row, record in enumerate(tqdm(records, desc="map thumbnails", disable=not progress)):
        house_id = record["house_id"]
        outcome_key = classify_outcome(
            record["predicted_price"], record["price"], tolerance=style.tolerance
        )
        outcome_index = _OUTCOME_INDEX[outcome_key]
        counts[outcome_index] += 1
        outcomes[row] = outcome_index
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
            _house(
                record,
                outcome_index,
                tile_index,
                heat_index,
                bounds[row],
                attributes,
                contributions,
            )
        )
    problems.raise_if_any()
    return ValuationHouses(
        houses=houses, images=images.entries, counts=counts, bounds=bounds, outcomes=outcomes
    )


def page_data(
    houses: ValuationHouses,
    *,
    legend_html: str,
    cluster_threshold: int,
    thumb_px: int,
    style: MapStyle,
) -> dict[str, Any]:
    """The JSON payload ``valuation_map.js`` reads (``houseLayers``), legend HTML included."""
    return {
        "cluster": len(houses.houses) > cluster_threshold,
        "clusterOptions": {
            "disableClusteringAtZoom": style.disable_clustering_at_zoom,
            "maxClusterRadius": style.max_cluster_radius,
            "showCoverageOnHover": False,
            "chunkedLoading": True,
        },
        "outcomes": [{"key": o.key, "color": o.color} for o in OUTCOMES],
        "images": houses.images,
        "houses": houses.houses,
        "thumbPx": thumb_px,
        "heatmapOpacity": style.heatmap_opacity,
        "legend": legend_html,
    }


def script_json(payload: dict[str, Any]) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survives, so nothing can close the tag."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
