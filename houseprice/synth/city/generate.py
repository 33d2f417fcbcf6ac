"""Synthetic city: the embedded default dataset (``houseprice data synth-city``).

This module owns the generator's public API and its market: :class:`CityConfig` (every world
and price parameter), :func:`simulate_city` (world + sales + prices + hidden drivers, no
pictures), :func:`generate_city` (the dataset folder: ``dataset.json``, ``houses.csv``,
``tiles/``, ``masks/``, ``truth/``) and :func:`contact_sheet` (a picture of tiles, label masks
and evidence masks side by side). The world geometry lives in ``_city_world`` and its drawing in
``_city_render``; see ``data_specs/synth_city.md`` for the model in words.

Log price = neighbourhood level (smooth field of location) + f(area, bedrooms, bathrooms) +
market trend + seasonality + visual drivers (pool, lot area, tree cover, water frontage,
park adjacency, highway adjacency; visible only in the tile) + noise. Attributes are then
corrupted as real listings are (a few % missing or wrong). The drivers and a per-tile evidence
mask (pixels of the objects that moved this house's price) go to ``truth/``, which training code
never reads. Output is a pure function of (config, n_houses, seed, tile_px, tile_meters).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from houseprice.synth.city import render as render
from houseprice.synth.city.world import World, build_world

GENERATOR_NAME = "houseprice.synth.city"
GENERATOR_VERSION = "1"
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
HOUSE_COLUMNS = [
    "house_id", "latitude", "longitude", "bedrooms", "bathrooms", "sold_date", "area_sqft",
    "price", "image", "mask",
]  # fmt: skip


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
            raise ValueError(
                f"unknown CityConfig field(s) {unknown}; known fields: {sorted(known)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def check(self, tile_meters: float) -> None:
        """Raise ValueError if the parameters are inconsistent with each other or the tile."""
        half = tile_meters / 2
        for name in ("water_front_m", "park_adjacent_m", "highway_adjacent_m"):
            v = getattr(self, name)
            if v > half - 3.0:
                raise ValueError(
                    f"CityConfig.{name}={v} m must be <= tile_meters/2 - 3 = {half - 3.0:g} m so "
                    f"the driver is visible in the tile; raise tile_meters or lower {name}"
                )
        if half + 2.0 > self.edge_margin_m:
            raise ValueError(
                f"tile_meters={tile_meters} needs CityConfig.edge_margin_m >= {half + 2.0:g} "
                f"(now {self.edge_margin_m}) so every tile lies inside the world"
            )
        if len(self.trend_months) != len(self.trend_log) or list(self.trend_months) != sorted(
            self.trend_months
        ):
            raise ValueError("CityConfig.trend_months must be increasing and as long as trend_log")
        if self.supersample < 1:
            raise ValueError(f"CityConfig.supersample must be >= 1, got {self.supersample}")
        if self.lots_per_sale < 1.0:
            raise ValueError(f"CityConfig.lots_per_sale must be >= 1, got {self.lots_per_sale}")


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


def simulate_city(
    *, n_houses: int = 2000, seed: int = 0, config: CityConfig | None = None
) -> SyntheticCity:
    """Build the world, pick the sold houses and price them (no pictures are drawn)."""
    cfg = config or CityConfig()
    if n_houses < 1:
        raise ValueError(f"n_houses must be >= 1, got {n_houses}")
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

    # True attributes from the house itself.
    footprint = L.footprint_m2[lot]
    storeys = L.storeys[lot]
    area_true = footprint * storeys * rng.uniform(0.85, 0.98, n) * SQFT_PER_M2
    bed_true = np.clip(np.rint(1.0 + area_true / 850.0 + rng.normal(0, 0.6, n)), 1, 7).astype(int)
    bath_true = np.clip(
        np.rint(2 * (0.5 * bed_true + area_true / 2500.0 + rng.normal(0, 0.45, n))) / 2, 1.0, 6.0
    )
    days = rng.permutation(_sale_days(rng, n))
    months = _months(days)

    # Visual drivers and their log effects.
    lot_area = L.area_m2[lot]
    tree_cover = L.tree_cover[lot]
    has_pool = L.has_pool[lot]
    water_front = L.water_m[lot] <= cfg.water_front_m
    park_adjacent = L.park_m[lot] <= cfg.park_adjacent_m
    highway_adjacent = L.highway_m[lot] <= cfg.highway_adjacent_m
    effects = {
        "pool": cfg.pool_effect * has_pool,
        "lot": cfg.lot_elasticity * np.log(lot_area / cfg.lot_ref_m2),
        "trees": cfg.tree_cover_effect * tree_cover,
        "water": cfg.water_front_effect * water_front,
        "park": cfg.park_effect * park_adjacent,
        "highway": cfg.highway_effect * highway_adjacent,
    }
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

    # Listing-style corruption: missing and wrong values.
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

    hc = L.house_centre[lot]
    lat, lon = _metres_to_degrees(hc[:, 0], hc[:, 1], world.size_m)
    ids = [f"H{i + 1:06d}" for i in range(n)]
    houses = pd.DataFrame(
        {
            "house_id": ids,
            "latitude": lat,
            "longitude": lon,
            "bedrooms": pd.array(bed, dtype="Float64").astype("Int64"),  # NaN -> <NA>
            "bathrooms": bath,
            "sold_date": days.astype(str),
            "area_sqft": np.round(area, 1),
            "price": price,
            "image": [f"tiles/{h}.png" for h in ids],
            "mask": [f"masks/{h}.png" for h in ids],
        }
    )
    drivers = pd.DataFrame(
        {
            "house_id": ids,
            "has_pool": has_pool,
            "pool_area_m2": np.nan_to_num(
                (L.pool[lot, 2] - L.pool[lot, 0]) * (L.pool[lot, 3] - L.pool[lot, 1]), nan=0.0
            ),
            "lot_area_m2": lot_area,
            "tree_cover": tree_cover,
            "water_front": water_front,
            "water_distance_m": L.water_m[lot],
            "park_adjacent": park_adjacent,
            "park_distance_m": L.park_m[lot],
            "highway_adjacent": highway_adjacent,
            "highway_distance_m": L.highway_m[lot],
            **{f"effect_{k}": v.astype(float) for k, v in effects.items()},
            "visual_log_premium": visual,
            "level_log": level,
            "trend_log": trend,
            "season_log": season,
            "noise_log": noise,
            "storeys": storeys,
            "footprint_m2": footprint,
            "bedrooms_true": bed_true,
            "bathrooms_true": bath_true,
            "area_sqft_true": area_true,
            "bedrooms_corrupted": bed_wrong & ~missing[0],
            "bathrooms_corrupted": bath_wrong & ~missing[1],
            "area_corrupted": area_wrong & ~missing[2],
            "x_m": hc[:, 0],
            "y_m": hc[:, 1],
        }
    )
    return SyntheticCity(
        cfg, seed, world, lot, houses, drivers, {k: v.astype(float) for k, v in effects.items()}
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


# ----------------------------------------------------------------------------- writing


def _fmt(v: Any, kind: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    if kind == "b":
        return "1" if v else "0"
    if kind == "i":
        return str(int(v))
    if kind.startswith("f"):
        digits = int(kind[1:])
        return f"{round(float(v), digits) + 0.0:.{digits}f}"  # + 0.0 turns -0.0 into 0.0
    return str(v)


def _write_csv(path: Path, df: pd.DataFrame, kinds: dict[str, str]) -> None:
    lines = [",".join(df.columns)]
    cols = [df[c].tolist() for c in df.columns]
    ks = [kinds.get(c, "s") for c in df.columns]
    for vals in zip(*cols, strict=True):
        lines.append(",".join(_fmt(v, k) for v, k in zip(vals, ks, strict=True)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_HOUSE_KINDS = {
    "latitude": "f7", "longitude": "f7", "bedrooms": "i", "bathrooms": "f1", "area_sqft": "f1",
    "price": "f1",
}  # fmt: skip


def _driver_kinds(df: pd.DataFrame) -> dict[str, str]:
    out = {}
    for c in df.columns:
        if pd.api.types.is_bool_dtype(df[c]):
            out[c] = "b"
        elif pd.api.types.is_integer_dtype(df[c]):
            out[c] = "i"
        elif pd.api.types.is_float_dtype(df[c]):
            out[c] = "f6"
    return out


def _save_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)


def _replace_dir(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def generate_city(
    out_dir: str | Path,
    *,
    n_houses: int = 2000,
    seed: int = 0,
    tile_px: int = 64,
    tile_meters: float = 70.0,
    progress: bool = True,
    config: CityConfig | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic-city dataset folder (see module docstring) and return its path.

    The folder is built in a temporary sibling and renamed into place; an existing non-empty
    ``out_dir`` is an error unless ``overwrite=True``.
    """
    cfg = config or CityConfig()
    out = Path(out_dir)
    if tile_px < 8:
        raise ValueError(f"tile_px must be >= 8, got {tile_px}")
    if not tile_meters > 0:
        raise ValueError(f"tile_meters must be > 0, got {tile_meters}")
    cfg.check(tile_meters)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} already exists and is not empty; "
            "pass overwrite=True (--overwrite) to replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)

    city = simulate_city(n_houses=n_houses, seed=seed, config=cfg)
    m_per_px = tile_meters / tile_px
    classes = render.render_classes(city.world, m_per_px)
    rgb = render.render_rgb(
        city.world,
        m_per_px,
        supersample=cfg.supersample,
        noise_seed=seed * 7 + 3,
        progress=progress,
    )
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        for sub in ("tiles", "masks", "truth/evidence"):
            (tmp / sub).mkdir(parents=True)
        ids = city.houses["house_id"].tolist()
        for row in tqdm(range(n_houses), desc="writing tiles", disable=not progress):
            (r0, c0), mask, ev = tile_masks(city, row, classes, tile_px, m_per_px)
            _save_png(tmp / "tiles" / f"{ids[row]}.png", rgb[r0 : r0 + tile_px, c0 : c0 + tile_px])
            _save_png(tmp / "masks" / f"{ids[row]}.png", mask)
            _save_png(tmp / "truth" / "evidence" / f"{ids[row]}.png", ev)
        _write_csv(tmp / "houses.csv", city.houses[HOUSE_COLUMNS], _HOUSE_KINDS)
        _write_csv(tmp / "truth" / "drivers.csv", city.drivers, _driver_kinds(city.drivers))
        meta = {
            "format": "houseprice-dataset",
            "format_version": 1,
            "name": "synthetic-city",
            "generator": {
                "name": GENERATOR_NAME,
                "version": GENERATOR_VERSION,
                "config": asdict(cfg),
            },
            "seed": seed,
            "table": "houses.csv",
            "n_houses": n_houses,
            "crs": "EPSG:4326",
            "tile_px": tile_px,
            "tile_meters": tile_meters,
            "mask_classes": {str(k): v for k, v in render.MASK_CLASSES.items()},
            "truth": {
                "drivers": "truth/drivers.csv",
                "evidence_dir": "truth/evidence",
                "oracle_columns": ORACLE_COLUMNS,
            },
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ----------------------------------------------------------------------------- contact sheet

CLASS_COLOURS = {
    0: (150, 130, 100), 1: (230, 40, 40), 2: (240, 160, 160), 3: (90, 90, 90), 4: (30, 30, 30),
    5: (200, 190, 120), 6: (40, 200, 240), 7: (20, 110, 20), 8: (30, 60, 200), 9: (140, 220, 110),
}  # fmt: skip


def contact_sheet(dataset_dir: str | Path, out_png: str | Path, n: int = 8, scale: int = 3) -> Path:
    """Save a picture of ``n`` tiles with their label and evidence masks side by side.

    Houses are picked to show each visual driver (pool, water, park, highway, big and small
    lot, tree cover) before the rest, in house_id order.
    """
    root = Path(dataset_dir)
    drivers = pd.read_csv(root / "truth" / "drivers.csv", dtype={"house_id": str})
    picks: list[str] = []
    showcase = [
        ("has_pool", False),
        ("water_front", False),
        ("park_adjacent", False),
        ("highway_adjacent", False),
        ("tree_cover", False),
        ("lot_area_m2", False),
        ("lot_area_m2", True),
    ]
    for col, ascending in showcase:
        order = drivers.sort_values([col, "house_id"], ascending=[ascending, True], kind="stable")
        hid = next((h for h in order["house_id"] if h not in picks), None)
        if hid is not None:
            picks.append(hid)
    picks += [h for h in drivers["house_id"] if h not in picks][: max(0, n - len(picks))]
    picks = picks[:n]
    font = ImageFont.load_default()
    panels = []
    for hid in picks:
        tile = np.asarray(Image.open(root / "tiles" / f"{hid}.png").convert("RGB"))
        mask = np.asarray(Image.open(root / "masks" / f"{hid}.png"))
        ev = np.asarray(Image.open(root / "truth" / "evidence" / f"{hid}.png")) > 0
        lut = np.array([CLASS_COLOURS[i] for i in range(10)], np.uint8)
        over = tile.astype(np.float32) * 0.25  # evidence keeps its colours, with a red tint
        over[ev] = tile[ev] * 0.5 + np.array([255, 40, 40]) * 0.5
        trio = np.concatenate([tile, lut[mask], over.astype(np.uint8)], axis=1)
        big = Image.fromarray(trio).resize(
            (trio.shape[1] * scale, trio.shape[0] * scale), Image.NEAREST
        )
        row = drivers.loc[drivers["house_id"] == hid].iloc[0]
        flags = {"pool": "has_pool", "water": "water_front", "park": "park_adjacent"}
        flags["highway"] = "highway_adjacent"
        tags = " ".join(k for k, c in flags.items() if bool(row[c]))
        caption = f"{hid}  lot {row['lot_area_m2']:.0f} m2  trees {row['tree_cover']:.2f}  {tags}"
        canvas = Image.new("RGB", (big.width, big.height + 14), (255, 255, 255))
        canvas.paste(big, (0, 14))
        ImageDraw.Draw(canvas).text((2, 1), caption, fill=(0, 0, 0), font=font)
        panels.append(np.asarray(canvas))
    cols = 2
    while len(panels) % cols:
        panels.append(np.full_like(panels[0], 255))
    padded = [np.pad(p, ((4, 4), (4, 4), (0, 0)), constant_values=255) for p in panels]
    rows = [np.concatenate(padded[i : i + cols], axis=1) for i in range(0, len(padded), cols)]
    grid = np.concatenate(rows, axis=0)
    legend = Image.new("RGB", (grid.shape[1], 18), (255, 255, 255))
    d = ImageDraw.Draw(legend)
    x = 4
    for i, name in render.MASK_CLASSES.items():
        d.rectangle([x, 4, x + 10, 14], fill=CLASS_COLOURS[i])
        d.text((x + 13, 3), name, fill=(0, 0, 0), font=font)
        x += 16 + int(d.textlength(name, font=font)) + 8
    sheet = np.concatenate([grid, np.asarray(legend)], axis=0)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}.png")
    Image.fromarray(sheet).save(tmp, format="PNG")
    os.replace(tmp, out)
    return out


__all__ = [
    "HOUSE_COLUMNS",
    "CityConfig",
    "SyntheticCity",
    "contact_sheet",
    "generate_city",
    "simulate_city",
    "tile_masks",
]
