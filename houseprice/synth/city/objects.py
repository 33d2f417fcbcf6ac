"""What stands on the synthetic city's ground: houses, driveways, pools, trees and park paths.

This module owns the objects placed on the layout (see ``layout``): on each lot a house
(footprint, roof, storeys, chimney), a driveway, maybe a pool with its deck, and trees whose
density follows the neighbourhood's leafiness; street trees in the boulevards, park trees,
wild trees on free land and highway verges; and the canopy share of every lot, measured on a
1 m raster so that it does not depend on the tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from houseprice.synth.city.config import CityConfig
from houseprice.synth.city.geometry import rect_point_distance, rects_near, water_point_distance
from houseprice.synth.city.layout import FACE_N, FACE_S, FACE_W, Layout

# Palette sizes (colours themselves live in ``render``).
N_TINTS, N_ROOFS, N_DRIVE_TONES, N_TREE_TONES = 5, 8, 3, 4
_SUN = np.array([0.6, 0.8])  # unit vector pointing from objects towards the sun (south-east)

#: Trees found by one placement rule: crown centres (T, 2), radii (T,) and owning lots (T,),
#: each as a list of arrays (one per lot, street side or park) in placement order.
TreeGroup = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]


@dataclass
class Lots:
    """Every lot with its house; rectangles are (x0, y0, x1, y1) in metres, NaN where absent."""

    rect: np.ndarray  # (L, 4)
    face: np.ndarray  # (L,) FACE_*
    verge_m: np.ndarray  # (L,) lot front to asphalt edge
    tint: np.ndarray  # (L,) lawn colour index
    fence: np.ndarray  # (L,) bool
    house: np.ndarray  # (L, 4) footprint
    hip_roof: np.ndarray  # (L,) bool; else gable
    ridge_ew: np.ndarray  # (L,) bool: ridge runs east-west
    roof: np.ndarray  # (L,) roof colour index
    storeys: np.ndarray  # (L,) 1, 1.5, 2 or 2.5
    chimney: np.ndarray  # (L, 4)
    driveway: np.ndarray  # (L, 4)
    drive_tone: np.ndarray  # (L,)
    pool: np.ndarray  # (L, 4) water surface, NaN if none
    deck: np.ndarray  # (L, 4) paved surround, NaN if none
    level: np.ndarray = field(default_factory=lambda: np.zeros(0))  # neighbourhood log level
    tree_cover: np.ndarray = field(default_factory=lambda: np.zeros(0))  # canopy share of lot
    water_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # house centre to water
    park_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # house centre to a park
    highway_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # to highway pavement
    eligible: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # tile fits in world

    @property
    def has_pool(self) -> np.ndarray:
        return ~np.isnan(self.pool[:, 0])

    @property
    def area_m2(self) -> np.ndarray:
        return (self.rect[:, 2] - self.rect[:, 0]) * (self.rect[:, 3] - self.rect[:, 1])

    @property
    def house_centre(self) -> np.ndarray:
        h = self.house
        return np.stack([(h[:, 0] + h[:, 2]) / 2, (h[:, 1] + h[:, 3]) / 2], axis=1)

    @property
    def footprint_m2(self) -> np.ndarray:
        return (self.house[:, 2] - self.house[:, 0]) * (self.house[:, 3] - self.house[:, 1])

    def shadow_offset(self) -> np.ndarray:
        """(L, 2) displacement of each house's shadow (towards the north-west)."""
        height = 3.0 * self.storeys + 1.5
        return -_SUN[None, :] * (0.7 * height)[:, None]


@dataclass
class Trees:
    xy: np.ndarray  # (T, 2) crown centre
    r: np.ndarray  # (T,) crown radius
    tone: np.ndarray  # (T,) colour index
    lot: np.ndarray  # (T,) owning lot or -1 (street, park, wild)

    def shadow_offset(self) -> np.ndarray:
        return -_SUN[None, :] * (1.3 * self.r)[:, None]


# ----------------------------------------------------------------------------- houses


def _lot_to_world(lot: np.ndarray, face: int, a0: float, a1: float, t0: float, t1: float) -> list:
    """Map a rectangle in lot coordinates (a along the street, t depth from it) to the world."""
    x0, y0, x1, y1 = lot
    if face == FACE_N:
        return [x0 + a0, y0 + t0, x0 + a1, y0 + t1]
    if face == FACE_S:
        return [x0 + a0, y1 - t1, x0 + a1, y1 - t0]
    if face == FACE_W:
        return [x0 + t0, y0 + a0, x0 + t1, y0 + a1]
    return [x1 - t1, y0 + a0, x1 - t0, y0 + a1]


