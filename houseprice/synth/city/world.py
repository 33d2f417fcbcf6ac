"""Vector world of the synthetic city and the hidden per-lot price drivers measured on it.

This module owns one consistent city in metres (``x`` east, ``y`` SOUTH, origin at the
north-west corner, so ``y`` grows down like image rows): arterial grid, superblocks with local
streets in one of two orientations, blocks cut into lots of varying size, a meandering river,
a curved highway with verges, parks, and on each lot a house (footprint, roof, storeys), a
driveway, maybe a pool with its deck, and trees. Smooth random fields give neighbourhood price
level, typical lot width and leafiness. The drivers that only a picture shows (pool, lot area,
tree cover, distances to water / park / highway) are measured here from the geometry, never
from a rendering, so prices do not depend on the tile size. Drawing lives in ``_city_render``;
sale dates, attributes and prices in ``synth_city``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from houseprice.synth.city.generate import CityConfig

# Lot faces: the side of the lot that touches its street.
FACE_N, FACE_S, FACE_W, FACE_E = 0, 1, 2, 3
# Palette sizes (colours themselves live in _city_render).
N_TINTS, N_ROOFS, N_DRIVE_TONES, N_TREE_TONES = 5, 8, 3, 4
_LANE_M = 3.7  # highway lane width
_SUN = np.array([0.6, 0.8])  # unit vector pointing from objects towards the sun (south-east)


@dataclass
class SmoothField:
    """Sum of Gaussian bumps plus a gentle gradient, standardised to mean 0 / sd 1 on the world."""

    centres: np.ndarray  # (K, 2) metres
    scales: np.ndarray  # (K,) metres
    amps: np.ndarray  # (K,)
    gradient: np.ndarray  # (2,) per world width
    size_m: float
    mean: float = 0.0
    sd: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator, size_m: float, n_bumps: int = 14) -> SmoothField:
        f = cls(
            centres=rng.uniform(-0.1 * size_m, 1.1 * size_m, (n_bumps, 2)),
            scales=rng.uniform(0.12, 0.32, n_bumps) * max(size_m, 1500.0),
            amps=rng.normal(0.0, 1.0, n_bumps),
            gradient=rng.normal(0.0, 0.6, 2),
            size_m=size_m,
        )
        g = np.linspace(0.0, size_m, 48)
        gx, gy = np.meshgrid(g, g)
        raw = f._raw(gx.ravel(), gy.ravel())
        f.mean, f.sd = float(raw.mean()), float(raw.std() + 1e-9)
        return f

    def _raw(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d2 = (x[:, None] - self.centres[None, :, 0]) ** 2 + (
            y[:, None] - self.centres[None, :, 1]
        ) ** 2
        bumps = (self.amps * np.exp(-d2 / (2.0 * self.scales**2))).sum(axis=1)
        lin = self.gradient[0] * (x - self.size_m / 2) + self.gradient[1] * (y - self.size_m / 2)
        return bumps + lin / self.size_m

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))
        return (self._raw(x, y) - self.mean) / self.sd


@dataclass
class Band:
    """A river or highway: dense centre line, half width per point, and its outline polygon."""

    centre: np.ndarray  # (N, 2) metres, ~2 m apart
    half_width: np.ndarray  # (N,) metres

    @cached_property
    def tree(self) -> cKDTree:
        return cKDTree(self.centre)

    def outline(self, extra_m: float = 0.0) -> np.ndarray:
        """Polygon (2N, 2) of the band widened by ``extra_m`` on each side."""
        c = self.centre
        tangent = np.gradient(c, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        hw = (self.half_width + extra_m)[:, None]
        return np.concatenate([c + normal * hw, (c - normal * hw)[::-1]])

    def offset_line(self, offset_m: float) -> np.ndarray:
        """Centre line shifted sideways by ``offset_m`` (signed)."""
        c = self.centre
        tangent = np.gradient(c, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        return c + np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * offset_m

    def distance_to_points(self, pts: np.ndarray) -> np.ndarray:
        """Distance (m) from each point (N, 2) to the band's edge; negative inside."""
        return self.distance_to_rects(np.concatenate([pts, pts], axis=1))

    def distance_to_rects(self, rects: np.ndarray, exact_below_m: float = 150.0) -> np.ndarray:
        """Distance (m) from each axis-aligned rectangle (N, 4) to the band's edge.

        Exact up to ``exact_below_m``; farther rectangles get a lower bound that is at least that.
        """
        rects = np.asarray(rects, float).reshape(-1, 4)
        tree = self.tree
        centre = (rects[:, :2] + rects[:, 2:]) / 2
        half_diag = np.hypot(rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1]) / 2
        d_centre, _ = tree.query(centre)
        out = d_centre - half_diag - self.half_width.max()  # lower bound
        todo = np.flatnonzero(out < exact_below_m)
        if len(todo) == 0:
            return out
        # Only centre-line points this close can be the nearest one to the rectangle's edge.
        spread = float(self.half_width.max() - self.half_width.min())
        near = tree.query_ball_point(
            centre[todo], r=d_centre[todo] + half_diag[todo] + spread + 1e-6
        )
        lens = np.array([len(q) for q in near])
        flat = np.concatenate([np.asarray(q, dtype=np.int64) for q in near])
        owner = np.repeat(todo, lens)
        r, c = rects[owner], self.centre[flat]
        dx = np.maximum(np.maximum(r[:, 0] - c[:, 0], c[:, 0] - r[:, 2]), 0.0)
        dy = np.maximum(np.maximum(r[:, 1] - c[:, 1], c[:, 1] - r[:, 3]), 0.0)
        dist = np.hypot(dx, dy) - self.half_width[flat]
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        out[todo] = np.minimum.reduceat(dist, starts)
        return out


