"""Shapes of a synthetic bird in its canonical frame (facing +x, y down, body length ~1).

This module owns the geometry of one bird instance: the part polygons (legs, tail, crest, body,
belly, wing with its pattern, head, beak, eye ring, eye), drawn back to front, with per-image
freedom in size, angles and colour jitter, plus the small shape helpers (rotation, ellipses,
ellipse bands, thick segments) that the background drawing reuses.
"""

from __future__ import annotations

import math

import numpy as np

from houseprice.synth.birds.classes import EYE_COLOUR, LEG_COLOUR, PALETTE, RGB, BirdClass

#: Polygons of one bird, back to front, each with its colour.
Parts = list[tuple[np.ndarray, RGB]]


def rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def place(points: np.ndarray, angle: float, offset: tuple[float, float]) -> np.ndarray:
    """Rotate ``(K, 2)`` points by ``angle`` then translate by ``offset``."""
    return points @ rotation(angle).T + np.asarray(offset)


def ellipse(a: float, b: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)  # (n, 2)


def ellipse_band(a: float, b: float, lo: float, hi: float, axis: int, n: int = 10) -> np.ndarray:
    """Part of the axis-aligned ellipse whose coordinate ``axis`` (0=x, 1=y) is in [lo, hi]."""
    half_u, half_v = (a, b) if axis == 0 else (b, a)
    u = np.linspace(max(lo, -half_u), min(hi, half_u), n)
    v = half_v * np.sqrt(np.clip(1.0 - (u / half_u) ** 2, 0.0, None))
    uu = np.concatenate([u, u[::-1]])
    vv = np.concatenate([-v, v[::-1]])
    pts = np.stack([uu, vv], axis=1) if axis == 0 else np.stack([vv, uu], axis=1)
    return pts  # (2n, 2)


def _thick_segment(p0: np.ndarray, p1: np.ndarray, width: float) -> np.ndarray:
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * (width / 2.0)
    return np.stack([p0 + normal, p1 + normal, p1 - normal, p0 - normal])  # (4, 2)


TAIL_POLYGONS: dict[str, np.ndarray] = {
    "fan": np.array(
        [[0.05, -0.06], [-0.32, -0.16], [-0.37, -0.05], [-0.37, 0.05], [-0.32, 0.16], [0.05, 0.06]]
    ),
    "forked": np.array([[0.05, -0.05], [-0.42, -0.15], [-0.25, 0.0], [-0.42, 0.15], [0.05, 0.05]]),
    "pointed": np.array([[0.05, -0.06], [-0.50, 0.0], [0.05, 0.06]]),
    "square": np.array([[0.05, -0.07], [-0.31, -0.08], [-0.31, 0.08], [0.05, 0.07]]),
}
_SPOTS = np.array([[-0.55, 0.0], [-0.2, -0.4], [-0.2, 0.4], [0.15, 0.0], [0.45, -0.3], [0.45, 0.3]])


def jittered_colour(rng: np.random.Generator, name: str, amount: int) -> RGB:
    base = np.asarray(PALETTE[name], dtype=np.int64)
    out = np.clip(base + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(out[0]), int(out[1]), int(out[2]))


def _legs_and_tail(
    cls: BirdClass, rng: np.random.Generator, jitter: int, a: float, b: float, body_angle: float
) -> tuple[Parts, np.ndarray]:
    """Legs (vertical in the canonical frame) with a short forward toe, then the tail; feet."""
    origin = (0.0, 0.0)
    parts: Parts = []
    hips = place(np.array([[0.0, 0.8 * b], [0.3 * a, 0.75 * b]]), body_angle, origin)
    feet = hips + np.array([0.0, 0.17])
    for hip, foot in zip(hips, feet, strict=True):
        parts.append((_thick_segment(hip, foot, 0.04), LEG_COLOUR))
        parts.append((_thick_segment(foot, foot + np.array([0.07, 0.0]), 0.035), LEG_COLOUR))

    # tail, attached at the back of the body, angled with some per-image freedom
    tail_root = place(np.array([[-0.85 * a, 0.0]]), body_angle, origin)[0]
    tail_angle = body_angle + math.radians(rng.uniform(-12.0, 12.0))
    tail = place(TAIL_POLYGONS[cls.tail_shape], tail_angle, (tail_root[0], tail_root[1]))
    parts.append((tail, jittered_colour(rng, cls.tail_color, jitter)))
    return parts, feet