def _build_on_lot(
    rng: np.random.Generator,
    lot: np.ndarray,
    face: int,
    verge: float,
    p_pool: float,
    cfg: CityConfig,
) -> tuple[list, list, list, list | None, list | None]:
    """House, driveway, chimney, pool and deck rectangles of one lot (no pool: None, None)."""
    x0, y0, x1, y1 = lot
    lw, ld = (x1 - x0, y1 - y0) if face in (FACE_N, FACE_S) else (y1 - y0, x1 - x0)
    front = rng.uniform(4.5, 9.0)
    side = rng.uniform(1.2, 2.8)
    hw = float(min(lw - 2 * side, rng.uniform(9.0, 16.5)))
    hd = float(np.clip(rng.uniform(9.0, 15.0), 6.0, ld - front - 6.0))
    dw = rng.uniform(3.0, 5.5)
    left = rng.random() < 0.5
    if lw - hw - 2 * side >= dw + 0.5:  # driveway beside the house
        a_h0 = lw - side - hw if left else side
        da0 = side * 0.5 if left else lw - side * 0.5 - dw
        drive = (da0, da0 + dw, -verge, front + hd * rng.uniform(0.2, 0.9))
    else:  # narrow lot: garage in front
        a_h0 = (lw - hw) / 2
        da0 = a_h0 + (0.5 if left else hw - dw - 0.5)
        drive = (da0, da0 + dw, -verge, front)
    house = _lot_to_world(lot, face, a_h0, a_h0 + hw, front, front + hd)
    driveway = _lot_to_world(lot, face, drive[0], drive[1], drive[2], drive[3])
    ca = a_h0 + rng.uniform(0.15, 0.85) * hw
    ct = front + rng.uniform(0.15, 0.85) * hd
    chimney = _lot_to_world(lot, face, ca, ca + 0.9, ct, ct + 0.9)
    pool = deck = None
    back = ld - (front + hd)
    if rng.random() < p_pool:
        margin = rng.uniform(1.0, 1.6)
        pw, pl = rng.uniform(*cfg.pool_width_m), rng.uniform(*cfg.pool_length_m)
        if rng.random() < 0.5:
            pa, pt = pl, pw  # long side along the street
        else:
            pa, pt = pw, pl
        need_a, need_t = pa + 2 * margin + 1.0, pt + 2 * margin + 1.5
        if need_a <= lw and need_t <= back:
            a0 = rng.uniform(0.5 + margin, lw - 0.5 - margin - pa)
            t0 = rng.uniform(front + hd + 1.0 + margin, ld - 0.5 - margin - pt)
            pool = _lot_to_world(lot, face, a0, a0 + pa, t0, t0 + pt)
            deck = _lot_to_world(
                lot, face, a0 - margin, a0 + pa + margin, t0 - margin, t0 + pt + margin
            )
    return house, driveway, chimney, pool, deck


def place_houses(rng: np.random.Generator, lay: Layout, cfg: CityConfig) -> Lots:
    """Put a house, driveway, maybe a pool, on every lot."""
    n = len(lay.lot_rect)
    nan4 = np.full((n, 4), np.nan)
    house, chimney, driveway = nan4.copy(), nan4.copy(), nan4.copy()
    pool, deck = nan4.copy(), nan4.copy()
    storeys = rng.choice([1.0, 1.5, 2.0, 2.5], n, p=[0.25, 0.15, 0.5, 0.1])
    lvl = lay.level(*(lay.lot_rect[:, [0, 2]].mean(1), lay.lot_rect[:, [1, 3]].mean(1)))
    p_pool = np.clip(cfg.pool_probability * np.exp(0.25 * lvl), 0.02, 0.6)
    for i in range(n):
        built = _build_on_lot(
            rng, lay.lot_rect[i], int(lay.lot_face[i]), lay.lot_verge[i], p_pool[i], cfg
        )
        house[i], driveway[i], chimney[i] = built[:3]
        if built[3] is not None:
            pool[i], deck[i] = built[3], built[4]
    fw = house[:, 2] - house[:, 0]
    fh = house[:, 3] - house[:, 1]
    long_ew = fw >= fh
    ridge_ew = np.where(rng.random(n) < 0.8, long_ew, ~long_ew)
    return Lots(
        rect=lay.lot_rect,
        face=lay.lot_face,
        verge_m=lay.lot_verge,
        tint=rng.integers(0, N_TINTS, n),
        fence=rng.random(n) < 0.7,
        house=house,
        hip_roof=rng.random(n) < 0.35,
        ridge_ew=ridge_ew,
        roof=rng.integers(0, N_ROOFS, n),
        storeys=storeys,
        chimney=chimney,
        driveway=driveway,
        drive_tone=rng.integers(0, N_DRIVE_TONES, n),
        pool=pool,
        deck=deck,
        level=lvl,
    )