@dataclass
class Streets:
    """Street right-of-way rectangles (pavement, sidewalks and boulevards)."""

    rect: np.ndarray  # (S, 4) x0, y0, x1, y1
    axis: np.ndarray  # (S,) 0 = runs east-west, 1 = runs north-south
    kind: np.ndarray  # (S,) 0 = local, 1 = arterial, 2 = arterial bridge over water


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


# ----------------------------------------------------------------------------- helpers


def rect_point_distance(rects: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Pairwise distance (N, M) from rectangles (N, 4) to points (M, 2); 0 inside."""
    dx = np.maximum(np.maximum(rects[:, 0:1] - pts[None, :, 0], pts[None, :, 0] - rects[:, 2:3]), 0)
    dy = np.maximum(np.maximum(rects[:, 1:2] - pts[None, :, 1], pts[None, :, 1] - rects[:, 3:4]), 0)
    return np.hypot(dx, dy)


def _rects_near(rects: np.ndarray, box: np.ndarray, pad: float) -> np.ndarray:
    """Mask of rectangles (N, 4) that intersect ``box`` (4,) grown by ``pad``."""
    return (
        (rects[:, 2] > box[0] - pad) & (rects[:, 0] < box[2] + pad)
        & (rects[:, 3] > box[1] - pad) & (rects[:, 1] < box[3] + pad)
    )  # fmt: skip


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


def _make_band(
    rng: np.random.Generator,
    size: float,
    axis: int,
    base_frac: float,
    half_width: float,
    wiggle: float,
    meander: tuple[float, float],
    width_var: float = 0.0,
    max_slope_deg: float = 18.0,
) -> Band:
    """A curve crossing the world along ``axis`` (0: west-east, 1: north-south)."""
    t = np.arange(-0.2 * size, 1.2 * size, 2.0)
    base = base_frac * size
    slope = math.tan(math.radians(rng.uniform(-max_slope_deg, max_slope_deg)))
    lam1, lam2 = rng.uniform(*meander), rng.uniform(*meander) * 0.45
    across = (
        base
        + slope * (t - size / 2)
        + wiggle * np.sin(2 * np.pi * t / lam1 + rng.uniform(0, 2 * np.pi))
        + 0.3 * wiggle * np.sin(2 * np.pi * t / lam2 + rng.uniform(0, 2 * np.pi))
    )
    centre = np.stack([t, across], axis=1) if axis == 0 else np.stack([across, t], axis=1)
    # Resample to ~2 m arc length so distances are accurate everywhere.
    seg = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s_new = np.arange(0.0, s[-1], 2.0)
    centre = np.stack(
        [np.interp(s_new, s, centre[:, 0]), np.interp(s_new, s, centre[:, 1])], axis=1
    )
    phase = rng.uniform(0, 2 * np.pi)
    hw = half_width * (1.0 + width_var * np.sin(s_new / 230.0 + phase))
    return Band(centre=centre, half_width=hw)


def _dashes(line: np.ndarray, dash_m: float, gap_m: float) -> np.ndarray:
    """(D, 4) short segments along a dense polyline: ``dash_m`` drawn, ``gap_m`` skipped."""
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    starts = np.arange(0.0, s[-1] - dash_m, dash_m + gap_m)
    ends = starts + dash_m
    return np.stack(
        [
            np.interp(starts, s, line[:, 0]),
            np.interp(starts, s, line[:, 1]),
            np.interp(ends, s, line[:, 0]),
            np.interp(ends, s, line[:, 1]),
        ],
        axis=1,
    )


def _row_widths(
    rng: np.random.Generator, length: float, mean_w: float, cfg: CityConfig
) -> list[float]:
    """Split a row of ``length`` metres into lot widths around ``mean_w``."""
    lo, hi = cfg.lot_width_range_m
    out: list[float] = []
    rest = length
    while rest >= lo:
        w = float(np.clip(mean_w * math.exp(cfg.lot_width_sd_log * rng.normal()), lo, hi))
        if rest - w < lo:
            w = rest
        out.append(w)
        rest -= w
    if out and out[-1] > hi * 1.3:
        last = out.pop()
        out += [last / 2, last / 2]
    return out


def _bridges(
    streets: Streets, waters: list[Band], bank_m: float, max_len_m: float = 180.0
) -> Streets:
    """Pieces of arterials that bridge the water (drawn over it; elsewhere water covers roads)."""
    rects, axes = [], []
    for r, axis in zip(
        streets.rect[streets.kind == 1], streets.axis[streets.kind == 1], strict=True
    ):
        along, perp = (0, 1) if axis == 0 else (1, 0)
        c = (r[perp] + r[perp + 2]) / 2
        for band in waters:
            off = band.centre[:, perp] - c
            cross = np.flatnonzero(np.sign(off[:-1]) != np.sign(off[1:]))
            for i in cross.tolist():
                t = band.centre[i + 1] - band.centre[i]
                sin = abs(t[perp]) / max(float(np.hypot(*t)), 1e-9)
                a = band.centre[i, along] + (band.centre[i + 1, along] - band.centre[i, along]) * (
                    off[i] / (off[i] - off[i + 1])
                )
                half = min(max_len_m / 2, band.half_width[i] / max(sin, 1e-3) + bank_m + 6.0)
                lo, hi = max(a - half, r[along]), min(a + half, r[along + 2])
                piece = r.copy()
                piece[along], piece[along + 2] = lo, hi
                rects.append(piece)
                axes.append(axis)
    n = len(rects)
    return Streets(np.array(rects, float).reshape(n, 4), np.array(axes, int), np.full(n, 2))


def water_point_distance(waters: list[Band], pts: np.ndarray) -> np.ndarray:
    """Distance (m) from points (N, 2) to the nearest water edge."""
    return np.min([b.distance_to_points(pts) for b in waters], axis=0)


# ----------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    streets: Streets
    lot_rect: np.ndarray
    lot_face: np.ndarray
    lot_verge: np.ndarray
    parks: np.ndarray
    waters: list[Band]
    highway: Band
    level: SmoothField
    lot_width: SmoothField
    leafy: SmoothField


def _layout(rng: np.random.Generator, size: float, cfg: CityConfig) -> _Layout:
    """Streets, blocks, parks and lot rectangles; lots too close to water/highway are dropped."""
    level, lot_width, leafy = (SmoothField.random(rng, size) for _ in range(3))
    river_axis = int(rng.integers(2))
    river_side = bool(rng.integers(2))
    river = _make_band(
        rng, size, river_axis, rng.uniform(0.25, 0.42) + 0.33 * river_side,
        rng.uniform(*cfg.river_width_m) / 2, rng.uniform(50, 110), (700, 1300), 0.15,
    )  # fmt: skip
    creek = _make_band(
        rng, size, river_axis, rng.uniform(0.25, 0.42) + 0.33 * (not river_side),
        rng.uniform(*cfg.creek_width_m) / 2, rng.uniform(35, 70), (450, 800), 0.2,
    )  # fmt: skip
    waters = [river, creek]
    highway = _make_band(
        rng, size, 1 - river_axis, rng.uniform(0.3, 0.7), cfg.highway_width_m / 2,
        rng.uniform(12, 35), (1800, 3200), 0.0, 8.0,
    )  # fmt: skip

    def water_rect_distance(rects: np.ndarray) -> np.ndarray:
        return np.min([b.distance_to_rects(rects) for b in waters], axis=0)

    a_row, l_row = cfg.arterial_row_m, cfg.local_row_m
    lines: list[list[float]] = []
    for _ in range(2):
        pos, acc = [], rng.uniform(0.2, 0.8) * cfg.arterial_spacing_m[0]
        while acc < size - 0.5 * a_row:
            pos.append(acc)
            acc += rng.uniform(*cfg.arterial_spacing_m)
        lines.append(pos)
    street_rect, street_axis, street_kind = [], [], []
    for x in lines[0]:  # north-south arterials
        street_rect.append([x - a_row / 2, 0.0, x + a_row / 2, size])
        street_axis.append(1)
        street_kind.append(1)
    for y in lines[1]:  # east-west arterials
        street_rect.append([0.0, y - a_row / 2, size, y + a_row / 2])
        street_axis.append(0)
        street_kind.append(1)

    def cells(pos: list[float]) -> list[tuple[float, float, bool, bool]]:
        edges = [(0.0, False)] + [
            e for p in pos for e in ((p - a_row / 2, True), (p + a_row / 2, True))
        ]
        edges.append((size, False))
        return [
            (edges[i][0], edges[i + 1][0], edges[i][1], edges[i + 1][1])
            for i in range(0, len(edges), 2)
        ]

    Block = tuple[list[float], int, float, float]  # rect, orientation, verge low/high side
    blocks: list[Block] = []
    a_verge = (a_row - cfg.arterial_asphalt_m) / 2
    l_verge = (l_row - cfg.local_asphalt_m) / 2
    for x0, x1, art_w, art_e in cells(lines[0]):
        for y0, y1, art_n, art_s in cells(lines[1]):
            if min(x1 - x0, y1 - y0) < 45:
                continue
            # Rows of lots run along x (ew: lots face east-west streets) or along y.
            ew = rng.random() < 0.6
            u0, u1, v0, v1 = (x0, x1, y0, y1) if ew else (y0, y1, x0, x1)
            v_lo_art, v_hi_art = (art_n, art_s) if ew else (art_w, art_e)
            depth = rng.uniform(*cfg.block_depth_m)
            n_v = max(1, round((v1 - v0 + l_row) / (depth + l_row)))
            d = (v1 - v0 - (n_v - 1) * l_row) / n_v
            length = rng.uniform(*cfg.block_length_m)
            n_u = max(1, round((u1 - u0 + l_row) / (length + l_row)))
            cuts = (np.arange(1, n_u) + rng.uniform(-0.25, 0.25, n_u - 1)) / n_u
            u_cent = u0 + np.sort(cuts) * (u1 - u0)
            u_edges = [u0] + [e for c in u_cent for e in (c - l_row / 2, c + l_row / 2)] + [u1]
            for c in u_cent:  # connectors across the rows
                street_rect.append(
                    [c - l_row / 2, v0, c + l_row / 2, v1]
                    if ew
                    else [v0, c - l_row / 2, v1, c + l_row / 2]
                )
                street_axis.append(1 if ew else 0)
                street_kind.append(0)
            for j in range(n_v):
                bv0 = v0 + j * (d + l_row)
                bv1 = bv0 + d
                if j < n_v - 1:  # local street below this block row
                    r = [u0, bv1, u1, bv1 + l_row]
                    street_rect.append(r if ew else [r[1], r[0], r[3], r[2]])
                    street_axis.append(0 if ew else 1)
                    street_kind.append(0)
                lo_verge = (a_verge if v_lo_art else 0.0) if j == 0 else l_verge
                hi_verge = (a_verge if v_hi_art else 0.0) if j == n_v - 1 else l_verge
                for i in range(0, len(u_edges), 2):
                    bu0, bu1 = u_edges[i], u_edges[i + 1]
                    if bu1 - bu0 < 20:
                        continue
                    rect = [bu0, bv0, bu1, bv1] if ew else [bv0, bu0, bv1, bu1]
                    blocks.append((rect, 0 if ew else 1, lo_verge, hi_verge))

    block_rect = np.array([b[0] for b in blocks], float).reshape(-1, 4)
    far = (water_rect_distance(block_rect) > cfg.park_clearance_m) & (
        highway.distance_to_rects(block_rect) > cfg.verge_m + cfg.park_clearance_m
    )
    is_park = far & (rng.random(len(blocks)) < cfg.park_block_fraction)
    if not is_park.any() and far.any():
        is_park[rng.choice(np.flatnonzero(far))] = True

    lot_rect, lot_face, lot_verge = [], [], []
    for (rect, orient, lo_verge, hi_verge), park in zip(blocks, is_park, strict=True):
        if park:
            continue
        x0, y0, x1, y1 = rect
        u0, u1, v0, v1 = (x0, x1, y0, y1) if orient == 0 else (y0, y1, x0, x1)
        vm = (v0 + v1) / 2
        if v1 - v0 < 2 * cfg.min_lot_depth_m:
            rows = [(v0, v1, lo_verge)]
        else:
            rows = [(v0, vm, lo_verge), (vm, v1, hi_verge)]
        for k, (rv0, rv1, verge) in enumerate(rows):
            if orient == 0:
                mean_w = cfg.lot_width_mean_m * math.exp(
                    cfg.lot_width_field_sd_log
                    * float(
                        0.55 * level((u0 + u1) / 2, rv0)[0]
                        + 0.84 * lot_width((u0 + u1) / 2, rv0)[0]
                    )
                )
            else:
                mean_w = cfg.lot_width_mean_m * math.exp(
                    cfg.lot_width_field_sd_log
                    * float(
                        0.55 * level(rv0, (u0 + u1) / 2)[0]
                        + 0.84 * lot_width(rv0, (u0 + u1) / 2)[0]
                    )
                )
            acc = u0
            for w in _row_widths(rng, u1 - u0, mean_w, cfg):
                if orient == 0:
                    lot_rect.append([acc, rv0, acc + w, rv1])
                    lot_face.append(FACE_N if k == 0 else FACE_S)
                else:
                    lot_rect.append([rv0, acc, rv1, acc + w])
                    lot_face.append(FACE_W if k == 0 else FACE_E)
                lot_verge.append(verge)
                acc += w
    lr = np.array(lot_rect, float).reshape(-1, 4)
    face = np.array(lot_face, int)

    def clear(rects: np.ndarray) -> np.ndarray:
        return (water_rect_distance(rects) > cfg.bank_m + 1.0) & (
            highway.distance_to_rects(rects) > cfg.verge_m + 2.0
        )

    keep = clear(lr)
    # Lots that run into the river bank or the highway verge are cut back (back fence or side
    # fence follows the obstacle) instead of being dropped, as real lots are.
    todo = np.flatnonzero(~keep)
    f = face[todo]
    along_x = np.isin(f, [FACE_N, FACE_S])
    depth = np.where(along_x, lr[todo, 3] - lr[todo, 1], lr[todo, 2] - lr[todo, 0])
    width = np.where(along_x, lr[todo, 2] - lr[todo, 0], lr[todo, 3] - lr[todo, 1])
    moves = [  # (coordinate moved, direction, room to move)
        (np.array([3, 1, 2, 0])[f], np.where(np.isin(f, [FACE_N, FACE_W]), -1.0, 1.0),
         depth - cfg.min_cut_lot_depth_m),
        (np.where(along_x, 0, 1), np.ones(len(f)), width - cfg.lot_width_range_m[0]),
        (np.where(along_x, 2, 3), -np.ones(len(f)), width - cfg.lot_width_range_m[0]),
    ]  # fmt: skip
    for step in np.arange(2.0, 40.0, 2.0):
        for coord, sign, room in moves:
            live = (~keep[todo]) & (room >= step)
            if not live.any():
                continue
            idx = todo[live]
            trial = lr[idx].copy()
            trial[np.arange(len(idx)), coord[live]] += sign[live] * step
            ok = clear(trial)
            lr[idx[ok]] = trial[ok]
            keep[idx[ok]] = True
    return _Layout(
        streets=Streets(np.array(street_rect, float), np.array(street_axis), np.array(street_kind)),
        lot_rect=lr[keep],
        lot_face=face[keep],
        lot_verge=np.array(lot_verge, float)[keep],
        parks=block_rect[is_park],
        waters=waters,
        highway=highway,
        level=level,
        lot_width=lot_width,
        leafy=leafy,
    )


# ----------------------------------------------------------------------------- houses


def _houses(rng: np.random.Generator, lay: _Layout, cfg: CityConfig) -> Lots:
    """Put a house, driveway, maybe a pool, on every lot."""
    n = len(lay.lot_rect)
    nan4 = np.full((n, 4), np.nan)
    house, chimney, driveway = nan4.copy(), nan4.copy(), nan4.copy()
    pool, deck = nan4.copy(), nan4.copy()
    storeys = rng.choice([1.0, 1.5, 2.0, 2.5], n, p=[0.25, 0.15, 0.5, 0.1])
    lvl = lay.level(*(lay.lot_rect[:, [0, 2]].mean(1), lay.lot_rect[:, [1, 3]].mean(1)))
    p_pool = np.clip(cfg.pool_probability * np.exp(0.25 * lvl), 0.02, 0.6)
    for i in range(n):
        x0, y0, x1, y1 = lay.lot_rect[i]
        face = int(lay.lot_face[i])
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
            drive = (da0, da0 + dw, -lay.lot_verge[i], front + hd * rng.uniform(0.2, 0.9))
        else:  # narrow lot: garage in front
            a_h0 = (lw - hw) / 2
            da0 = a_h0 + (0.5 if left else hw - dw - 0.5)
            drive = (da0, da0 + dw, -lay.lot_verge[i], front)
        lot = lay.lot_rect[i]
        house[i] = _lot_to_world(lot, face, a_h0, a_h0 + hw, front, front + hd)
        driveway[i] = _lot_to_world(lot, face, drive[0], drive[1], drive[2], drive[3])
        ca = a_h0 + rng.uniform(0.15, 0.85) * hw
        ct = front + rng.uniform(0.15, 0.85) * hd
        chimney[i] = _lot_to_world(lot, face, ca, ca + 0.9, ct, ct + 0.9)
        back = ld - (front + hd)
        if rng.random() < p_pool[i]:
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
                pool[i] = _lot_to_world(lot, face, a0, a0 + pa, t0, t0 + pt)
                deck[i] = _lot_to_world(
                    lot, face, a0 - margin, a0 + pa + margin, t0 - margin, t0 + pt + margin
                )
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


def _occupancy(lay: _Layout, size: float, cfg: CityConfig, res: float) -> np.ndarray:
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


def _trees(
    rng: np.random.Generator, lay: _Layout, lots: Lots, size: float, cfg: CityConfig
) -> Trees:
    xy: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    occ_res = 2.0
    occ = _occupancy(lay, size, cfg, occ_res)

    def occ_at(p: np.ndarray) -> np.ndarray:
        ij = np.clip((p / occ_res).astype(int), 0, occ.shape[0] - 1)
        return occ[ij[:, 1], ij[:, 0]]

    # Lot trees: per-lot greenery varies house to house around the neighbourhood's leafiness.
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

    # Street trees in the boulevards of local streets.
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
            drives = lots.driveway[_rects_near(lots.driveway, r, 2.0)]
            if len(drives) and len(p):
                p = p[rect_point_distance(drives, p).min(axis=0) > 1.5]
            xy.append(p)
            rad.append(rng.uniform(2.5, 4.5, len(p)))
            owner.append(np.full(len(p), -1))

    # Park trees: a few clusters plus scattered ones.
    for r in lay.parks:
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

    # Wild trees on free land (dense along the river) and on the highway verges.
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
    xy.append(p[keep])
    rad.append(rng.uniform(2.5, 5.5, int(keep.sum())))
    owner.append(np.full(int(keep.sum()), -1))

    all_xy = np.concatenate(xy) if xy else np.zeros((0, 2))
    return Trees(
        xy=all_xy,
        r=np.concatenate(rad),
        tone=rng.integers(0, N_TREE_TONES, len(all_xy)),
        lot=np.concatenate(owner).astype(int),
    )


def _park_paths(rng: np.random.Generator, parks: np.ndarray) -> list[np.ndarray]:
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


def _tree_cover(lots: Lots, trees: Trees, size: float) -> np.ndarray:
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


# ----------------------------------------------------------------------------- world


def build_world(seed: int, n_houses: int, cfg: CityConfig) -> World:
    """The city for ``seed``: big enough to hold ``n_houses`` sold houses away from the edges."""
    need = math.ceil(n_houses * cfg.lots_per_sale)
    size = max(cfg.min_world_m, math.sqrt(need * cfg.m2_per_lot) + 2 * cfg.edge_margin_m)
    for attempt in range(8):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 101, attempt]))
        lay = _layout(rng, size, cfg)
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
    lots = _houses(rng, lay, cfg)
    trees = _trees(rng, lay, lots, size, cfg)
    lots.tree_cover = _tree_cover(lots, trees, size)
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
    br = _bridges(lay.streets, lay.waters, cfg.bank_m)
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
        paths=_park_paths(rng, lay.parks),
        waters=lay.waters,
        bank_m=cfg.bank_m,
        highway=hw,
        verge_m=cfg.verge_m,
        lane_dashes=np.concatenate([_dashes(ln, 3.0, 9.0) for ln in lanes]),
        edge_lines=edge,
        median_line=hw.centre,
        local_asphalt_m=cfg.local_asphalt_m,
        arterial_asphalt_m=cfg.arterial_asphalt_m,
    )
