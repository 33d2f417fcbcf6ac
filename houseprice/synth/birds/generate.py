"""Synthetic birds: a CUB-200-2011 stand-in written in the official folder layout.

This module owns the generator behind ``houseprice data synth-birds``: ``n_classes``
fine-grained classes of part-based "birds" (body, belly, head, crest, wing with a pattern, tail,
beak, eye/eye ring, legs) drawn with a random pose, scale, position and flip on cluttered
backgrounds that reuse the birds' palette, with a pixel-exact mask and its tight box. Classes
come in sibling groups of four: a random base class and three siblings that each differ from it
in one small part only (beak colour or length, eye ring, crest, wing pattern, tail shape, ...),
as real bird species often do.

The output is readable by :func:`houseprice.data.cub.read_cub_index` (``images.txt``,
``classes.txt``, ``image_class_labels.txt``, ``train_test_split.txt``, ``bounding_boxes.txt``,
``images/``, ``segmentations/``) plus a ``dataset.json`` describing the generator, its config and
every class's attributes. Output is a pure function of the config (per-image RNG streams), and
the folder is written atomically (temp sibling folder, then rename).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from tqdm import tqdm

GENERATOR_NAME = "houseprice.synth.birds"
GENERATOR_VERSION = "1"

RGB = tuple[int, int, int]

# One palette for birds and backgrounds, so colour alone does not localise the bird.
PALETTE: dict[str, RGB] = {
    "black": (25, 25, 28),
    "white": (238, 236, 228),
    "grey": (135, 135, 135),
    "brown": (115, 72, 38),
    "tan": (205, 175, 125),
    "red": (200, 35, 35),
    "orange": (240, 135, 25),
    "yellow": (245, 215, 45),
    "olive": (125, 135, 45),
    "green": (45, 145, 65),
    "blue": (40, 85, 205),
    "teal": (35, 165, 170),
}
COLOURS = tuple(PALETTE)
BEAK_COLOURS = ("black", "yellow", "orange", "grey", "red")
EYE_RINGS = ("none", "white", "yellow", "red", "blue")
WING_PATTERNS = ("plain", "bars", "spots")
TAIL_SHAPES = ("fan", "forked", "pointed", "square")
BODY_SHAPES = ("slim", "round")
BEAK_LENGTHS = ("short", "long")
# Attributes a sibling class may change (small parts only).
SIBLING_MUTATIONS = (
    "beak_color",
    "beak_length",
    "eye_ring",
    "crest",
    "wing_pattern",
    "pattern_color",
    "tail_shape",
    "head_color",
)
LEG_COLOUR: RGB = (70, 55, 45)
EYE_COLOUR: RGB = (10, 10, 12)

PROFILES: dict[str, dict[str, int]] = {
    "quick": {"n_classes": 20, "images_per_class": 6, "image_px": 64},
    "standard": {"n_classes": 200, "images_per_class": 60, "image_px": 128},
}


@dataclass(frozen=True)
class BirdsConfig:
    """Everything the generated dataset depends on (stored in dataset.json)."""

    n_classes: int = 200
    images_per_class: int = 60
    image_px: int = 128
    seed: int = 0
    jpeg_quality: int = 90
    supersample: int = 2  # draw at this multiple, then box-downsample (anti-aliasing)
    area_range: tuple[float, float] = (0.10, 0.60)  # bird box area / image area
    max_rotation_deg: float = 30.0
    colour_jitter: int = 12  # per-part, per-image RGB jitter (palette colours are >= 60 apart)
    noise_sigma: float = 4.0  # Gaussian pixel noise, in 0..255 units
    inside_prob: float = 0.8  # else the box may stick out of the image by <= 20% per side

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2 (train/test halves); got {self.n_classes}")
        if self.images_per_class < 1:
            raise ValueError(f"images_per_class must be >= 1; got {self.images_per_class}")
        if self.image_px < 16:
            raise ValueError(f"image_px must be >= 16; got {self.image_px}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be in [1, 95]; got {self.jpeg_quality}")
        if self.supersample < 1:
            raise ValueError(f"supersample must be >= 1; got {self.supersample}")
        lo, hi = self.area_range
        if not 0.0 < lo <= hi <= 0.9:
            raise ValueError(f"area_range needs 0 < min <= max <= 0.9; got {self.area_range}")


@dataclass(frozen=True)
class BirdClass:
    """Visual attributes of one class (colours are PALETTE names)."""

    class_id: int
    name: str
    group: int  # sibling group (4 consecutive classes)
    base_class_id: int  # the group's base class (itself for the base)
    differs_in: str  # attribute changed from the base class ("" for the base)
    body_shape: str
    body_color: str
    belly_color: str
    wing_color: str
    wing_pattern: str
    pattern_color: str  # "none" when the wing is plain
    head_color: str
    crest: bool
    tail_shape: str
    tail_color: str
    beak_length: str
    beak_color: str
    eye_ring: str  # "none" or a PALETTE name

    def signature(self) -> tuple[Any, ...]:
        """The visual attributes only (two classes may never share a signature)."""
        skip = {"class_id", "name", "group", "base_class_id", "differs_in"}
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in skip)


def class_folder(class_id: int) -> str:
    """``001.Synth_Bird_001``-style folder name (CUB: ``001.Black_footed_Albatross``)."""
    return f"{class_id:03d}.Synth_Bird_{class_id:03d}"


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options: tuple[str, ...], *exclude: str) -> str:
    allowed = [o for o in options if o not in exclude]
    return allowed[int(rng.integers(len(allowed)))]


def _random_base(rng: np.random.Generator) -> dict[str, Any]:
    body = _pick(rng, COLOURS)
    wing = _pick(rng, COLOURS) if rng.random() < 0.7 else body
    pattern = _pick(rng, WING_PATTERNS)
    head = _pick(rng, COLOURS)
    return {
        "body_shape": _pick(rng, BODY_SHAPES),
        "body_color": body,
        "belly_color": _pick(rng, COLOURS) if rng.random() < 0.6 else body,
        "wing_color": wing,
        "wing_pattern": pattern,
        "pattern_color": "none" if pattern == "plain" else _pick(rng, COLOURS, wing),
        "head_color": head,
        "crest": bool(rng.random() < 0.3),
        "tail_shape": _pick(rng, TAIL_SHAPES),
        "tail_color": wing if rng.random() < 0.5 else _pick(rng, COLOURS),
        "beak_length": _pick(rng, BEAK_LENGTHS),
        "beak_color": _pick(rng, BEAK_COLOURS, head),
        "eye_ring": _pick(rng, EYE_RINGS, head) if rng.random() < 0.5 else "none",
    }


def _mutate(rng: np.random.Generator, attrs: dict[str, Any], key: str) -> dict[str, Any] | None:
    """Copy of ``attrs`` with only ``key`` (and its dependent colour) changed; None if n/a."""
    out = dict(attrs)
    if key == "beak_color":
        out[key] = _pick(rng, BEAK_COLOURS, attrs[key], attrs["head_color"])
    elif key == "beak_length":
        out[key] = _pick(rng, BEAK_LENGTHS, attrs[key])
    elif key == "eye_ring":
        out[key] = _pick(rng, EYE_RINGS, attrs[key], attrs["head_color"])
    elif key == "crest":
        out[key] = not attrs[key]
    elif key == "wing_pattern":
        out[key] = _pick(rng, WING_PATTERNS, attrs[key])
        if out[key] == "plain":
            out["pattern_color"] = "none"
        elif attrs["pattern_color"] == "none":
            out["pattern_color"] = _pick(rng, COLOURS, attrs["wing_color"])
    elif key == "pattern_color":
        if attrs["wing_pattern"] == "plain":
            return None
        out[key] = _pick(rng, COLOURS, attrs[key], attrs["wing_color"])
    elif key == "tail_shape":
        out[key] = _pick(rng, TAIL_SHAPES, attrs[key])
    elif key == "head_color":
        taken = (attrs[key], attrs["beak_color"], attrs["eye_ring"])
        out[key] = _pick(rng, COLOURS, *taken)
    else:
        raise KeyError(f"unknown sibling mutation {key!r}")
    return out


def make_classes(n_classes: int, seed: int) -> list[BirdClass]:
    """Deterministic fine-grained classes: groups of a random base plus one-part siblings."""
    rng = np.random.default_rng([seed, 0xB1D5])
    classes: list[BirdClass] = []
    seen: set[tuple[Any, ...]] = set()

    def add(attrs: dict[str, Any], group: int, base_id: int, differs_in: str) -> bool:
        cid = len(classes) + 1
        cls = BirdClass(
            class_id=cid,
            name=class_folder(cid),
            group=group,
            base_class_id=base_id,
            differs_in=differs_in,
            **attrs,
        )
        if cls.signature() in seen:
            return False
        seen.add(cls.signature())
        classes.append(cls)
        return True

    group = 0
    while len(classes) < n_classes:
        base = _random_base(rng)
        base_id = len(classes) + 1
        if not add(base, group, base_id, ""):
            continue
        keys = [str(k) for k in rng.permutation(SIBLING_MUTATIONS)]
        for key in keys:
            if len(classes) >= n_classes or len(classes) - base_id + 1 >= 4:
                break
            attrs = _mutate(rng, base, key)
            if attrs is not None:
                add(attrs, group, base_id, key)
        group += 1
    return classes


# --------------------------------------------------------------------------------------------
# Geometry (canonical bird frame: facing +x, y down, body length ~1)
# --------------------------------------------------------------------------------------------


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _place(points: np.ndarray, angle: float, offset: tuple[float, float]) -> np.ndarray:
    """Rotate ``(K, 2)`` points by ``angle`` then translate by ``offset``."""
    return points @ _rot(angle).T + np.asarray(offset)


def _ellipse(a: float, b: float, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)  # (n, 2)


def _ellipse_band(a: float, b: float, lo: float, hi: float, axis: int, n: int = 10) -> np.ndarray:
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


_TAILS: dict[str, np.ndarray] = {
    "fan": np.array(
        [[0.05, -0.06], [-0.32, -0.16], [-0.37, -0.05], [-0.37, 0.05], [-0.32, 0.16], [0.05, 0.06]]
    ),
    "forked": np.array([[0.05, -0.05], [-0.42, -0.15], [-0.25, 0.0], [-0.42, 0.15], [0.05, 0.05]]),
    "pointed": np.array([[0.05, -0.06], [-0.50, 0.0], [0.05, 0.06]]),
    "square": np.array([[0.05, -0.07], [-0.31, -0.08], [-0.31, 0.08], [0.05, 0.07]]),
}
_SPOTS = np.array([[-0.55, 0.0], [-0.2, -0.4], [-0.2, 0.4], [0.15, 0.0], [0.45, -0.3], [0.45, 0.3]])


def _jitter(rng: np.random.Generator, name: str, amount: int) -> RGB:
    base = np.asarray(PALETTE[name], dtype=np.int64)
    out = np.clip(base + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(out[0]), int(out[1]), int(out[2]))


def _bird_parts(
    cls: BirdClass, rng: np.random.Generator, jitter: int
) -> tuple[list[tuple[np.ndarray, RGB]], np.ndarray]:
    """Polygons (canonical frame) and colours of one bird instance, back to front; feet (2, 2)."""
    a = 0.40 * rng.uniform(0.95, 1.05)
    b = (0.27 if cls.body_shape == "round" else 0.20) * rng.uniform(0.95, 1.05)
    body_angle = math.radians(-20.0 + rng.uniform(-6.0, 6.0))
    origin = (0.0, 0.0)
    parts: list[tuple[np.ndarray, RGB]] = []

    # legs (vertical in the canonical frame) with a short forward toe
    hips = _place(np.array([[0.0, 0.8 * b], [0.3 * a, 0.75 * b]]), body_angle, origin)
    feet = hips + np.array([0.0, 0.17])
    for hip, foot in zip(hips, feet, strict=True):
        parts.append((_thick_segment(hip, foot, 0.04), LEG_COLOUR))
        parts.append((_thick_segment(foot, foot + np.array([0.07, 0.0]), 0.035), LEG_COLOUR))

    # tail, attached at the back of the body, angled with some per-image freedom
    tail_root = _place(np.array([[-0.85 * a, 0.0]]), body_angle, origin)[0]
    tail_angle = body_angle + math.radians(rng.uniform(-12.0, 12.0))
    tail = _place(_TAILS[cls.tail_shape], tail_angle, (tail_root[0], tail_root[1]))
    parts.append((tail, _jitter(rng, cls.tail_color, jitter)))

    # head geometry first: the crest is drawn behind the head
    head_r = 0.15 * rng.uniform(0.92, 1.08)
    head_c = np.array([0.44 + rng.uniform(-0.03, 0.03), -0.30 + rng.uniform(-0.04, 0.04)])
    head_colour = _jitter(rng, cls.head_color, jitter)
    if cls.crest:
        # a tuft from the back-top of the head: base on the head circle, apex up and back
        crest = np.array([[-0.85, -0.31], [-1.05, -1.75], [-0.35, -1.35], [0.15, -0.89]])
        crest = crest * head_r + head_c
        parts.append((crest, head_colour))

    # body, and the belly as the lower band of the body ellipse
    body_colour = _jitter(rng, cls.body_color, jitter)
    parts.append((_place(_ellipse(a, b), body_angle, origin), body_colour))
    belly = _ellipse_band(a, b, 0.15 * b, b, axis=1)
    parts.append((_place(belly, body_angle, origin), _jitter(rng, cls.belly_color, jitter)))

    # wing with its pattern (bars: bands across the wing; spots: discs inside it)
    wa, wb = 0.72 * a, 0.55 * b
    wing_angle = body_angle + math.radians(8.0 + rng.uniform(-6.0, 6.0))
    wc = _place(np.array([[-0.12 * a, -0.1 * b]]), body_angle, origin)[0]
    wing_c = (wc[0], wc[1])
    wing_colour = _jitter(rng, cls.wing_color, jitter)
    parts.append((_place(_ellipse(wa, wb), wing_angle, wing_c), wing_colour))
    if cls.wing_pattern == "bars":
        colour = _jitter(rng, cls.pattern_color, jitter)
        for lo, hi in ((-0.62, -0.45), (-0.2, -0.03), (0.22, 0.39)):
            band = _ellipse_band(wa, wb, lo * wa, hi * wa, axis=0, n=6)
            parts.append((_place(band, wing_angle, wing_c), colour))
    elif cls.wing_pattern == "spots":
        colour = _jitter(rng, cls.pattern_color, jitter)
        for sx, sy in _SPOTS:
            spot = _ellipse(0.2 * wb, 0.2 * wb, n=12) + np.array([sx * wa, sy * wb])
            parts.append((_place(spot, wing_angle, wing_c), colour))

    # head, beak, eye ring, eye
    parts.append((_ellipse(head_r, head_r) + head_c, head_colour))
    beak_dir = math.radians(8.0 + rng.uniform(-10.0, 10.0))
    beak_len = (0.24 if cls.beak_length == "long" else 0.09) * rng.uniform(0.92, 1.08)
    angles = np.array([beak_dir - 0.38, beak_dir, beak_dir + 0.38])
    radii = np.array([0.92 * head_r, head_r + beak_len, 0.92 * head_r])
    beak = head_c + radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    parts.append((beak, _jitter(rng, cls.beak_color, jitter)))
    eye_c = head_c + 0.45 * head_r * np.array([math.cos(-0.55), math.sin(-0.55)])
    if cls.eye_ring != "none":
        ring = _ellipse(0.34 * head_r, 0.34 * head_r, n=16) + eye_c
        parts.append((ring, _jitter(rng, cls.eye_ring, jitter)))
    parts.append((_ellipse(0.18 * head_r, 0.18 * head_r, n=12) + eye_c, EYE_COLOUR))
    return parts, feet


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _poly(points: np.ndarray) -> list[float]:
    return [float(v) for v in points.ravel()]


def _random_colour(rng: np.random.Generator, jitter: int = 20) -> RGB:
    return _jitter(rng, COLOURS[int(rng.integers(len(COLOURS)))], jitter)


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
    return _place(_ellipse(length / 2, length / 5, n=14), rng.uniform(0, math.pi), tuple(centre))


def _branch(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, start: np.ndarray, size: float
) -> None:
    """A random-walk branch with twigs and leaves, all from the shared palette."""
    colour = _jitter(rng, ("brown", "grey", "tan", "black", "olive")[int(rng.integers(5))], 15)
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
            draw.polygon(_poly(_ellipse(r, r, n=20) + centre), fill=_random_colour(rng))
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
            wing = _place(_ellipse(wa, wb), angle, tuple(centre))
            draw.polygon(_poly(wing), fill=_random_colour(rng))
            colour = _random_colour(rng)
            for lo in (-0.6, -0.1, 0.4):
                band = _ellipse_band(wa, wb, lo * wa, (lo + 0.17) * wa, axis=0, n=6)
                draw.polygon(_poly(_place(band, angle, tuple(centre))), fill=colour)
        else:  # tail-like wedge
            angle = rng.uniform(0, 2 * math.pi)
            wedge = _TAILS[TAIL_SHAPES[int(rng.integers(len(TAIL_SHAPES)))]] * (r / 0.15)
            draw.polygon(_poly(_place(wedge, angle, tuple(centre))), fill=_random_colour(rng))
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
        parts, feet = _bird_parts(cls, rng, config.colour_jitter)
        theta = math.radians(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
        sign = -1.0 if rng.random() < 0.5 else 1.0  # horizontal flip
        rot = _rot(theta) @ np.diag([sign, 1.0])
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
            colour = _jitter(rng, ("brown", "grey", "tan", "black")[int(rng.integers(4))], 15)
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


def mask_bbox_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight CUB-style box ``(x, y, width, height)`` of a non-empty bool mask (H, W)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask is empty; it has no bounding box")
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


# --------------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------------


def _write_text(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing an existing ``out`` folder."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old)


def write_birds(
    out_dir: str | Path, config: BirdsConfig, *, progress: bool = True, overwrite: bool = False
) -> Path:
    """Generate the dataset described by ``config`` into ``out_dir``; see :func:`generate_birds`."""
    config.validate()
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} already exists and is not empty; pass overwrite=True (--overwrite) to "
            "replace it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        classes = make_classes(config.n_classes, config.seed)
        index: dict[str, list[str]] = {
            "images.txt": [],
            "classes.txt": [],
            "image_class_labels.txt": [],
            "train_test_split.txt": [],
            "bounding_boxes.txt": [],
        }
        n_train = config.images_per_class // 2
        image_id = 0
        bar = tqdm(
            total=config.n_classes * config.images_per_class,
            desc="synth-birds",
            unit="img",
            disable=not progress,
        )
        with bar:
            for cls in classes:
                folder = cls.name
                index["classes.txt"].append(f"{cls.class_id} {folder}")
                (tmp / "images" / folder).mkdir(parents=True)
                (tmp / "segmentations" / folder).mkdir(parents=True)
                split_rng = np.random.default_rng([config.seed, cls.class_id, 0x5B1])
                is_train = np.zeros(config.images_per_class, dtype=bool)
                is_train[split_rng.permutation(config.images_per_class)[:n_train]] = True
                for k in range(config.images_per_class):
                    image_id += 1
                    image, mask = render_image(cls, k, config)
                    stem = f"{folder}/Synth_Bird_{cls.class_id:03d}_{k + 1:04d}"
                    image.save(
                        tmp / "images" / f"{stem}.jpg", format="JPEG", quality=config.jpeg_quality
                    )
                    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
                        tmp / "segmentations" / f"{stem}.png", format="PNG"
                    )
                    x, y, w, h = mask_bbox_xywh(mask)
                    index["images.txt"].append(f"{image_id} {stem}.jpg")
                    index["image_class_labels.txt"].append(f"{image_id} {cls.class_id}")
                    index["train_test_split.txt"].append(f"{image_id} {int(is_train[k])}")
                    box = f"{x:.1f} {y:.1f} {w:.1f} {h:.1f}"
                    index["bounding_boxes.txt"].append(f"{image_id} {box}")
                    bar.update(1)
        for name, lines in index.items():
            _write_text(tmp / name, lines)
        half = config.n_classes // 2
        meta = {
            "format": "cub-200-2011",
            "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION, **asdict(config)},
            "seed": config.seed,
            "n_classes": config.n_classes,
            "images_per_class": config.images_per_class,
            "image_px": config.image_px,
            "n_images": image_id,
            "metric_split": {
                "train_class_ids": [1, half],
                "test_class_ids": [half + 1, config.n_classes],
            },
            "palette": {k: list(v) for k, v in PALETTE.items()},
            "classes": [asdict(c) for c in classes],
        }
        meta_text = json.dumps(meta, indent=1, sort_keys=True) + "\n"
        (tmp / "dataset.json").write_text(meta_text, encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def generate_birds(
    out_dir: str | Path,
    *,
    n_classes: int = 200,
    images_per_class: int = 60,
    image_px: int = 128,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic-birds dataset in the CUB-200-2011 layout to ``out_dir``; return it.

    Defaults are the ``standard`` profile (200 classes x 60 images, 128 px);
    ``PROFILES["quick"]`` is 20 x 6 at 64 px. Deterministic given the arguments. The folder is
    built in a temporary sibling and renamed into place; an existing non-empty ``out_dir`` is
    an error unless ``overwrite``.
    """
    config = BirdsConfig(
        n_classes=n_classes, images_per_class=images_per_class, image_px=image_px, seed=seed
    )
    return write_birds(out_dir, config, progress=progress, overwrite=overwrite)


