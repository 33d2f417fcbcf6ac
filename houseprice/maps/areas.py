"""Area layers of a valuation map: per grid cell, how good the valuations are and what images add.

This module owns the regular square grid laid over the houses and the three area overlays
computed on it:

* **median error**: the median of ``predicted / price − 1`` of the cell's houses with a price
  (blue = under-predicted, red = over-predicted, as the markers);
* **within ±10%**: the share of those houses whose error is within the tolerance;
* **image contribution**: the mean ``contrib_image`` (money the tile adds or removes,
  houseprice/pricing/contributions.py) of the cell's houses that had a usable tile.

A cell is drawn only when at least ``MapStyle.area_min_houses`` houses have the value. The
grid is square on the ground: metres are measured on an equirectangular projection at the
houses' mean latitude (mean Earth radius), and the cell side is chosen from the data extent
(about ``MapStyle.area_cells_across`` cells across the longer side, rounded to 1-2-5 × 10^k m)
unless given. Colours and the legends are computed here; ``valuation_map_areas.js`` only draws.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_hex

from houseprice.errors import UserInputError
from houseprice.maps.contributions import signed_money
from houseprice.maps.payload import EARTH_RADIUS_M, MapStyle

__all__ = ["AreaGrid", "AreaLayer", "area_grid", "area_layers", "nice_cell_meters"]

_LEGEND_STOPS = 9


@dataclass(frozen=True)
class AreaGrid:
    """Cell of every house on a square grid (``cell_meters`` on the ground)."""

    cell_meters: float
    origin: tuple[float, float]  # south-west corner: latitude, longitude (degrees)
    lat_step: float  # degrees of latitude per cell
    lon_step: float  # degrees of longitude per cell (at the mean latitude)
    cells: np.ndarray  # (N, 2) int64: row (south -> north), column (west -> east)

    def bounds(self, row: int, column: int) -> list[float]:
        """South, west, north, east of one cell, in degrees."""
        south = self.origin[0] + row * self.lat_step
        west = self.origin[1] + column * self.lon_step
        return [round(v, 7) for v in (south, west, south + self.lat_step, west + self.lon_step)]


@dataclass(frozen=True)
class AreaLayer:
    """One toggleable overlay: its layer-control name, cells and legend."""

    key: str  # "error", "accuracy" or "image"
    name: str  # layer control label
    cells: list[list[Any]]  # [south, west, north, east, fill colour, tooltip text (escaped)]
    legend_html: str


def nice_cell_meters(extent_meters: float, cells_across: int) -> float:
    """``extent / cells_across`` rounded to 1, 2 or 5 × 10^k metres (at least 10 m)."""
    raw = max(extent_meters / max(cells_across, 1), 10.0)
    power = 10.0 ** math.floor(math.log10(raw))
    return float(min((m * power for m in (1, 2, 5, 10)), key=lambda v: abs(math.log(v / raw))))


def area_grid(
    latitude: np.ndarray, longitude: np.ndarray, *, cell_meters: float | None, cells_across: int
) -> AreaGrid:
    """The grid over the houses: given ``cell_meters`` or one from the data extent."""
    lat = np.asarray(latitude, dtype=np.float64)  # (N,)
    lon = np.asarray(longitude, dtype=np.float64)  # (N,)
    lat0 = float(np.radians(lat.mean()))
    south, west = float(lat.min()), float(lon.min())
    y = np.radians(lat - south) * EARTH_RADIUS_M  # (N,) metres north of the origin
    x = np.radians(lon - west) * EARTH_RADIUS_M * math.cos(lat0)  # (N,) metres east
    if cell_meters is None:
        cell_meters = nice_cell_meters(float(max(x.max(), y.max(), 1.0)), cells_across)
    elif not (math.isfinite(cell_meters) and cell_meters > 0):
        raise UserInputError(f"area_cell_meters must be a positive number, got {cell_meters!r}")
    cells = np.stack([np.floor(y / cell_meters), np.floor(x / cell_meters)], axis=1)
    lat_step = math.degrees(cell_meters / EARTH_RADIUS_M)
    return AreaGrid(
        cell_meters=float(cell_meters),
        origin=(south, west),
        lat_step=lat_step,
        lon_step=lat_step / math.cos(lat0),
        cells=cells.astype(np.int64),
    )


def _legend(title: str, cmap: str, low: float, high: float, ticks: list[str], note: str) -> str:
    """A colour bar from ``low`` to ``high`` (normalised positions) with three tick labels."""
    colours = colormaps[cmap](np.linspace(low, high, _LEGEND_STOPS))
    gradient = ", ".join(
        f"{to_hex(c)} {100 * p:.0f}%"
        for c, p in zip(colours, np.linspace(0, 1, _LEGEND_STOPS), strict=True)
    )
    spans = "".join(f"<span>{html.escape(t)}</span>" for t in ticks)
    return (
        f'<div class="hp-legend-sub"><b>{html.escape(title)}</b></div>'
        f'<div class="hp-colorbar" style="background: linear-gradient(to right, {gradient})">'
        f'</div><div class="hp-colorbar-ticks">{spans}</div>'
        f'<div class="hp-legend-note">{html.escape(note)}</div>'
    )


def _cells(
    grid: AreaGrid, values: pd.Series, min_houses: int, reduce: str
) -> list[tuple[list[float], float, int]]:
    """(bounds, value, houses) of every cell with at least ``min_houses`` finite values."""
    finite = values.notna() & np.isfinite(values.to_numpy(dtype=np.float64))
    table = pd.DataFrame(
        {"row": grid.cells[:, 0], "col": grid.cells[:, 1], "v": values.to_numpy(dtype=float)}
    )[finite.to_numpy()]
    grouped = table.groupby(["row", "col"], sort=True)["v"].agg([reduce, "size"])
    grouped = grouped[grouped["size"] >= min_houses]
    return [
        (grid.bounds(int(r), int(c)), float(v), int(n))
        for (r, c), v, n in zip(grouped.index, grouped[reduce], grouped["size"], strict=True)
    ]


def _layer(
    key: str,
    name: str,
    cells: list[tuple[list[float], float, int]],
    *,
    cmap: str,
    scale: tuple[float, float],
    text: Any,
    legend_title: str,
    ticks: list[str],
    note: str,
) -> AreaLayer:
    low, high = scale
    colormap = colormaps[cmap]
    drawn = [
        [
            *bounds,
            to_hex(colormap(float(np.clip((v - low) / (high - low), 0, 1)))),
            html.escape(f"{text(v)} · {n:,} houses"),
        ]
        for bounds, v, n in cells
    ]
    return AreaLayer(key, name, drawn, _legend(legend_title, cmap, 0.0, 1.0, ticks, note))


def area_layers(
    frame: pd.DataFrame, *, cell_meters: float | None, style: MapStyle
) -> list[AreaLayer]:
    """The area overlays of a ``checked_frame`` (a layer without any drawable cell is left out).

    Raises:
        UserInputError: ``cell_meters`` is not a positive number.
    """
    grid = area_grid(
        frame["latitude"].to_numpy(),
        frame["longitude"].to_numpy(),
        cell_meters=cell_meters,
        cells_across=style.area_cells_across,
    )
    n_min = style.area_min_houses
    note = f"cells of {grid.cell_meters:,.0f} m; cells with fewer than {n_min} houses not drawn"
    error = frame["predicted_price"] / frame["price"] - 1.0  # NaN without a price
    layers: list[AreaLayer] = []
    cells = _cells(grid, error, n_min, "median")
    if cells:
        span = max(0.05, min(0.5, max(abs(v) for _, v, _ in cells)))
        layers.append(
            _layer(
                "error",
                "area: median error",
                cells,
                cmap="RdBu_r",
                scale=(-span, span),
                text=lambda v: f"median error {v:+.1%}",
                legend_title="median error (predicted / sold − 1)",
                ticks=[f"{-span:+.0%} under", "0", f"{span:+.0%} over"],
                note=note,
            )
        )
    within = (error.abs() <= style.tolerance + 1e-12).where(error.notna()).astype(float)
    cells = _cells(grid, within, n_min, "mean")
    if cells:
        tol = f"{style.tolerance:.0%}"
        layers.append(
            _layer(
                "accuracy",
                f"area: within ±{tol}",
                cells,
                cmap="RdYlGn",
                scale=(0.0, 1.0),
                text=lambda v: f"{v:.0%} within ±{tol}",
                legend_title=f"share of houses within ±{tol} of the sold price",
                ticks=["0%", "50%", "100%"],
                note=note,
            )
        )
    if "contrib_image" in frame.columns and "base_price" in frame.columns:
        image = pd.to_numeric(frame["contrib_image"], errors="coerce")
        cells = _cells(grid, image, n_min, "mean")
        if cells:
            span = max(1.0, max(abs(v) for _, v, _ in cells))
            layers.append(
                _layer(
                    "image",
                    "area: image contribution",
                    cells,
                    cmap="PiYG",
                    scale=(-span, span),
                    text=lambda v: f"image adds {signed_money(v)} on average",
                    legend_title="mean money the image adds",
                    ticks=[signed_money(-span), "0", signed_money(span)],
                    note=note + "; houses without a usable tile left out",
                )
            )
    return layers
