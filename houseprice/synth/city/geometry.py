"""Geometry primitives of the synthetic city: smooth random fields, bands and rectangles.

This module owns the shapes the world is built from, in metres (``x`` east, ``y`` SOUTH, origin
at the north-west corner): :class:`SmoothField` (neighbourhood-scale random fields such as the
price level), :class:`Band` (a river or highway: a dense centre line with a half width, its
outline and exact distances to it) and the rectangle / polyline helpers the layout uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree


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


def rect_point_distance(rects: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Pairwise distance (N, M) from rectangles (N, 4) to points (M, 2); 0 inside."""
    dx = np.maximum(np.maximum(rects[:, 0:1] - pts[None, :, 0], pts[None, :, 0] - rects[:, 2:3]), 0)
    dy = np.maximum(np.maximum(rects[:, 1:2] - pts[None, :, 1], pts[None, :, 1] - rects[:, 3:4]), 0)
    return np.hypot(dx, dy)


def rects_near(rects: np.ndarray, box: np.ndarray, pad: float) -> np.ndarray:
    """Mask of rectangles (N, 4) that intersect ``box`` (4,) grown by ``pad``."""
    return (
        (rects[:, 2] > box[0] - pad) & (rects[:, 0] < box[2] + pad)
        & (rects[:, 3] > box[1] - pad) & (rects[:, 1] < box[3] + pad)
    )  # fmt: skip


def make_band(
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


def dashes(line: np.ndarray, dash_m: float, gap_m: float) -> np.ndarray:
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


def water_point_distance(waters: list[Band], pts: np.ndarray) -> np.ndarray:
    """Distance (m) from points (N, 2) to the nearest water edge."""
    return np.min([b.distance_to_points(pts) for b in waters], axis=0)


__all__ = [
    "Band",
    "SmoothField",
    "dashes",
    "make_band",
    "rect_point_distance",
    "rects_near",
    "water_point_distance",
]