# ----------------------------------------------------------------------------- trees


def _occupancy(lay: Layout, size: float, cfg: CityConfig, res: float) -> np.ndarray:
    """Coarse raster of land use used to place trees: see the codes below."""
    n = math.ceil(size / res)
    im = Image.new("L", (n, n), 0)  # 0 free land
    dr = ImageDraw.Draw(im)
    k = 1.0 / res
    for r in lay.streets.rect:
        dr.rectangle([r[0] * k, r[1] * k, r[2] * k - 1, r[3] * k - 1], fill=1)  # street
    for r in lay.lot_rect:
        dr.rectangle([r[0] * k, r[1] * k, r[2] * k - 1, r[3] * k - 1], fill=2)  # lot
    for r in lay.parks:
        dr.rectangle([r[0] * k, r[1] * k, r[2] * k - 1, r[3] * k - 1], fill=3)  # park
    dr.polygon([tuple(p) for p in lay.highway.outline(cfg.verge_m) * k], fill=6)  # verge
    dr.polygon([tuple(p) for p in lay.highway.outline() * k], fill=5)  # pavement
    for band in lay.waters:
        dr.polygon([tuple(p) for p in band.outline(cfg.bank_m + 1.0) * k], fill=4)  # water
    return np.asarray(im)


def _lot_trees(rng: np.random.Generator, lay: Layout, lots: Lots, cfg: CityConfig) -> TreeGroup:
    """Lot trees: per-lot greenery varies house to house around the neighbourhood's leafiness."""
    xy: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    leafy = lay.leafy(*(lots.rect[:, [0, 2]].mean(1), lots.rect[:, [1, 3]].mean(1)))
    greenery = rng.beta(0.9, 1.5, len(lots.rect)) * np.exp(0.35 * leafy)
    lam = greenery * lots.area_m2 * cfg.lot_tree_density
    counts = rng.poisson(lam)
    for i in np.flatnonzero(counts):
        x0, y0, x1, y1 = lots.rect[i]
        m = 4 * counts[i] + 4
        p = np.stack([rng.uniform(x0 + 1, x1 - 1, m), rng.uniform(y0 + 1, y1 - 1, m)], axis=1)
        r = rng.uniform(*cfg.tree_radius_m, m)
        ok = rect_point_distance(lots.house[i : i + 1], p)[0] > 1.0
        ok &= rect_point_distance(lots.driveway[i : i + 1], p)[0] > 0.5
        if lots.has_pool[i]:
            ok &= rect_point_distance(lots.deck[i : i + 1], p)[0] > 0.8 * r + 0.5
        sel = np.flatnonzero(ok)[: counts[i]]
        xy.append(p[sel])
        rad.append(r[sel])
        owner.append(np.full(len(sel), i))
    return xy, rad, owner


def _street_trees(
    rng: np.random.Generator,
    lay: Layout,
    lots: Lots,
    cfg: CityConfig,
    occ_at: Callable[[np.ndarray], np.ndarray],
) -> TreeGroup:
    """Street trees in the boulevards of local streets."""
    xy: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    st = lay.streets
    for r, axis in zip(st.rect[st.kind == 0], st.axis[st.kind == 0], strict=True):
        off = cfg.local_asphalt_m / 2 + (cfg.local_row_m - cfg.local_asphalt_m) / 4
        along0, along1 = (r[0], r[2]) if axis == 0 else (r[1], r[3])
        mid = (r[1] + r[3]) / 2 if axis == 0 else (r[0] + r[2]) / 2
        local_leafy = float(lay.leafy((r[0] + r[2]) / 2, (r[1] + r[3]) / 2)[0])
        p_keep = float(np.clip(0.45 + 0.2 * local_leafy, 0.1, 0.85))
        for sgn in (-1.0, 1.0):
            a = np.arange(along0 + 6.0, along1 - 6.0, rng.uniform(9.0, 14.0))
            a = a + rng.uniform(-1.5, 1.5, len(a))
            a = a[rng.random(len(a)) < p_keep]
            c = np.full(len(a), mid + sgn * off)
            p = np.stack([a, c], axis=1) if axis == 0 else np.stack([c, a], axis=1)
            p = p[occ_at(p) == 1]
            drives = lots.driveway[rects_near(lots.driveway, r, 2.0)]
            if len(drives) and len(p):
                p = p[rect_point_distance(drives, p).min(axis=0) > 1.5]
            xy.append(p)
            rad.append(rng.uniform(2.5, 4.5, len(p)))
            owner.append(np.full(len(p), -1))
    return xy, rad, owner


