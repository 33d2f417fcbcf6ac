"""Parameters of the synthetic city: :class:`CityConfig` and the fixed constants of the market.

This module owns every number the generated city depends on: world size and street grid, lots
and houses, river / highway / parks, the market (price level, structure, trend, seasonality),
the visual price drivers and the listing noise (see ``data_specs/synth_city.md``), plus the
map anchor (city centre), the sale period and the column lists of the written tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from houseprice.data.houses.schema import HOUSE_COLUMNS as _HOUSE_SCHEMA
from houseprice.errors import UserInputError

#: The hidden visual drivers an oracle regressor is given (listed in dataset.json truth).
ORACLE_COLUMNS = [
    "has_pool",
    "lot_area_m2",
    "tree_cover",
    "water_front",
    "park_adjacent",
    "highway_adjacent",
]
LAT0, LON0 = 43.70, -79.40  # city centre (a Toronto-like latitude)
FIRST_DAY, LAST_DAY = np.datetime64("2017-01-01"), np.datetime64("2019-04-30")
SQFT_PER_M2 = 10.763910417
#: Columns of ``houses.csv``, in order: every column of the house-record contract.
HOUSE_COLUMNS = [c.name for c in _HOUSE_SCHEMA]


@dataclass(frozen=True)
class CityConfig:
    """World and price parameters of the synthetic city (metres; effects in log price)."""

    # --- world size and street grid
    lots_per_sale: float = 2.0  # lots in the sale area per sold house (others are neighbours)
    m2_per_lot: float = 1300.0  # first guess of city area per lot, refined automatically
    min_world_m: float = 900.0
    edge_margin_m: float = 60.0  # sold houses keep this far from the world edge (tile fits)
    arterial_spacing_m: tuple[float, float] = (550.0, 800.0)
    arterial_row_m: float = 22.0  # right-of-way width (asphalt + boulevards + sidewalks)
    arterial_asphalt_m: float = 14.0
    local_row_m: float = 16.0
    local_asphalt_m: float = 8.5
    block_depth_m: tuple[float, float] = (62.0, 104.0)  # two rows of lots back to back
    block_length_m: tuple[float, float] = (170.0, 300.0)
    min_lot_depth_m: float = 28.0
    min_cut_lot_depth_m: float = 24.0  # lots cut short by the river or highway keep this depth
    # --- lots, houses, pools, trees
    lot_width_mean_m: float = 16.0
    lot_width_field_sd_log: float = 0.22  # neighbourhood-to-neighbourhood spread
    lot_width_sd_log: float = 0.28  # house-to-house spread within a row
    lot_width_range_m: tuple[float, float] = (9.0, 40.0)
    pool_probability: float = 0.22
    pool_width_m: tuple[float, float] = (5.0, 7.0)
    pool_length_m: tuple[float, float] = (8.0, 13.0)
    lot_tree_density: float = 0.012  # trees per m2 of lot at greenery 1
    tree_radius_m: tuple[float, float] = (2.3, 5.0)
    # --- river, highway, parks
    river_width_m: tuple[float, float] = (40.0, 70.0)
    creek_width_m: tuple[float, float] = (14.0, 22.0)
    bank_m: float = 5.0
    highway_width_m: float = 32.0  # pavement: 2 x 3 lanes, shoulders, median
    verge_m: float = 8.0
    park_block_fraction: float = 0.10
    park_clearance_m: float = 25.0  # parks keep this far from water and highway verges
    # --- market
    base_price: float = 1_050_000.0  # CAD at level 0, 2,000 sqft, 3 bed, 2.5 bath, Jan 2017
    level_sd: float = 0.22  # neighbourhood price level spread
    area_elasticity: float = 0.55
    bedroom_effect: float = 0.03
    bathroom_effect: float = 0.05
    trend_months: tuple[float, ...] = (0.0, 3.5, 8.0, 12.0, 18.0, 24.0, 28.0)
    trend_log: tuple[float, ...] = (0.0, 0.13, 0.03, 0.0, 0.02, 0.02, 0.045)
    season_amplitude: float = 0.02  # peaks in spring
    # --- visual drivers (visible only in the tile)
    pool_effect: float = 0.11
    lot_elasticity: float = 0.27  # times log(lot area / lot_ref_m2)
    lot_ref_m2: float = 600.0
    tree_cover_effect: float = 0.36  # times the canopy share of the lot
    water_front_effect: float = 0.20
    water_front_m: float = 28.0  # house centre to water
    park_effect: float = 0.08
    park_adjacent_m: float = 30.0  # house centre to park edge
    highway_effect: float = -0.15
    highway_adjacent_m: float = 28.0  # house centre to highway pavement
    # --- noise
    price_noise_sd: float = 0.09
    missing_rate: float = 0.02  # per optional attribute
    bedroom_error_rate: float = 0.02
    bathroom_error_rate: float = 0.02
    area_error_rate: float = 0.03
    evidence_min_effect: float = 0.05  # |log effect| for a driver's objects to be evidence
    # --- rendering
    supersample: int = 2

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CityConfig:
        """Config from a mapping such as ``dataset.json["generator"]["config"]`` (lists ok)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserInputError(
                f"unknown CityConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def check(self, tile_meters: float) -> None:
        """Raise UserInputError if the parameters are inconsistent with each other or the tile."""
        half = tile_meters / 2
        for name in ("water_front_m", "park_adjacent_m", "highway_adjacent_m"):
            v = getattr(self, name)
            if v > half - 3.0:
                raise UserInputError(
                    f"CityConfig.{name}={v} m must be <= tile_meters/2 - 3 = {half - 3.0:g} m so "
                    f"the driver is visible in the tile; raise tile_meters or lower {name}"
                )
        if half + 2.0 > self.edge_margin_m:
            raise UserInputError(
                f"tile_meters={tile_meters} needs CityConfig.edge_margin_m >= {half + 2.0:g} "
                f"(now {self.edge_margin_m}) so every tile lies inside the world"
            )
        if len(self.trend_months) != len(self.trend_log) or list(self.trend_months) != sorted(
            self.trend_months
        ):
            raise UserInputError(
                "CityConfig.trend_months must be increasing and as long as trend_log"
            )
        if self.supersample < 1:
            raise UserInputError(f"CityConfig.supersample must be >= 1, got {self.supersample}")
        if self.lots_per_sale < 1.0:
            raise UserInputError(f"CityConfig.lots_per_sale must be >= 1, got {self.lots_per_sale}")


__all__ = [
    "FIRST_DAY",
    "HOUSE_COLUMNS",
    "LAST_DAY",
    "LAT0",
    "LON0",
    "ORACLE_COLUMNS",
    "SQFT_PER_M2",
    "CityConfig",
]
