"""Drawing one synthetic-bird image: the bird, its cluttered background and its mask.

This module owns :func:`render_image`: a bird (see ``parts``) drawn with a random pose, scale,
position and flip on a cluttered background that reuses the birds' palette (large blobs,
branches with leaves, texture dots and distractors at the scale of bird parts), sometimes on a
perch or behind a leaf, with a pixel-exact mask. Each image is a pure function of
``(config.seed, class_id, index)``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from houseprice.synth.birds.classes import COLOURS, RGB, TAIL_SHAPES, BirdClass
from houseprice.synth.birds.config import BirdsConfig
from houseprice.synth.birds.parts import (
    TAIL_POLYGONS,
    bird_parts,
    ellipse,
    ellipse_band,
    jittered_colour,
    place,
    rotation,
)


def _poly(points: np.ndarray) -> list[float]:
    return [float(v) for v in points.ravel()]


def _random_colour(rng: np.random.Generator, jitter: int = 20) -> RGB:
    return jittered_colour(rng, COLOURS[int(rng.integers(len(COLOURS)))], jitter)


def _mix(c0: RGB, c1: RGB, t: float) -> RGB:
    return (
        round(c0[0] * (1 - t) + c1[0] * t),
        round(c0[1] * (1 - t) + c1[1] * t),
        round(c0[2] * (1 - t) + c1[2] * t),
    )


def _blob(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """A random star-convex polygon (leaf/rock/bush-like)."""
    n = int(rng.integers(5, 10))
    t = np.sort(rng.uniform(0.0, 2.0 * math.pi, n))
    r = radius * rng.uniform(0.55, 1.0, n)
    return centre + np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _leaf(rng: np.random.Generator, centre: np.ndarray, length: float) -> np.ndarray:
    return place(ellipse(length / 2, length / 5, n=14), rng.uniform(0, math.pi), tuple(centre))


def _branch(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, start: np.ndarray, size: float
) -> None:
    """A random-walk branch with twigs and leaves, all from the shared palette."""
    colour = jittered_colour(
        rng, ("brown", "grey", "tan", "black", "olive")[int(rng.integers(5))], 15
    )
    angle = rng.uniform(0, 2 * math.pi)
    width = max(1, round(size * rng.uniform(0.012, 0.035)))
    pts = [start]
    for _ in range(int(rng.integers(3, 7))):
        angle += rng.uniform(-0.5, 0.5)
        step = size * rng.uniform(0.12, 0.3)
        pts.append(pts[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
    draw.line(_poly(np.array(pts)), fill=colour, width=width, joint="curve")
    for p in pts[1:]:
        if rng.random() < 0.5:
            twig_dir = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2)
            step = size * rng.uniform(0.05, 0.15)
            end = p + step * np.array([math.cos(twig_dir), math.sin(twig_dir)])
            draw.line(_poly(np.array([p, end])), fill=colour, width=max(1, width // 2))
        for _ in range(int(rng.integers(0, 3))):
            leaf_c = p + rng.normal(0, size * 0.04, 2)
            leaf = _leaf(rng, leaf_c, size * rng.uniform(0.04, 0.1))
            draw.polygon(_poly(leaf), fill=_random_colour(rng))


def _draw_background(image: Image.Image, rng: np.random.Generator, part_px: float) -> None:
    """Cluttered scene: muted base, large blobs, branches with leaves, texture dots, and
    bird-part-sized distractors (heads, beaks, barred ellipses) in the birds' own palette."""
    size = image.size[0]
    draw = ImageDraw.Draw(image)
    base = _mix(_random_colour(rng), (int(rng.integers(90, 200)),) * 3, rng.uniform(0.3, 0.7))
    draw.rectangle([0, 0, size, size], fill=base)
    for _ in range(int(rng.integers(3, 7))):  # large soft regions (foliage, sky, rocks)
        centre = rng.uniform(-0.1, 1.1, 2) * size
        colour = _mix(_random_colour(rng), base, rng.uniform(0.0, 0.5))
        draw.polygon(_poly(_blob(rng, centre, size * rng.uniform(0.2, 0.5))), fill=colour)
    for _ in range(int(rng.integers(10, 25))):  # medium clutter
        centre = rng.uniform(0, 1, 2) * size
        blob = _blob(rng, centre, size * rng.uniform(0.02, 0.09))
        draw.polygon(_poly(blob), fill=_random_colour(rng))
    for _ in range(int(rng.integers(1, 4))):  # branches with leaves
        _branch(draw, rng, rng.uniform(0, 1, 2) * size, size)
    for _ in range(int(rng.integers(1, 4))):  # distractors at the scale of bird parts
        centre = rng.uniform(0.05, 0.95, 2) * size
        kind = int(rng.integers(3))
        r = part_px * rng.uniform(0.8, 1.3)
        if kind == 0:  # head-like disc with a beak-like triangle
            draw.polygon(_poly(ellipse(r, r, n=20) + centre), fill=_random_colour(rng))
            d = rng.uniform(0, 2 * math.pi)
            tri = centre + np.array(
                [
                    [r * math.cos(d - 0.4), r * math.sin(d - 0.4)],
                    [2.2 * r * math.cos(d), 2.2 * r * math.sin(d)],
                    [r * math.cos(d + 0.4), r * math.sin(d + 0.4)],
                ]
            )
            draw.polygon(_poly(tri), fill=_random_colour(rng))
        elif kind == 1:  # wing-like barred ellipse
            angle = rng.uniform(0, math.pi)
            wa, wb = 2.4 * r, 1.0 * r
            wing = place(ellipse(wa, wb), angle, tuple(centre))
            draw.polygon(_poly(wing), fill=_random_colour(rng))
            colour = _random_colour(rng)
            for lo in (-0.6, -0.1, 0.4):
                band = ellipse_band(wa, wb, lo * wa, (lo + 0.17) * wa, axis=0, n=6)
                draw.polygon(_poly(place(band, angle, tuple(centre))), fill=colour)
        else:  # tail-like wedge
            angle = rng.uniform(0, 2 * math.pi)
            wedge = TAIL_POLYGONS[TAIL_SHAPES[int(rng.integers(len(TAIL_SHAPES)))]] * (r / 0.15)
            draw.polygon(_poly(place(wedge, angle, tuple(centre))), fill=_random_colour(rng))
    n_dots = int(rng.integers(40, 120))  # fine texture
    centres = rng.uniform(0, size, (n_dots, 2))
    radii = rng.uniform(0.004, 0.015, n_dots) * size
    for (cx, cy), r in zip(centres, radii, strict=True):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_random_colour(rng, 30))