def _park_trees(rng: np.random.Generator, parks: np.ndarray) -> TreeGroup:
    """Park trees: a few clusters plus scattered ones."""
    xy: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for r in parks:
        area = (r[2] - r[0]) * (r[3] - r[1])
        n = rng.poisson(area * rng.uniform(0.002, 0.008))
        centres = np.stack([rng.uniform(r[0], r[2], 3), rng.uniform(r[1], r[3], 3)], axis=1)
        pick = centres[rng.integers(0, 3, n)] + rng.normal(0, 12.0, (n, 2))
        pick = pick[
            (pick[:, 0] > r[0] + 2)
            & (pick[:, 0] < r[2] - 2)
            & (pick[:, 1] > r[1] + 2)
            & (pick[:, 1] < r[3] - 2)
        ]
        xy.append(pick)
        rad.append(rng.uniform(3.0, 6.0, len(pick)))
        owner.append(np.full(len(pick), -1))
    return xy, rad, owner


def _wild_trees(
    rng: np.random.Generator,
    lay: Layout,
    size: float,
    occ_at: Callable[[np.ndarray], np.ndarray],
) -> TreeGroup:
    """Wild trees on free land (dense along the river) and on the highway verges."""
    n_cand = rng.poisson(size * size * 0.01)
    p = rng.uniform(0, size, (n_cand, 2))
    code = occ_at(p)
    dens = np.zeros(n_cand)
    free = code == 0
    near_water = np.zeros(n_cand, bool)
    near_water[free] = water_point_distance(lay.waters, p[free]) < 45.0
    dens[free] = np.where(near_water[free], 0.8, 0.2)
    dens[code == 6] = 0.25
    keep = rng.random(n_cand) < dens
    n_keep = int(keep.sum())
    return [p[keep]], [rng.uniform(2.5, 5.5, n_keep)], [np.full(n_keep, -1)]


def place_trees(
    rng: np.random.Generator, lay: Layout, lots: Lots, size: float, cfg: CityConfig
) -> Trees:
    """Every tree of the city: on lots, along local streets, in parks and on free land."""
    occ_res = 2.0
    occ = _occupancy(lay, size, cfg, occ_res)

    def occ_at(p: np.ndarray) -> np.ndarray:
        ij = np.clip((p / occ_res).astype(int), 0, occ.shape[0] - 1)
        return occ[ij[:, 1], ij[:, 0]]

    groups = [
        _lot_trees(rng, lay, lots, cfg),
        _street_trees(rng, lay, lots, cfg, occ_at),
        _park_trees(rng, lay.parks),
        _wild_trees(rng, lay, size, occ_at),
    ]
    xy = [a for g in groups for a in g[0]]
    rad = [a for g in groups for a in g[1]]
    owner = [a for g in groups for a in g[2]]
    all_xy = np.concatenate(xy) if xy else np.zeros((0, 2))
    return Trees(
        xy=all_xy,
        r=np.concatenate(rad),
        tone=rng.integers(0, N_TREE_TONES, len(all_xy)),
        lot=np.concatenate(owner).astype(int),
    )


def park_paths(rng: np.random.Generator, parks: np.ndarray) -> list[np.ndarray]:
    paths = []
    for x0, y0, x1, y1 in parks:
        mids = [((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)]
        hub = (
            rng.uniform(x0 + 0.3 * (x1 - x0), x1 - 0.3 * (x1 - x0)),
            rng.uniform(y0 + 0.3 * (y1 - y0), y1 - 0.3 * (y1 - y0)),
        )
        for j in rng.choice(4, int(rng.integers(2, 5)), replace=False):
            paths.append(np.array([mids[j], hub], float))
    return paths


def lot_tree_cover(lots: Lots, trees: Trees, size: float) -> np.ndarray:
    """Share of each lot under tree crowns, on a 1 m raster independent of the tile size."""
    n = math.ceil(size)
    im = Image.new("L", (n, n), 0)
    dr = ImageDraw.Draw(im)
    for (x, y), r in zip(trees.xy.tolist(), trees.r.tolist(), strict=True):
        dr.ellipse([x - r, y - r, x + r - 1, y + r - 1], fill=1)
    canopy = np.asarray(im)
    b = np.clip(np.round(lots.rect).astype(int), 0, n)
    cover = np.empty(len(b))
    for i, (x0, y0, x1, y1) in enumerate(b.tolist()):
        cover[i] = canopy[y0:y1, x0:x1].sum() / max((x1 - x0) * (y1 - y0), 1)
    return cover


__all__ = [
    "N_DRIVE_TONES",
    "N_ROOFS",
    "N_TINTS",
    "N_TREE_TONES",
    "Lots",
    "Trees",
    "lot_tree_cover",
    "park_paths",
    "place_houses",
    "place_trees",
]
