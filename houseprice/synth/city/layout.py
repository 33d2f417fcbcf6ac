"""Street layout of the synthetic city: arterial grid, blocks, parks, lots, river and highway.

This module owns where everything is, before anything is built on it: a meandering river and a
creek, a curved highway, the arterial grid, superblocks cut by local streets in one of two
orientations, the park blocks, and the lots (rows of rectangles of varying width, facing their
street). Lots that run into the river bank or the highway verge are cut back, as real lots
are. The drawing order and the houses on the lots live in ``render`` and ``objects``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from houseprice.synth.city.config import CityConfig
from houseprice.synth.city.geometry import Band, SmoothField, make_band

# Lot faces: the side of the lot that touches its street.
FACE_N, FACE_S, FACE_W, FACE_E = 0, 1, 2, 3

#: A block: rect (x0, y0, x1, y1), orientation (0: rows along x), verge on its low / high side.
Block = tuple[list[float], int, float, float]


@dataclass
class Streets:
    """Street right-of-way rectangles (pavement, sidewalks and boulevards)."""

    rect: np.ndarray  # (S, 4) x0, y0, x1, y1
    axis: np.ndarray  # (S,) 0 = runs east-west, 1 = runs north-south
    kind: np.ndarray  # (S,) 0 = local, 1 = arterial, 2 = arterial bridge over water


@dataclass
class _StreetList:
    """Street rectangles collected while laying out the grid (see :class:`Streets`)."""

    rect: list[list[float]] = field(default_factory=list)
    axis: list[int] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)

    def add(self, rect: list[float], axis: int, kind: int) -> None:
        self.rect.append(rect)
        self.axis.append(axis)
        self.kind.append(kind)

    def freeze(self) -> Streets:
        return Streets(np.array(self.rect, float), np.array(self.axis), np.array(self.kind))


@dataclass
class Layout:
    """The city before building: streets, lots (rect, face, front verge), parks, water, highway
    and the neighbourhood fields (price level, typical lot width, leafiness)."""

    streets: Streets
    lot_rect: np.ndarray  # (L, 4)
    lot_face: np.ndarray  # (L,) FACE_*
    lot_verge: np.ndarray  # (L,) lot front to asphalt edge
    parks: np.ndarray
    waters: list[Band]
    highway: Band
    level: SmoothField
    lot_width: SmoothField
    leafy: SmoothField


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


def bridges(
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


def _water_rect_distance(waters: list[Band], rects: np.ndarray) -> np.ndarray:
    return np.min([b.distance_to_rects(rects) for b in waters], axis=0)


def _waterways(rng: np.random.Generator, size: float, cfg: CityConfig) -> tuple[list[Band], Band]:
    """The river and the creek (across the world along one axis) and the highway (the other)."""
    river_axis = int(rng.integers(2))
    river_side = bool(rng.integers(2))
    river = make_band(
        rng, size, river_axis, rng.uniform(0.25, 0.42) + 0.33 * river_side,
        rng.uniform(*cfg.river_width_m) / 2, rng.uniform(50, 110), (700, 1300), 0.15,
    )  # fmt: skip
    creek = make_band(
        rng, size, river_axis, rng.uniform(0.25, 0.42) + 0.33 * (not river_side),
        rng.uniform(*cfg.creek_width_m) / 2, rng.uniform(35, 70), (450, 800), 0.2,
    )  # fmt: skip
    highway = make_band(
        rng, size, 1 - river_axis, rng.uniform(0.3, 0.7), cfg.highway_width_m / 2,
        rng.uniform(12, 35), (1800, 3200), 0.0, 8.0,
    )  # fmt: skip
    return [river, creek], highway


def _arterials(
    rng: np.random.Generator, size: float, cfg: CityConfig, streets: _StreetList
) -> list[list[float]]:
    """Positions of the north-south (``[0]``) and east-west (``[1]``) arterials (also added to
    ``streets``)."""
    a_row = cfg.arterial_row_m
    lines: list[list[float]] = []
    for _ in range(2):
        pos, acc = [], rng.uniform(0.2, 0.8) * cfg.arterial_spacing_m[0]
        while acc < size - 0.5 * a_row:
            pos.append(acc)
            acc += rng.uniform(*cfg.arterial_spacing_m)
        lines.append(pos)
    for x in lines[0]:  # north-south arterials
        streets.add([x - a_row / 2, 0.0, x + a_row / 2, size], 1, 1)
    for y in lines[1]:  # east-west arterials
        streets.add([0.0, y - a_row / 2, size, y + a_row / 2], 0, 1)
    return lines


def _cells(pos: list[float], size: float, a_row: float) -> list[tuple[float, float, bool, bool]]:
    """Intervals between arterials: (start, end, arterial at start, arterial at end)."""
    edges = [(0.0, False)] + [
        e for p in pos for e in ((p - a_row / 2, True), (p + a_row / 2, True))
    ]
    edges.append((size, False))
    return [
        (edges[i][0], edges[i + 1][0], edges[i][1], edges[i + 1][1])
        for i in range(0, len(edges), 2)
    ]


def _blocks(
    rng: np.random.Generator,
    size: float,
    cfg: CityConfig,
    lines: list[list[float]],
    streets: _StreetList,
) -> list[Block]:
    """Cut each superblock into rows of blocks by local streets (added to ``streets``)."""
    a_row, l_row = cfg.arterial_row_m, cfg.local_row_m
    blocks: list[Block] = []
    a_verge = (a_row - cfg.arterial_asphalt_m) / 2
    l_verge = (l_row - cfg.local_asphalt_m) / 2
    for x0, x1, art_w, art_e in _cells(lines[0], size, a_row):
        for y0, y1, art_n, art_s in _cells(lines[1], size, a_row):
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
                streets.add(
                    [c - l_row / 2, v0, c + l_row / 2, v1]
                    if ew
                    else [v0, c - l_row / 2, v1, c + l_row / 2],
                    1 if ew else 0,
                    0,
                )
            for j in range(n_v):
                bv0 = v0 + j * (d + l_row)
                bv1 = bv0 + d
                if j < n_v - 1:  # local street below this block row
                    r = [u0, bv1, u1, bv1 + l_row]
                    streets.add(r if ew else [r[1], r[0], r[3], r[2]], 0 if ew else 1, 0)
                lo_verge = (a_verge if v_lo_art else 0.0) if j == 0 else l_verge
                hi_verge = (a_verge if v_hi_art else 0.0) if j == n_v - 1 else l_verge
                for i in range(0, len(u_edges), 2):
                    bu0, bu1 = u_edges[i], u_edges[i + 1]
                    if bu1 - bu0 < 20:
                        continue
                    rect = [bu0, bv0, bu1, bv1] if ew else [bv0, bu0, bv1, bu1]
                    blocks.append((rect, 0 if ew else 1, lo_verge, hi_verge))
    return blocks


def _parks(
    rng: np.random.Generator,
    block_rect: np.ndarray,
    waters: list[Band],
    highway: Band,
    cfg: CityConfig,
) -> np.ndarray:
    """Which blocks are parks: a share of those well away from water and highway (at least one)."""
    far = (_water_rect_distance(waters, block_rect) > cfg.park_clearance_m) & (
        highway.distance_to_rects(block_rect) > cfg.verge_m + cfg.park_clearance_m
    )
    is_park = far & (rng.random(len(block_rect)) < cfg.park_block_fraction)
    if not is_park.any() and far.any():
        is_park[rng.choice(np.flatnonzero(far))] = True
    return is_park


def _lots(
    rng: np.random.Generator,
    blocks: list[Block],
    is_park: np.ndarray,
    level: SmoothField,
    lot_width: SmoothField,
    cfg: CityConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lot rectangles (L, 4), faces (L,) and front verges (L,): one or two rows per block."""
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
            # Typical lot width of the row: wide where the neighbourhood is rich or spacious.
            at = ((u0 + u1) / 2, rv0) if orient == 0 else (rv0, (u0 + u1) / 2)
            mean_w = cfg.lot_width_mean_m * math.exp(
                cfg.lot_width_field_sd_log * float(0.55 * level(*at)[0] + 0.84 * lot_width(*at)[0])
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
    return lr, np.array(lot_face, int), np.array(lot_verge, float)


def _cut_back(
    lr: np.ndarray, face: np.ndarray, waters: list[Band], highway: Band, cfg: CityConfig
) -> np.ndarray:
    """Shrink, in place, the lots that touch the river bank or the highway verge; return which
    lots are clear now (the rest are dropped)."""

    def clear(rects: np.ndarray) -> np.ndarray:
        return (_water_rect_distance(waters, rects) > cfg.bank_m + 1.0) & (
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
    return keep


def build_layout(rng: np.random.Generator, size: float, cfg: CityConfig) -> Layout:
    """Streets, blocks, parks and lot rectangles; lots too close to water/highway are dropped."""
    level, lot_width, leafy = (SmoothField.random(rng, size) for _ in range(3))
    waters, highway = _waterways(rng, size, cfg)
    streets = _StreetList()
    lines = _arterials(rng, size, cfg, streets)
    blocks = _blocks(rng, size, cfg, lines, streets)
    block_rect = np.array([b[0] for b in blocks], float).reshape(-1, 4)
    is_park = _parks(rng, block_rect, waters, highway, cfg)
    lr, face, verge = _lots(rng, blocks, is_park, level, lot_width, cfg)
    keep = _cut_back(lr, face, waters, highway, cfg)
    return Layout(
        streets=streets.freeze(),
        lot_rect=lr[keep],
        lot_face=face[keep],
        lot_verge=verge[keep],
        parks=block_rect[is_park],
        waters=waters,
        highway=highway,
        level=level,
        lot_width=lot_width,
        leafy=leafy,
    )


__all__ = ["FACE_E", "FACE_N", "FACE_S", "FACE_W", "Layout", "Streets", "bridges", "build_layout"]
