"""The synthetic city's market: sold houses, their attributes and prices, and the tile masks.

This module owns :func:`simulate_city` (world + sales + prices + hidden drivers, no pictures)
and :func:`tile_masks` (the label mask and the evidence mask of one house's tile, cut from the
world's label raster). See ``data_specs/synth_city.md`` for the model in words.

Log price = neighbourhood level (smooth field of location) + f(area, bedrooms, bathrooms) +
market trend + seasonality + visual drivers (pool, lot area, tree cover, water frontage,
park adjacency, highway adjacency; visible only in the tile) + noise. Attributes are then
corrupted as real listings are (a few % missing or wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from houseprice.errors import UserInputError
from houseprice.synth.city import render
from houseprice.synth.city.config import FIRST_DAY, LAST_DAY, LAT0, LON0, SQFT_PER_M2, CityConfig
from houseprice.synth.city.objects import Lots
from houseprice.synth.city.world import World, build_world


@dataclass
class SyntheticCity:
    """A simulated city and its sales; ``houses`` is the public table, ``drivers`` the truth."""

    config: CityConfig
    seed: int
    world: World
    lot: np.ndarray  # (N,) lot index of each sold house, rows aligned with ``houses``
    houses: pd.DataFrame
    drivers: pd.DataFrame
    effects: dict[str, np.ndarray] = field(default_factory=dict)  # driver -> (N,) log effect


@dataclass
class _Listing:
    """Attributes as listed: true values with some missing or wrong (see :func:`_corrupt`)."""

    bed: np.ndarray
    bath: np.ndarray
    area: np.ndarray
    bed_wrong: np.ndarray
    bath_wrong: np.ndarray
    area_wrong: np.ndarray
    missing: list[np.ndarray]  # bedrooms, bathrooms, area


# ----------------------------------------------------------------------------- market


def _metres_to_degrees(
    x: np.ndarray, y: np.ndarray, size_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """World metres (x east, y south, city centre at LAT0/LON0) to WGS84 degrees."""
    phi0 = math.radians(LAT0)
    m_per_deg_lat = 111132.954 - 559.822 * math.cos(2 * phi0) + 1.175 * math.cos(4 * phi0)
    lat = LAT0 + (size_m / 2 - y) / m_per_deg_lat
    phi = np.radians(lat)
    m_per_deg_lon = 111412.84 * np.cos(phi) - 93.5 * np.cos(3 * phi)
    lon = LON0 + (x - size_m / 2) / m_per_deg_lon
    return lat, lon


def _sale_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sale dates (datetime64[D]) with more sales in spring and in the 2017 boom."""
    days = np.arange(FIRST_DAY, LAST_DAY + 1)
    month = days.astype("datetime64[M]").astype(np.int64) % 12
    weight = 1.0 + 0.45 * np.cos(2 * np.pi * (month - 4.0) / 12.0)
    weight *= np.where(days < np.datetime64("2017-06-01"), 1.3, 1.0)
    return np.sort(rng.choice(days, n, p=weight / weight.sum()))


def _months(days: np.ndarray) -> np.ndarray:
    return (days - FIRST_DAY).astype(np.int64) / 30.4375


