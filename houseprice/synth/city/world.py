"""The assembled world of the synthetic city and the hidden per-lot price drivers measured on it.

This module owns :func:`build_world`: one consistent city in metres (``x`` east, ``y`` SOUTH,
origin at the north-west corner, so ``y`` grows down like image rows), grown until it holds
enough lots, with the layout (``layout``: streets, blocks, lots, river, highway, parks) and the
objects on it (``objects``: houses, pools, trees), the highway markings, and the drivers that
only a picture shows (pool, lot area, tree cover, distances to water / park / highway),
measured from the geometry, never from a rendering, so prices do not depend on the tile size.
Drawing lives in ``render``; sale dates, attributes and prices in ``simulate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from houseprice.synth.city.config import CityConfig
from houseprice.synth.city.geometry import Band, dashes, rect_point_distance, water_point_distance
from houseprice.synth.city.layout import Streets, bridges, build_layout
from houseprice.synth.city.objects import (
    Lots,
    Trees,
    lot_tree_cover,
    park_paths,
    place_houses,
    place_trees,
)

_LANE_M = 3.7  # highway lane width


@dataclass
class World:
    """The whole city; everything a renderer or the price model needs."""

    size_m: float
    streets: Streets
    lots: Lots
    trees: Trees
    parks: np.ndarray  # (P, 4)
    paths: list[np.ndarray]  # park footpaths, each (K, 2)
    waters: list[Band]  # the river, then the creek
    bank_m: float
    highway: Band
    verge_m: float
    lane_dashes: np.ndarray  # (D, 4) x0, y0, x1, y1 of lane-marking dashes
    edge_lines: list[np.ndarray]  # solid highway edge lines
    median_line: np.ndarray  # (N, 2)
    local_asphalt_m: float
    arterial_asphalt_m: float


def build_world(seed: int, n_houses: int, cfg: CityConfig) -> World:
    """The city for ``seed``: big enough to hold ``n_houses`` sold houses away from the edges."""
    need = math.ceil(n_houses * cfg.lots_per_sale)
    size = max(cfg.min_world_m, math.sqrt(need * cfg.m2_per_lot) + 2 * cfg.edge_margin_m)
    for attempt in range(8):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 101, attempt]))
        lay = build_layout(rng, size, cfg)
        c = lay.lot_rect[:, [0, 2]].mean(1), lay.lot_rect[:, [1, 3]].mean(1)
        inner = cfg.edge_margin_m + 10.0
        have = int(
            ((c[0] > inner) & (c[0] < size - inner) & (c[1] > inner) & (c[1] < size - inner)).sum()
        )
        if have >= need:
            break
        size = size * math.sqrt(need / max(have, 1)) * 1.04
    else:
        raise RuntimeError(
            f"could not lay out a city with {need} lots (seed {seed}); lower lots_per_sale"
        )
    lots = place_houses(rng, lay, cfg)
    trees = place_trees(rng, lay, lots, size, cfg)
    lots.tree_cover = lot_tree_cover(lots, trees, size)
    hc = lots.house_centre
    lots.water_m = water_point_distance(lay.waters, hc)
    lots.highway_m = lay.highway.distance_to_points(hc)
    lots.park_m = (
        rect_point_distance(lay.parks, hc).min(axis=0)
        if len(lay.parks)
        else np.full(len(hc), np.inf)
    )
    m = cfg.edge_margin_m
    lots.eligible = (hc[:, 0] > m) & (hc[:, 0] < size - m) & (hc[:, 1] > m) & (hc[:, 1] < size - m)
    hw = lay.highway
    lanes = [hw.offset_line(s * (1.0 + k * _LANE_M)) for s in (-1, 1) for k in (1, 2)]
    edge = [hw.offset_line(s * (1.0 + 3 * _LANE_M + 0.3)) for s in (-1, 1)]
    br = bridges(lay.streets, lay.waters, cfg.bank_m)
    streets = Streets(
        np.concatenate([lay.streets.rect, br.rect]),
        np.concatenate([lay.streets.axis, br.axis]),
        np.concatenate([lay.streets.kind, br.kind]),
    )
    return World(
        size_m=size,
        streets=streets,
        lots=lots,
        trees=trees,
        parks=lay.parks,
        paths=park_paths(rng, lay.parks),
        waters=lay.waters,
        bank_m=cfg.bank_m,
        highway=hw,
        verge_m=cfg.verge_m,
        lane_dashes=np.concatenate([dashes(ln, 3.0, 9.0) for ln in lanes]),
        edge_lines=edge,
        median_line=hw.centre,
        local_asphalt_m=cfg.local_asphalt_m,
        arterial_asphalt_m=cfg.arterial_asphalt_m,
    )


__all__ = ["World", "build_world"]
