"""Folder maps for large inputs: houses split into spatial chunks that load when in view.

This module owns the data side of a map written as a folder (``render_valuation_map`` above
``folder_threshold`` houses):

* ``spatial_chunks`` splits the houses with a quadtree on latitude/longitude until no leaf
  holds more than ``MapStyle.chunk_houses`` houses (leaves in Z order, so neighbouring
  chunks have neighbouring numbers);
* ``write_chunks`` writes each chunk as a *script* ``data/chunk_0001.js`` that calls
  ``window.houseprice.registerChunk(id, {...})``: the page adds a ``<script>`` tag for a chunk
  when it comes into view, which works from ``file://`` with no server (``fetch`` would not);
* ``chunk_summaries`` is what the page itself carries per chunk: file, footprint bounds,
  house count, counts per outcome and centre, enough to draw the city-wide overview.

Thumbnails are separate files (``houseprice.maps.images``), loaded by the browser only when a
popup opens or an overlay is drawn. Chunk files hold JSON produced by ``json.dumps`` inside a
script file (never inside an HTML element), so no HTML escaping of ``<`` is needed there. The
house records are a single-file map's (``houseprice.maps.payload``) with two savings: the
footprint ``b`` is left out (the page computes it from the position and ``tile_meters``), and
the popup HTML is packed: the markup fragments every popup repeats (``INFO_FRAGMENTS``) are
replaced by ``<`` + one character of ``TOKENS``. That is unambiguous because the popup HTML
is generated here with lowercase tags only and every text in it went through
``html.escape``, so ``<`` followed by a digit or capital never occurs otherwise; the page
receives the fragment table and expands ``info`` when a popup opens (``unpack_info`` is the
reference). About 45% of a chunk's bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from houseprice.maps.payload import OUTCOMES, MapStyle, ValuationHouses

__all__ = [
    "CHUNK_DIR",
    "INFO_FRAGMENTS",
    "REGISTER_FUNCTION",
    "TOKENS",
    "chunk_summaries",
    "folder_page_data",
    "pack_info",
    "spatial_chunks",
    "unpack_info",
    "write_chunks",
]

CHUNK_DIR = "data"
REGISTER_FUNCTION = "window.houseprice.registerChunk"
_MAX_DEPTH = 24  # a quadtree leaf this deep is ~1 m wide: identical positions stop the split
TOKENS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Markup repeated in every popup (payload._info_html, contributions.contribution_html), longest
# and most specific first: packing replaces them in this order.
INFO_FRAGMENTS: tuple[str, ...] = (
    '<div class="hp-contrib"><div class="hp-c-title">price = base + contributions</div>'
    '<table class="hp-c-table"><tbody><tr class="hp-c-base"><th>base price</th><td></td><td>',
    '</span></div><table class="hp-table"><tbody><tr><th>predicted</th><td>',
    '</td></tr><tr class="hp-c-up"><th>',
    '</td></tr><tr class="hp-c-down"><th>',
    '</td></tr><tr class="hp-c-unused"><th>',
    '</th><td class="hp-c-bar"><i style="width:',
    '%"></i></td><td>',
    "</td></tr></tbody></table></div>",
    "</td></tr></tbody></table>",
    "</td></tr><tr><th>",
    "</th><td></td><td>",
    "</th><td>",
    '<div class="hp-head"><b>',
    '</b><span class="hp-badge" style="background:',
    "visual features",
)
_TOKEN = re.compile("<([" + TOKENS + "])")


def pack_info(info: str) -> str:
    """Popup HTML with every ``INFO_FRAGMENTS`` entry replaced by its ``<`` + token."""
    for token, fragment in zip(TOKENS, INFO_FRAGMENTS, strict=False):
        info = info.replace(fragment, "<" + token)
    return info


def unpack_info(packed: str) -> str:
    """The inverse of ``pack_info`` (what the page script does when a popup opens)."""
    return _TOKEN.sub(lambda m: INFO_FRAGMENTS[TOKENS.index(m.group(1))], packed)


def spatial_chunks(
    latitude: np.ndarray, longitude: np.ndarray, max_houses: int
) -> list[np.ndarray]:
    """Row indices of each quadtree leaf (non-empty, Z order); each holds <= ``max_houses``."""
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    leaves: list[np.ndarray] = []

    def split(rows: np.ndarray, box: tuple[float, float, float, float], depth: int) -> None:
        if len(rows) == 0:
            return
        if len(rows) <= max_houses or depth >= _MAX_DEPTH:
            leaves.append(rows)
            return
        south, west, north, east = box
        mid_lat, mid_lon = (south + north) / 2, (west + east) / 2
        upper = lat[rows] >= mid_lat
        right = lon[rows] >= mid_lon
        for is_upper, is_right, sub in (
            (False, False, (south, west, mid_lat, mid_lon)),
            (False, True, (south, mid_lon, mid_lat, east)),
            (True, False, (mid_lat, west, north, mid_lon)),
            (True, True, (mid_lat, mid_lon, north, east)),
        ):
            split(rows[(upper == is_upper) & (right == is_right)], sub, depth + 1)

    box = (float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max()))
    split(np.arange(len(lat)), box, 0)
    return leaves


def _chunk_file(chunk_id: int) -> str:
    return f"{CHUNK_DIR}/chunk_{chunk_id:04d}.js"


def _chunk_payload(houses: ValuationHouses, rows: np.ndarray) -> dict[str, Any]:
    """The houses of one chunk, their image indices rewritten into a chunk-local table."""
    local: dict[int, int] = {}
    images: list[list[Any]] = []
    records = []
    for row in rows:
        record = dict(houses.houses[int(row)])
        del record["b"]
        record["info"] = pack_info(record["info"])
        for key in ("t", "h"):
            index = record[key]
            if index >= 0:
                if index not in local:
                    local[index] = len(images)
                    images.append(houses.images[index])
                record[key] = local[index]
        records.append(record)
    return {"images": images, "houses": records}


def write_chunks(folder: Path, houses: ValuationHouses, chunks: list[np.ndarray]) -> None:
    """Write ``data/chunk_<id>.js`` for every chunk (ids start at 1, in ``chunks`` order)."""
    (folder / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    for chunk_id, rows in enumerate(chunks, start=1):
        payload = json.dumps(
            _chunk_payload(houses, rows),
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        )
        text = f"{REGISTER_FUNCTION}({chunk_id},{payload});\n"
        (folder / _chunk_file(chunk_id)).write_text(text, encoding="utf-8")


def chunk_summaries(houses: ValuationHouses, chunks: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per chunk: id, file, footprint bounds, house count, outcome counts and centre."""
    assert houses.outcomes is not None
    summaries = []
    for chunk_id, rows in enumerate(chunks, start=1):
        bounds = houses.bounds[rows]  # (n, 4) south, west, north, east
        counts = np.bincount(houses.outcomes[rows], minlength=len(OUTCOMES))
        lat = [houses.houses[int(r)]["lat"] for r in rows]
        lon = [houses.houses[int(r)]["lon"] for r in rows]
        summaries.append(
            {
                "id": chunk_id,
                "file": _chunk_file(chunk_id),
                "b": [
                    round(float(bounds[:, 0].min()), 7),
                    round(float(bounds[:, 1].min()), 7),
                    round(float(bounds[:, 2].max()), 7),
                    round(float(bounds[:, 3].max()), 7),
                ],
                "n": len(rows),
                "counts": [int(c) for c in counts],
                "c": [round(float(np.mean(lat)), 7), round(float(np.mean(lon)), 7)],
            }
        )
    return summaries


def folder_page_data(
    data: dict[str, Any],
    houses: ValuationHouses,
    chunks: list[np.ndarray],
    *,
    tile_meters: float,
    style: MapStyle,
) -> dict[str, Any]:
    """A single-file payload (``payload.page_data``) turned into a folder map's ``index.html``
    payload: houses and images leave (they are in the chunks), chunk summaries, the extent,
    the view budget, the packing table and the footprint size come in."""
    out = {k: v for k, v in data.items() if k not in ("houses", "images")}
    out.update(
        chunks=chunk_summaries(houses, chunks),
        extent=[round(v, 7) for v in houses.extent],
        viewBudget=style.view_budget,
        fragments=list(INFO_FRAGMENTS),
        tokens=TOKENS,
        tileMeters=float(tile_meters),
        fitMaxZoom=style.fit_max_zoom,
    )
    return out