def _true_attributes(
    rng: np.random.Generator, L: Lots, lot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True (area sqft, bedrooms, bathrooms) of the sold houses, from the house itself."""
    n = len(lot)
    footprint = L.footprint_m2[lot]
    storeys = L.storeys[lot]
    area_true = footprint * storeys * rng.uniform(0.85, 0.98, n) * SQFT_PER_M2
    bed_true = np.clip(np.rint(1.0 + area_true / 850.0 + rng.normal(0, 0.6, n)), 1, 7).astype(int)
    bath_true = np.clip(
        np.rint(2 * (0.5 * bed_true + area_true / 2500.0 + rng.normal(0, 0.45, n))) / 2, 1.0, 6.0
    )
    return area_true, bed_true, bath_true


def _visual_effects(
    L: Lots, lot: np.ndarray, cfg: CityConfig
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(visual drivers, their log effects) of the sold houses; visible only in the tile."""
    lot_area = L.area_m2[lot]
    drivers = {
        "has_pool": L.has_pool[lot],
        "lot_area_m2": lot_area,
        "tree_cover": L.tree_cover[lot],
        "water_front": L.water_m[lot] <= cfg.water_front_m,
        "park_adjacent": L.park_m[lot] <= cfg.park_adjacent_m,
        "highway_adjacent": L.highway_m[lot] <= cfg.highway_adjacent_m,
    }
    effects = {
        "pool": cfg.pool_effect * drivers["has_pool"],
        "lot": cfg.lot_elasticity * np.log(lot_area / cfg.lot_ref_m2),
        "trees": cfg.tree_cover_effect * drivers["tree_cover"],
        "water": cfg.water_front_effect * drivers["water_front"],
        "park": cfg.park_effect * drivers["park_adjacent"],
        "highway": cfg.highway_effect * drivers["highway_adjacent"],
    }
    return drivers, effects


def _corrupt(
    rng: np.random.Generator,
    bed_true: np.ndarray,
    bath_true: np.ndarray,
    area_true: np.ndarray,
    cfg: CityConfig,
) -> _Listing:
    """Listing-style corruption: missing and wrong values."""
    n = len(bed_true)
    bed = bed_true.astype(float)
    bath = bath_true.copy()
    area = area_true.copy()
    bed_wrong = rng.random(n) < cfg.bedroom_error_rate
    bed[bed_wrong] = np.maximum(1, bed[bed_wrong] + rng.choice([-1, 1, 2], int(bed_wrong.sum())))
    bath_wrong = rng.random(n) < cfg.bathroom_error_rate
    bath[bath_wrong] = np.maximum(
        1.0, bath[bath_wrong] + rng.choice([-1.0, 1.0], int(bath_wrong.sum()))
    )
    area_wrong = rng.random(n) < cfg.area_error_rate
    area[area_wrong] *= rng.choice([1 / SQFT_PER_M2, 0.5, 1.6, 2.0], int(area_wrong.sum()))
    missing = [rng.random(n) < cfg.missing_rate for _ in range(3)]
    for arr, miss in zip((bed, bath, area), missing, strict=True):
        arr[miss] = np.nan
    return _Listing(bed, bath, area, bed_wrong, bath_wrong, area_wrong, missing)


def _houses_table(
    world: World, lot: np.ndarray, listing: _Listing, days: np.ndarray, price: np.ndarray
) -> pd.DataFrame:
    """The public table (``houses.csv``): one row per sold house."""
    hc = world.lots.house_centre[lot]
    lat, lon = _metres_to_degrees(hc[:, 0], hc[:, 1], world.size_m)
    ids = [f"H{i + 1:06d}" for i in range(len(lot))]
    return pd.DataFrame(
        {
            "house_id": ids,
            "latitude": lat,
            "longitude": lon,
            "bedrooms": pd.array(listing.bed, dtype="Float64").astype("Int64"),  # NaN -> <NA>
            "bathrooms": listing.bath,
            "sold_date": days.astype(str),
            "area_sqft": np.round(listing.area, 1),
            "price": price,
            "image": [f"tiles/{h}.png" for h in ids],
            "mask": [f"masks/{h}.png" for h in ids],
        }
    )


def _drivers_table(
    ids: list[str],
    L: Lots,
    lot: np.ndarray,
    v: dict[str, np.ndarray],
    effects: dict[str, np.ndarray],
    log_parts: dict[str, np.ndarray],
    true_attrs: dict[str, np.ndarray],
    listing: _Listing,
) -> pd.DataFrame:
    """The hidden truth (``truth/drivers.csv``): drivers, effects, price parts, true values."""
    hc = L.house_centre[lot]
    return pd.DataFrame(
        {
            "house_id": ids,
            "has_pool": v["has_pool"],
            "pool_area_m2": np.nan_to_num(
                (L.pool[lot, 2] - L.pool[lot, 0]) * (L.pool[lot, 3] - L.pool[lot, 1]), nan=0.0
            ),
            "lot_area_m2": v["lot_area_m2"],
            "tree_cover": v["tree_cover"],
            "water_front": v["water_front"],
            "water_distance_m": L.water_m[lot],
            "park_adjacent": v["park_adjacent"],
            "park_distance_m": L.park_m[lot],
            "highway_adjacent": v["highway_adjacent"],
            "highway_distance_m": L.highway_m[lot],
            **{f"effect_{k}": e.astype(float) for k, e in effects.items()},
            **log_parts,
            "storeys": L.storeys[lot],
            "footprint_m2": L.footprint_m2[lot],
            **true_attrs,
            "bedrooms_corrupted": listing.bed_wrong & ~listing.missing[0],
            "bathrooms_corrupted": listing.bath_wrong & ~listing.missing[1],
            "area_corrupted": listing.area_wrong & ~listing.missing[2],
            "x_m": hc[:, 0],
            "y_m": hc[:, 1],
        }
    )


def simulate_city(
    *, n_houses: int = 2000, seed: int = 0, config: CityConfig | None = None
) -> SyntheticCity:
    """Build the world, pick the sold houses and price them (no pictures are drawn)."""
    cfg = config or CityConfig()
    if n_houses < 1:
        raise UserInputError(f"n_houses must be >= 1, got {n_houses}")
    world = build_world(seed, n_houses, cfg)
    L = world.lots
    rng = np.random.default_rng(np.random.SeedSequence([seed, 202]))
    eligible = np.flatnonzero(L.eligible)
    if len(eligible) < n_houses:
        raise RuntimeError(
            f"only {len(eligible)} lots can be sold for {n_houses} houses (seed {seed})"
        )
    lot = rng.choice(eligible, n_houses, replace=False)  # id order is spatially random
    n = n_houses
    area_true, bed_true, bath_true = _true_attributes(rng, L, lot)
    days = rng.permutation(_sale_days(rng, n))
    months = _months(days)
    visual_drivers, effects = _visual_effects(L, lot, cfg)
    visual = sum(effects.values())
    level = cfg.level_sd * L.level[lot]
    structure = (
        cfg.area_elasticity * np.log(area_true / 2000.0)
        + cfg.bedroom_effect * (bed_true - 3)
        + cfg.bathroom_effect * (bath_true - 2.5)
    )
    trend = np.interp(months, cfg.trend_months, cfg.trend_log)
    season = cfg.season_amplitude * np.sin(2 * np.pi * (months - 1.0) / 12.0)
    noise = rng.normal(0.0, cfg.price_noise_sd, n)
    log_price = math.log(cfg.base_price) + level + structure + trend + season + visual + noise
    price = np.round(np.exp(log_price), -2)
    listing = _corrupt(rng, bed_true, bath_true, area_true, cfg)
    houses = _houses_table(world, lot, listing, days, price)
    log_parts = {
        "visual_log_premium": visual,
        "level_log": level,
        "trend_log": trend,
        "season_log": season,
        "noise_log": noise,
    }
    true_attrs = {
        "bedrooms_true": bed_true,
        "bathrooms_true": bath_true,
        "area_sqft_true": area_true,
    }
    drivers = _drivers_table(
        houses["house_id"].tolist(), L, lot, visual_drivers, effects, log_parts, true_attrs, listing
    )
    return SyntheticCity(
        cfg, seed, world, lot, houses, drivers, {k: e.astype(float) for k, e in effects.items()}
    )


# ----------------------------------------------------------------------------- tiles


def _rect_slice(
    rect: np.ndarray, r0: int, c0: int, tile_px: int, m_per_px: float
) -> tuple[slice, slice]:
    """Tile pixels whose centres lie in a world rectangle (same rule as the painter)."""
    k = 1.0 / m_per_px
    i0, j0, i1, j1 = np.ceil(rect * k - 0.5).astype(int).tolist()
    return (
        slice(min(max(j0 - r0, 0), tile_px), min(max(j1 - r0, 0), tile_px)),
        slice(min(max(i0 - c0, 0), tile_px), min(max(i1 - c0, 0), tile_px)),
    )


def tile_masks(
    city: SyntheticCity, row: int, classes: np.ndarray, tile_px: int, m_per_px: float
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(top-left, label mask, evidence mask) of house ``row`` cut from the world label raster."""
    lot = int(city.lot[row])
    L = city.world.lots
    r0, c0 = render.crop(classes, tuple(L.house_centre[lot]), tile_px, m_per_px)
    mask = classes[r0 : r0 + tile_px, c0 : c0 + tile_px].copy()
    in_lot = np.zeros_like(mask, dtype=bool)
    in_lot[_rect_slice(L.rect[lot], r0, c0, tile_px, m_per_px)] = True
    mask[in_lot & (mask == render.OTHER_HOUSE)] = render.TARGET_HOUSE
    thr = city.config.evidence_min_effect
    on = {k: abs(float(v[row])) >= thr for k, v in city.effects.items()}
    ev = np.zeros_like(in_lot)
    if on["pool"]:
        ev |= in_lot & (mask == render.POOL)
    if on["trees"]:
        ev |= in_lot & (mask == render.TREE)
    if on["lot"]:
        ev |= in_lot & (mask != render.TARGET_HOUSE)
    if on["water"]:
        ev |= mask == render.WATER
    if on["highway"]:
        ev |= mask == render.HIGHWAY
    if on["park"]:
        in_park = np.zeros_like(in_lot)
        for rect in city.world.parks:
            in_park[_rect_slice(rect, r0, c0, tile_px, m_per_px)] = True
        ev |= (mask == render.PARK) | (in_park & (mask == render.TREE))
    return (r0, c0), mask, (ev * np.uint8(255)).astype(np.uint8)


__all__ = ["SyntheticCity", "simulate_city", "tile_masks"]