def _wing(
    cls: BirdClass, rng: np.random.Generator, jitter: int, a: float, b: float, body_angle: float
) -> Parts:
    """The wing with its pattern (bars: bands across the wing; spots: discs inside it)."""
    parts: Parts = []
    wa, wb = 0.72 * a, 0.55 * b
    wing_angle = body_angle + math.radians(8.0 + rng.uniform(-6.0, 6.0))
    wc = place(np.array([[-0.12 * a, -0.1 * b]]), body_angle, (0.0, 0.0))[0]
    wing_c = (wc[0], wc[1])
    wing_colour = jittered_colour(rng, cls.wing_color, jitter)
    parts.append((place(ellipse(wa, wb), wing_angle, wing_c), wing_colour))
    if cls.wing_pattern == "bars":
        colour = jittered_colour(rng, cls.pattern_color, jitter)
        for lo, hi in ((-0.62, -0.45), (-0.2, -0.03), (0.22, 0.39)):
            band = ellipse_band(wa, wb, lo * wa, hi * wa, axis=0, n=6)
            parts.append((place(band, wing_angle, wing_c), colour))
    elif cls.wing_pattern == "spots":
        colour = jittered_colour(rng, cls.pattern_color, jitter)
        for sx, sy in _SPOTS:
            spot = ellipse(0.2 * wb, 0.2 * wb, n=12) + np.array([sx * wa, sy * wb])
            parts.append((place(spot, wing_angle, wing_c), colour))
    return parts


def _head(
    cls: BirdClass,
    rng: np.random.Generator,
    jitter: int,
    head_r: float,
    head_c: np.ndarray,
    head_colour: RGB,
) -> Parts:
    """Head, beak, eye ring and eye."""
    parts: Parts = [(ellipse(head_r, head_r) + head_c, head_colour)]
    beak_dir = math.radians(8.0 + rng.uniform(-10.0, 10.0))
    beak_len = (0.24 if cls.beak_length == "long" else 0.09) * rng.uniform(0.92, 1.08)
    angles = np.array([beak_dir - 0.38, beak_dir, beak_dir + 0.38])
    radii = np.array([0.92 * head_r, head_r + beak_len, 0.92 * head_r])
    beak = head_c + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    parts.append((beak, jittered_colour(rng, cls.beak_color, jitter)))
    eye_c = head_c + 0.45 * head_r * np.array([math.cos(-0.55), math.sin(-0.55)])
    if cls.eye_ring != "none":
        ring = ellipse(0.34 * head_r, 0.34 * head_r, n=16) + eye_c
        parts.append((ring, jittered_colour(rng, cls.eye_ring, jitter)))
    parts.append((ellipse(0.18 * head_r, 0.18 * head_r, n=12) + eye_c, EYE_COLOUR))
    return parts


def bird_parts(cls: BirdClass, rng: np.random.Generator, jitter: int) -> tuple[Parts, np.ndarray]:
    """Polygons (canonical frame) and colours of one bird instance, back to front; feet (2, 2)."""
    a = 0.40 * rng.uniform(0.95, 1.05)
    b = (0.27 if cls.body_shape == "round" else 0.20) * rng.uniform(0.95, 1.05)
    body_angle = math.radians(-20.0 + rng.uniform(-6.0, 6.0))
    origin = (0.0, 0.0)
    parts, feet = _legs_and_tail(cls, rng, jitter, a, b, body_angle)

    # head geometry first: the crest is drawn behind the head
    head_r = 0.15 * rng.uniform(0.92, 1.08)
    head_c = np.array([0.44 + rng.uniform(-0.03, 0.03), -0.30 + rng.uniform(-0.04, 0.04)])
    head_colour = jittered_colour(rng, cls.head_color, jitter)
    if cls.crest:
        # a tuft from the back-top of the head: base on the head circle, apex up and back
        crest = np.array([[-0.85, -0.31], [-1.05, -1.75], [-0.35, -1.35], [0.15, -0.89]])
        crest = crest * head_r + head_c
        parts.append((crest, head_colour))

    # body, and the belly as the lower band of the body ellipse
    body_colour = jittered_colour(rng, cls.body_color, jitter)
    parts.append((place(ellipse(a, b), body_angle, origin), body_colour))
    belly = ellipse_band(a, b, 0.15 * b, b, axis=1)
    parts.append((place(belly, body_angle, origin), jittered_colour(rng, cls.belly_color, jitter)))
    parts += _wing(cls, rng, jitter, a, b, body_angle)
    parts += _head(cls, rng, jitter, head_r, head_c, head_colour)
    return parts, feet


__all__ = [
    "TAIL_POLYGONS",
    "Parts",
    "bird_parts",
    "ellipse",
    "ellipse_band",
    "jittered_colour",
    "place",
    "rotation",
]