def render_image(cls: BirdClass, index: int, config: BirdsConfig) -> tuple[Image.Image, np.ndarray]:
    """Render image ``index`` of class ``cls``: ``(RGB image, bool mask (P, P))``.

    A pure function of ``(config, cls, index)``: the RNG stream is seeded by
    ``(config.seed, cls.class_id, index)``, so images do not depend on generation order.
    """
    rng = np.random.default_rng([config.seed, cls.class_id, index, 0x1A6E])
    ss = config.supersample
    canvas = config.image_px * ss
    lo, hi = config.area_range
    for _ in range(20):  # retry only in the (unexpected) case of an empty mask
        parts, feet = bird_parts(cls, rng, config.colour_jitter)
        theta = math.radians(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
        sign = -1.0 if rng.random() < 0.5 else 1.0  # horizontal flip
        rot = rotation(theta) @ np.diag([sign, 1.0])
        all_pts = np.concatenate([poly for poly, _ in parts]) @ rot.T
        pmin, pmax = all_pts.min(axis=0), all_pts.max(axis=0)
        bw, bh = pmax - pmin
        area_frac = rng.uniform(lo, hi)
        scale = min(math.sqrt(area_frac * canvas * canvas / (bw * bh)), canvas / max(bw, bh))
        box_w, box_h = bw * scale, bh * scale
        if rng.random() < config.inside_prob:
            x0 = rng.uniform(0.0, canvas - box_w)
            y0 = rng.uniform(0.0, canvas - box_h)
        else:
            x0 = rng.uniform(-0.2 * box_w, canvas - 0.8 * box_w)
            y0 = rng.uniform(-0.2 * box_h, canvas - 0.8 * box_h)
        shift = np.array([x0, y0]) - scale * pmin

        def to_canvas(
            points: np.ndarray,
            rot: np.ndarray = rot,
            scale: float = scale,
            shift: np.ndarray = shift,
        ) -> np.ndarray:
            return (points @ rot.T) * scale + shift  # (K, 2) canvas pixels

        image = Image.new("RGB", (canvas, canvas))
        _draw_background(image, rng, part_px=0.15 * scale)
        draw = ImageDraw.Draw(image)
        mask = Image.new("L", (canvas, canvas), 0)
        mdraw = ImageDraw.Draw(mask)
        if rng.random() < 0.6:  # a perch through the feet, behind the bird
            f0, f1 = to_canvas(feet + np.array([0.0, 0.03]))
            direction = (f1 - f0) / (np.linalg.norm(f1 - f0) + 1e-9)
            ends = np.array([f0 - 3 * canvas * direction, f1 + 3 * canvas * direction])
            colour = jittered_colour(
                rng, ("brown", "grey", "tan", "black")[int(rng.integers(4))], 15
            )
            draw.line(_poly(ends), fill=colour, width=max(1, round(0.05 * scale)))
        for poly, colour in parts:
            xy = _poly(to_canvas(poly))
            draw.polygon(xy, fill=colour)
            mdraw.polygon(xy, fill=255)
        if rng.random() < 0.2:  # a small occluding leaf in front of the bird
            centre = to_canvas(rng.uniform([-0.5, -0.2], [0.3, 0.3])[None])[0]
            leaf = _poly(_leaf(rng, centre, scale * rng.uniform(0.15, 0.3)))
            draw.polygon(leaf, fill=_random_colour(rng))
            mdraw.polygon(leaf, fill=0)
        if ss > 1:
            image = image.reduce(ss)
            mask = mask.reduce(ss)
        mask_arr = np.asarray(mask) >= 128  # (P, P)
        if mask_arr.any():
            break
    else:
        raise RuntimeError(
            f"could not place a visible bird for class {cls.class_id}, image {index}"
        )
    gain = rng.uniform(0.85, 1.15)  # illumination
    pixels = np.asarray(image, dtype=np.float32) * gain
    pixels += rng.normal(0.0, config.noise_sigma, pixels.shape).astype(np.float32)
    out = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="RGB")
    return out, mask_arr


__all__ = ["render_image"]