# --------------------------------------------------------------------------------------------
# Contact sheet (docs picture)
# --------------------------------------------------------------------------------------------


def contact_sheet(
    root: str | Path, out_png: str | Path, *, n_images: int = 12, columns: int = 4, scale: int = 2
) -> Path:
    """Draw the first ``n_images`` classes' first image with box (red) and mask outline (cyan).

    Consecutive classes form sibling groups, so the sheet shows one-part differences side by
    side; each caption gives the class id and what it changes relative to its group's base.
    """
    from houseprice.data.cub.dataset import read_cub_index  # local: cub imports torch

    root = Path(root)
    frame = read_cub_index(root)
    meta_path = root / "dataset.json"
    captions: dict[int, str] = {}
    if meta_path.is_file():
        for c in json.loads(meta_path.read_text(encoding="utf-8")).get("classes", []):
            captions[int(c["class_id"])] = c["differs_in"] or "base"
    first = frame.groupby("class_id", sort=True).head(1).head(n_images)
    tiles: list[Image.Image] = []
    font = ImageFont.load_default()
    for row in first.itertuples():
        with Image.open(row.path) as im:
            img = im.convert("RGB")
        w, h = img.size
        tile = img.resize((w * scale, h * scale), Image.Resampling.BICUBIC)
        if row.seg_path is not None:
            with Image.open(row.seg_path) as sm:
                seg = np.asarray(sm.convert("L")) >= 128
            seg_big = np.kron(seg, np.ones((scale, scale), dtype=bool))
            edge = seg_big & ~ndimage.binary_erosion(seg_big, iterations=max(1, scale // 2))
            arr = np.asarray(tile).copy()
            arr[edge] = (0, 255, 255)
            tile = Image.fromarray(arr)
        draw = ImageDraw.Draw(tile)
        x0, y0 = row.x * scale, row.y * scale
        x1, y1 = (row.x + row.w) * scale - 1, (row.y + row.h) * scale - 1
        draw.rectangle([x0, y0, x1, y1], outline=(255, 0, 0), width=max(1, scale // 2))
        label = f"{row.class_id:03d} {captions.get(int(row.class_id), '')}".strip()
        framed = Image.new("RGB", (tile.width, tile.height + 16), (255, 255, 255))
        framed.paste(tile, (0, 0))
        ImageDraw.Draw(framed).text((3, tile.height + 2), label, fill=(0, 0, 0), font=font)
        tiles.append(framed)
    if not tiles:
        raise ValueError(f"{root} has no images to draw")
    rows = math.ceil(len(tiles) / columns)
    tw, th = tiles[0].size
    pad = 4
    sheet = Image.new("RGB", (columns * (tw + pad) + pad, rows * (th + pad) + pad), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (pad + (i % columns) * (tw + pad), pad + (i // columns) * (th + pad)))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    # 256 colours keep the flat drawings (and the exact box/outline colours) at a quarter size
    paletted = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    paletted.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, out)
    return out
